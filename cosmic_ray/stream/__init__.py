"""Kafka in and out: the stream consumer (alerts -> lake -> classified -> stored), the publisher of
classifications, the embedded test/demo broker and the replay of packet files into a topic."""
