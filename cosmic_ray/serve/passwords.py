"""The password policy of the accounts: 12 to 128 characters, and not a common password.

The common passwords are the 30,000 most frequent ones of a large leaked-password corpus, as the
``zxcvbn`` package ships them (``zxcvbn.frequency_lists``: the ``passwords`` list). A password is
refused when it, its lower-case form without spaces, or that form without trailing digits and
symbols (``Password123!``, ``iloveyou 2024``) is on the list (OWASP ASVS 4.0 V2.1.1, V2.1.2, V2.1.7).

Example:
    >>> check_password("qwertyuiop123")
    Traceback (most recent call last):
    ...
    cosmic_ray.serve.db.StoreError: this password is one of the most common passwords: choose another
    >>> check_password("plum orbit 48 lantern")
"""

from __future__ import annotations

import functools
import re

from cosmic_ray.serve.db import StoreError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128  # ASVS V2.1.2: 64 allowed, over 128 refused (login takes up to 1024: older passwords)
_TRAILING = re.compile(r"[\d\W_]+$")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The common-password list (lower case), loaded once."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # deferred: an 800 kB module, needed only here

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _forms(password: str) -> set[str]:
    squashed = "".join(password.lower().split())
    return {password, password.lower(), squashed, _TRAILING.sub("", squashed)}


def is_common(password: str) -> bool:
    """Whether ``password`` (or its plain form, see the module) is on the common-password list."""
    common = common_passwords()
    return any(form in common for form in _forms(password) if form)


def check_password(password: str) -> None:
    """Raises: StoreError: the password is too short, too long or a common one (the message says which)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StoreError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if is_common(password):
        raise StoreError("this password is one of the most common passwords: choose another")
