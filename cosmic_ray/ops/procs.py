"""Processes and listening sockets of this machine, read from ``/proc`` (Linux).

What ``cluster down`` needs to stop every process a cluster started (its process tree, its session,
and whatever names the cluster's folders on its command line, such as an HAProxy that outlived the
Serve actor that spawned it), and what ``cluster up`` needs to say what listens where. Elsewhere
(no ``/proc``) every function answers "nothing found".
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Proc:
    """One process, identified by pid and start time (a reused pid is another process)."""

    pid: int
    ppid: int
    session: int
    start: int  # clock ticks after boot
    name: str


@dataclass(frozen=True)
class Listener:
    """A TCP socket in LISTEN state: its address and port, and the process holding it."""

    address: str
    port: int
    pid: int
    process: str

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ::1, or an IPv4-mapped loopback)."""
        ip = ipaddress.ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)
        return bool((mapped or ip).is_loopback)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port} ({self.process}, pid {self.pid})"


def read_proc(pid: int) -> Proc | None:
    """The process ``pid``, or None if it is gone (or there is no ``/proc``)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ... starttime is the 20th
    return Proc(pid=pid, ppid=int(fields[1]), session=int(fields[3]), start=int(fields[19]), name=name)


def all_procs() -> list[Proc]:
    """Every process this user can see."""
    if not PROC.is_dir():
        return []
    out = []
    for entry in os.listdir(PROC):
        if entry.isdigit() and (proc := read_proc(int(entry))) is not None:
            out.append(proc)
    return out


def cmdline(pid: int) -> list[str]:
    """The arguments of ``pid`` (empty if it is gone or not readable)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def names_folder(args: Iterable[str], folder: str) -> bool:
    """Whether an argument is ``folder``, ``--opt=folder`` or a path inside ``folder``."""
    folder = folder.rstrip("/")
    return any(arg == folder or arg.endswith("=" + folder) or (folder + "/") in arg for arg in args)


def family(
    root: int, procs: list[Proc] | None = None, folders: Iterable[str] = (), session: int | None = None
) -> list[Proc]:
    """Processes of ``root``: itself, its descendants, its session's members, and those naming ``folders``.

    Args:
        root: a process id (-1: none).
        procs: the processes to look among (default: all).
        folders: folders whose processes belong too (and their descendants).
        session: a session id whose members belong too (default ``root``'s): a session outlives its
            leader, so the members of a dead leader's session are still found by its id.

    Returns:
        Processes of this user, not this process nor its ancestors.
    """
    procs = all_procs() if procs is None else procs
    by_parent: dict[int, list[Proc]] = {}
    for proc in procs:
        by_parent.setdefault(proc.ppid, []).append(proc)
    found: dict[int, Proc] = {}
    session = root if session is None else session
    todo = [proc for proc in procs if proc.pid == root or (session > 0 and proc.session == session)]
    folders = [f for f in folders if f]
    if folders:
        todo += [proc for proc in procs if any(names_folder(cmdline(proc.pid), f) for f in folders)]
    while todo:
        proc = todo.pop()
        if proc.pid not in found:
            found[proc.pid] = proc
            todo.extend(by_parent.get(proc.pid, []))
    mine = _ancestors(os.getpid(), {p.pid: p for p in procs})
    uid = os.getuid()
    return [proc for proc in found.values() if proc.pid not in mine and _owner(proc.pid) == uid]


def _ancestors(pid: int, by_pid: dict[int, Proc]) -> set[int]:
    out = set()
    while pid in by_pid and pid not in out:
        out.add(pid)
        pid = by_pid[pid].ppid
    return out


def _owner(pid: int) -> int | None:
    try:
        return (PROC / str(pid)).stat().st_uid
    except OSError:
        return None


def alive(proc: Proc) -> bool:
    """Whether ``proc`` (the same process, not a reused pid) still runs and is not a zombie."""
    now = read_proc(proc.pid)
    if now is None or now.start != proc.start:
        return False
    try:
        state = (PROC / str(proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def terminate(procs: Iterable[Proc], grace: float = 5.0) -> list[Proc]:
    """SIGTERM each of ``procs`` still running, SIGKILL those left after ``grace`` s; returns those signalled."""
    targets = [proc for proc in procs if alive(proc)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for proc in targets:
            if alive(proc):
                try:
                    os.kill(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + wait
        while any(alive(proc) for proc in targets) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.1)
        if not any(alive(proc) for proc in targets):
            break
    return targets


def _reap() -> None:
    """Collect exited children of this process (they stay zombies otherwise)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# ----------------------------------------------------------------------------- listening sockets
def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _decode(hex_address: str) -> tuple[str, int]:
    """``0100007F:1F90`` (as /proc/net/tcp{,6} write it: 32-bit words in host order) -> ("127.0.0.1", 8080)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian hosts (x86, arm)
    fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(fam, words), int(port, 16)


def _listening_inodes() -> dict[int, tuple[str, int]]:
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _LISTEN:
                out[int(cols[9])] = _decode(cols[1])
    return out


def listeners(procs: Iterable[Proc]) -> list[Listener]:
    """The TCP sockets ``procs`` listen on, by port."""
    table = _listening_inodes()
    out = set()
    for proc in procs:
        for inode in _socket_inodes(proc.pid):
            if inode in table:
                address, port = table[inode]
                out.add(Listener(address=address, port=port, pid=proc.pid, process=proc.name))
    return sorted(out, key=lambda item: (item.port, item.address, item.pid))
