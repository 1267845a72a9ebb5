"""How ingest cuts its files into Ray tasks: in order, bounded by files and bytes, balanced over CPUs."""

from __future__ import annotations

from cosmic_ray.ingest.parallel import CHUNKS_PER_CPU, chunk_files


def _files(tmp_path, sizes):
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i:05d}.avro"
        path.write_bytes(b"x" * size)
        paths.append(str(path))
    return paths


def test_chunks_keep_the_input_order_and_every_file(tmp_path):
    files = _files(tmp_path, [100] * 1000)
    chunks = chunk_files(files, cpus=2, files_per_chunk=128)
    assert [f for chunk in chunks for f in chunk] == files
    assert max(len(c) for c in chunks) <= 128
    assert len(chunks) == 8  # 1000 files / 128 per chunk


def test_few_files_are_spread_over_the_cpus(tmp_path):
    files = _files(tmp_path, [100] * 100)
    chunks = chunk_files(files, cpus=2, files_per_chunk=128)
    assert len(chunks) >= 2 * CHUNKS_PER_CPU - 1
    assert [f for chunk in chunks for f in chunk] == files


def test_chunks_are_bounded_by_bytes_and_a_big_file_is_alone(tmp_path):
    files = _files(tmp_path, [400, 400, 400, 5000, 400])
    chunks = chunk_files(files, cpus=1, files_per_chunk=128, chunk_bytes=1000)
    assert chunks == [files[:2], [files[2]], [files[3]], [files[4]]]


def test_missing_files_still_get_a_chunk_and_nothing_is_empty(tmp_path):
    files = [str(tmp_path / "gone.avro"), *_files(tmp_path, [10])]
    chunks = chunk_files(files, cpus=2, files_per_chunk=128)
    assert [f for c in chunks for f in c] == files and all(chunks)
    assert chunk_files([], cpus=2, files_per_chunk=128) == []
