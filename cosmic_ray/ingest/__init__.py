"""From raw inputs to the Parquet lake: batch ingest, the lake, pre-filters, quarantine, the mailbox watcher."""
