"""Login limits: a leaky bucket per account and per client address, kept in the event store so every
replica shares it, counted *before* the password is checked; and a bound on password checks at once.

Each bucket holds up to ``capacity`` attempts and leaks ``capacity`` per ``window_s``. An attempt is
admitted, and counted, only when both of its buckets have room; otherwise the caller is told how
long until they do (``Retry-After``): a flood is slowed to the leak rate (one attempt per
``window_s / capacity`` seconds), never locked out for a whole window. A successful login empties
its account's bucket and takes its own attempt back out of the address's bucket, so users sharing
one address (behind a proxy) do not fill it by logging in.

The check and the count are one transaction that writes the bucket rows first (SQLite's write lock,
PostgreSQL's row locks), so parallel attempts are counted one after another: of 500 parallel
guesses at one account, ``capacity`` reach the password hash.

Example:
    >>> from cosmic_ray.serve.db import open_engine
    >>> throttle = LoginThrottle(open_engine("sqlite://"), per_account=1, per_address=10, window_s=60)
    >>> throttle.admit("vera", "10.0.0.1"), throttle.admit("vera", "10.0.0.1") > 0
    (0, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from cosmic_ray.serve.db import LoginBucket, utcnow

log = logging.getLogger(__name__)


class LoginBusy(Exception):
    """No password-check slot came free in time."""


class LoginThrottle:
    """The login limits of every replica over one engine, and this process's password-check slots.

    Args:
        engine: the event store's engine (tables created).
        per_account: attempts an account's bucket holds (and leaks per window).
        per_address: attempts a client address's bucket holds (and leaks per window).
        window_s: the leak period.
        concurrency: password checks (argon2) at once in this process.
        queue_s: how long an admitted attempt waits for a check slot before :class:`LoginBusy`.
    """

    def __init__(
        self,
        engine: Engine,
        per_account: int,
        per_address: int,
        window_s: float,
        concurrency: int = 2,
        queue_s: float = 10.0,
    ):
        self.engine = engine
        self.capacity = {"account": per_account, "address": per_address}
        self.window_s = window_s
        self.queue_s = queue_s
        self._slots = asyncio.Semaphore(concurrency)

    # ------------------------------------------------------------------ buckets
    def _leaked(self, level: float, updated_at: datetime, now: datetime, capacity: int) -> float:
        elapsed = max(0.0, (now - updated_at).total_seconds())
        return max(0.0, level - elapsed * capacity / self.window_s)

    def _ensure(self, conn: Connection, key: str, now: datetime) -> None:
        """The bucket row of ``key`` exists, and this transaction holds its lock (written first)."""
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        conn.execute(
            dialect.insert(LoginBucket)
            .values(key=key, level=0.0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        conn.execute(update(LoginBucket).where(LoginBucket.key == key).values(level=LoginBucket.level))

    def admit(self, account: str, address: str) -> int:
        """Count an attempt at ``account`` from ``address`` if both buckets have room.

        Returns:
            0 when the attempt is admitted (and counted), else the seconds until it would be (nothing counted).
        """
        now = utcnow()
        buckets = sorted(
            [(f"account:{account}", self.capacity["account"]), (f"address:{address}", self.capacity["address"])]
        )
        wait = 0.0
        levels: dict[str, float] = {}
        with self.engine.connect() as conn:
            for key, _ in buckets:  # in key order: two transactions never wait on each other's rows
                self._ensure(conn, key, now)
            for key, capacity in buckets:
                row = conn.execute(
                    select(LoginBucket.level, LoginBucket.updated_at).where(LoginBucket.key == key)
                ).one()
                level = self._leaked(row.level, row.updated_at, now, capacity)
                over = level + 1 - capacity
                if over > 1e-9:
                    wait = max(wait, over * self.window_s / capacity)
                levels[key] = level + 1
            if wait:
                conn.rollback()
                return max(1, math.ceil(wait))
            for key, level in levels.items():
                conn.execute(update(LoginBucket).where(LoginBucket.key == key).values(level=level, updated_at=now))
            # buckets idle for a window are empty: drop them (bounded table under a flood of names)
            conn.execute(delete(LoginBucket).where(LoginBucket.updated_at < now - timedelta(seconds=self.window_s)))
            conn.commit()
        return 0

    def succeeded(self, account: str, address: str) -> None:
        """A login succeeded: empty the account's bucket, take this attempt back out of the address's."""
        now = utcnow()
        key = f"address:{address}"
        with self.engine.connect() as conn:
            self._ensure(conn, key, now)
            row = conn.execute(select(LoginBucket.level, LoginBucket.updated_at).where(LoginBucket.key == key)).one()
            level = max(0.0, self._leaked(row.level, row.updated_at, now, self.capacity["address"]) - 1)
            conn.execute(update(LoginBucket).where(LoginBucket.key == key).values(level=level, updated_at=now))
            conn.execute(delete(LoginBucket).where(LoginBucket.key == f"account:{account}"))
            conn.commit()

    # ------------------------------------------------------------------ password-check slots
    @contextlib.asynccontextmanager
    async def checking(self) -> AsyncIterator[None]:
        """Hold one of this process's password-check slots while the block runs.

        Raises:
            LoginBusy: no slot came free within ``queue_s``.
        """
        try:
            async with asyncio.timeout(self.queue_s):
                await self._slots.acquire()
        except TimeoutError:
            raise LoginBusy(f"no password-check slot within {self.queue_s} s") from None
        try:
            yield
        finally:
            self._slots.release()
