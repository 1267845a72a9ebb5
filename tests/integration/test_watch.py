"""The mailbox watcher: real alerts dropped into a folder, the watcher SIGKILLed mid-stream and
restarted; every alert ends up in the lake exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import fastavro

from cosmic_ray.ingest.lake import Lake
from cosmic_ray.ingest.watch import DONE, MailboxWatcher

REPO = Path(__file__).resolve().parents[2]


def _drop(mailbox: Path, path: Path, name: str | None = None) -> None:
    """Deliver a file the way producers should: write under a temporary name, then rename."""
    target = mailbox / (name or path.name)
    tmp = mailbox / f".{target.name}.tmp"
    tmp.write_bytes(path.read_bytes())
    os.replace(tmp, target)


def _start(mailbox: Path, lake: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "COSMIC_RAY_HOME": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "cosmic_ray.ops.cli",
        "watch",
        str(mailbox),
        "--lake",
        str(lake),
        "--interval",
        "0.1",
        "--batch-files",
        "3",
    ]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _done(mailbox: Path) -> int:
    folder = mailbox / DONE
    return len(list(folder.glob("*.avro"))) if folder.is_dir() else 0


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(tmp_path, shared_data):
    alerts = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))
    candids = []
    for path in alerts:
        with open(path, "rb") as handle:
            candids.append(next(iter(fastavro.reader(handle)))["candid"])
    mailbox, lake_dir, home = tmp_path / "mailbox", tmp_path / "lake", tmp_path / "home"
    mailbox.mkdir()
    first, rest = alerts[:30], alerts[30:]
    for path in first:
        _drop(mailbox, path)

    proc = _start(mailbox, lake_dir, home)
    try:
        _wait(lambda: _done(mailbox) >= 3, 40, "the first micro-batch")
        proc.send_signal(signal.SIGKILL)  # mid-stream: more files wait in the mailbox
        proc.wait(10)
    finally:
        proc.kill()
    done_at_kill = _done(mailbox)
    assert done_at_kill < len(first), "the watcher finished before it was killed: not mid-stream"

    for path in rest:
        _drop(mailbox, path)
    _drop(mailbox, first[0], "resent-" + first[0].name)  # the same alert delivered twice
    proc = _start(mailbox, lake_dir, home)
    try:
        _wait(lambda: _done(mailbox) == len(alerts) + 1, 40, "every file to be processed")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["files"] == len(alerts) + 1 - done_at_kill

    assert not list(mailbox.glob("*.avro"))
    table = Lake(lake_dir).read(sources=["ztf_alert"])
    counts = Counter(c for c in table.column("candid").to_pylist() if c is not None)
    assert all(counts[c] == 1 for c in candids), {c: counts[c] for c in candids if counts[c] != 1}
    assert max(counts.values()) == 1  # no detection twice, prv_candidates included
    stored = Lake(lake_dir).read_alerts()
    assert sorted(stored.column("alert_candid").to_pylist()) == sorted(candids)


def test_on_batch_gets_the_points_of_alerts_that_passed(tmp_path, shared_data):
    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    alerts = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[:12]
    for path in alerts:
        _drop(mailbox, path)
    seen = []
    watcher = MailboxWatcher(mailbox, tmp_path / "lake", tmp_path / "q", settle=0.0, on_batch=seen.append)
    assert watcher.step() == 12 and watcher.step() == 0
    stored = Lake(tmp_path / "lake").read_alerts()
    passed = {
        c
        for c, d in zip(stored.column("alert_candid").to_pylist(), stored.column("prefilter").to_pylist(), strict=False)
        if d == "pass"
    }
    assert len(seen) == 1 and 0 < len(passed) < 12
    assert set(seen[0].column("alert_candid").to_pylist()) == passed
    assert watcher.stats.passed == len(passed) and watcher.stats.alerts == 12


def test_a_failing_live_hook_leaves_the_batch_in_the_mailbox_and_it_is_retried(tmp_path, shared_data):
    """The model app is down when a batch is in the lake: the files stay, the next round re-sends
    the same alerts to the hook (the lake keeps each once), so none is in the lake but unclassified."""
    mailbox = tmp_path / "mailbox"
    mailbox.mkdir()
    alerts = sorted((shared_data / "ztf-alerts" / "pittgoogle" / "alerts-for-testing").glob("*.avro"))[:12]
    for path in alerts:
        _drop(mailbox, path)
    calls: list[set[int]] = []

    def hook(table) -> None:
        calls.append(set(table.column("alert_candid").to_pylist()))
        if len(calls) == 1:
            raise RuntimeError("Serve app cosmic_ray is not running")  # what a DeploymentHandle raises then

    watcher = MailboxWatcher(mailbox, tmp_path / "lake", tmp_path / "q", settle=0.0, on_batch=hook)
    assert watcher.step() == 0 and watcher.stats.hook_failures == 1
    assert len(list(mailbox.glob("*.avro"))) == 12 and _done(mailbox) == 0
    assert watcher.step() == 12 and watcher.step() == 0
    assert len(calls) == 2 and calls[0] == calls[1] and calls[1]
    stored = Lake(tmp_path / "lake").read_alerts()
    assert sorted(stored.column("alert_candid").to_pylist()) == sorted(set(stored.column("alert_candid").to_pylist()))
    assert stored.num_rows == 12 and watcher.stats.alerts == 12
    points = Lake(tmp_path / "lake").read(sources=["ztf_alert"])
    counts = Counter(c for c in points.column("candid").to_pylist() if c is not None)
    assert max(counts.values()) == 1
