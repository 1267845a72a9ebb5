"""The event store, opened once: :class:`Events` and :class:`Accounts` over one engine.

Example:
    >>> store = Store.open("sqlite:///:memory:")
    >>> store.accounts.add_user("vera", "a long passphrase", role="astronomer").role
    'astronomer'
    >>> store.events.count_classifications()
    0
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cosmic_ray.serve.accounts import Accounts
from cosmic_ray.serve.db import open_engine
from cosmic_ray.serve.events import Events
from cosmic_ray.serve.skyobjects import ObjectTable  # its table is created with the others


@dataclass(frozen=True)
class Store:
    """Both halves of the event store, sharing ``engine``.

    Attributes:
        url: the SQLAlchemy URL it was opened with (``sqlite:///path`` or ``postgresql://...``).
    """

    url: str
    engine: Engine
    events: Events
    accounts: Accounts

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create the tables of) the store at ``url``."""
        engine = open_engine(url)
        return cls(url=url, engine=engine, events=Events(engine), accounts=Accounts(engine))

    @property
    def objects(self) -> ObjectTable:
        """The object table (positions, latest classes, cone searches)."""
        return ObjectTable(self.engine)

    def close(self) -> None:
        self.engine.dispose()
