"""Hostile files in the watcher's mailbox (issue 18, item 5): a link to a secret is never followed,
a foreign Avro file with a huge record count is one quarantine, and a file the watcher fails on is
quarantined and taken out of the mailbox, so ``cosmic-ray watch`` goes on and starts again cleanly.
No Ray: the watcher is a plain process.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastavro.io.binary_encoder import BinaryEncoder

from cosmic_ray.ingest import quarantine
from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.watch import DONE, MailboxWatcher

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[3]
SECRET = b"-----BEGIN " + b"OPENSSH PRIVATE KEY----- not for the lake"  # built here: no key-like line in the repo
BAD_NAME = os.fsdecode(b"bad\xff.avro")  # a name that is not UTF-8


def _foreign_avro(count: int) -> bytes:
    """78 bytes or so: a container whose writer schema is ``"null"`` and whose block declares ``count`` records."""
    buf = io.BytesIO()
    enc = BinaryEncoder(buf)
    buf.write(b"Obj\x01")
    enc.write_long(2)
    enc.write_utf8("avro.schema")
    enc.write_bytes(b'"null"')
    enc.write_utf8("avro.codec")
    enc.write_bytes(b"null")
    enc.write_long(0)
    buf.write(b"S" * 16)
    enc.write_long(count)
    enc.write_long(0)
    buf.write(b"S" * 16)
    return buf.getvalue()


def _old(path: Path) -> None:
    """Make ``path`` (or the link itself) look settled."""
    past = time.time() - 60
    os.utime(path, (past, past), follow_symlinks=False)


@pytest.fixture
def mailbox(tmp_path, shared_data) -> Path:
    box = tmp_path / "mailbox"
    box.mkdir()
    (tmp_path / "secret").write_bytes(SECRET)
    os.symlink(tmp_path / "secret", box / "x.avro")
    (box / "foreign.avro").write_bytes(_foreign_avro(10**5))
    (box / BAD_NAME).write_bytes(b"garbage, not Avro")
    real = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[0]
    (box / real.name).write_bytes(real.read_bytes())
    for entry in box.iterdir():
        _old(entry)
    return box


def _real(mailbox: Path) -> str:
    return next(p.name for p in (mailbox / DONE).iterdir() if p.name.startswith("ZTF"))


def _no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_bytes(), f"{path} holds the link target's bytes"


def test_the_watcher_refuses_links_and_hostile_files_and_keeps_the_rest(tmp_path, mailbox):
    watcher = MailboxWatcher(mailbox, tmp_path / "lake", tmp_path / "q")
    assert watcher.step() == 4
    assert not [p for p in mailbox.iterdir() if p.name != DONE], "every file left the mailbox"
    # parsed files go to .done (their bad records quarantined); the link never does
    assert sorted(p.name for p in (mailbox / DONE).iterdir()) == sorted([BAD_NAME, "foreign.avro", _real(mailbox)])
    reasons = {Path(r["input"]).name: r["reason"] for r in quarantine.reasons(tmp_path / "q")}
    assert "links are not followed" in reasons["x.avro"]
    assert "foreign writer schema" in reasons["foreign.avro"]
    assert "not a readable Avro container" in reasons[BAD_NAME]
    assert len(reasons) == 3, sorted(reasons)
    links = [p for p in (tmp_path / "q").iterdir() if p.is_symlink()]
    assert len(links) == 1 and links[0].name.endswith(".link"), "the link itself is kept aside"
    _no_secret_in(tmp_path / "q")
    _no_secret_in(tmp_path / "lake")
    assert Lake(tmp_path / "lake").read_alerts().num_rows == 1


def test_a_link_swapped_in_after_the_listing_is_not_read(tmp_path):
    box = tmp_path / "mailbox"
    box.mkdir()
    (tmp_path / "secret").write_bytes(SECRET)
    os.symlink(tmp_path / "secret", box / "late.avro")
    watcher = MailboxWatcher(box, tmp_path / "lake", tmp_path / "q")
    assert watcher._read(box / "late.avro", "run") is None  # O_NOFOLLOW: the open itself refuses the link
    _no_secret_in(tmp_path / "q")
    assert not (box / "late.avro").exists()


def _start(mailbox: Path, tmp_path: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "COSMIC_RAY_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "cosmic_ray.ops.cli", "watch", str(mailbox), "--lake", str(tmp_path / "lake")]
    with open(log, "w") as err:
        return subprocess.Popen(
            [*cmd, "--interval", "0.1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )


def _wait_watching(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while "watching" not in log.read_text() and proc.poll() is None:
        assert time.monotonic() < deadline, "the watcher did not start"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def test_cosmic_ray_watch_goes_on_after_a_hostile_file_and_restarts_cleanly(tmp_path, mailbox):
    log = tmp_path / "watch.log"
    proc = _start(mailbox, tmp_path, log)
    try:
        _wait_watching(proc, log)
        deadline = time.monotonic() + 60
        while len([p for p in mailbox.iterdir() if p.name != DONE]) and proc.poll() is None:
            assert time.monotonic() < deadline, "the watcher did not empty the mailbox"
            time.sleep(0.1)
        time.sleep(0.3)
        assert proc.poll() is None, f"the watcher died: {log.read_text()[-2000:]}"
    finally:
        code, out = _stop(proc)
    assert code == 0, log.read_text()[-2000:]
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["alerts"] == 1 and stats["quarantined"] >= 3
    again = _start(mailbox, tmp_path, log)  # a restart meets nothing it dies on
    _wait_watching(again, log)
    time.sleep(0.5)
    code, out = _stop(again)
    assert code == 0, log.read_text()[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["files"] == 0
