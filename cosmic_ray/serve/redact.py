"""Credentials out of text shown to API callers: ``scheme://user:<password>@host`` and ``password=...``.

A tracking or store URI may carry a password (``postgresql://ml:example-pw@db/mlflow``,
``https://token@mlflow.example``); where such a URI reaches an answer (a reload error of ``/model``, the
dashboard's links) only ``scheme://***@host`` is shown.

Example:
    >>> strip_credentials("no model in postgresql://ml:example-pw@db:5432/mlflow?sslmode=require&password=x")
    'no model in postgresql://***@db:5432/mlflow?sslmode=require&password=***'
"""

from __future__ import annotations

import re
from typing import Any

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]+@")
_SECRET_PARAM = re.compile(r"(?i)\b(?P<name>password|passwd|pwd|secret|token|api_key|apikey|access_key)=[^&\s;,'\"]+")


def strip_credentials(text: str) -> str:
    """``text`` with the user information of every URL and every ``password=``-like value replaced by ``***``."""
    return _SECRET_PARAM.sub(r"\g<name>=***", _USERINFO.sub(r"\g<scheme>***@", text))


def strip_credentials_deep(value: Any) -> Any:
    """:func:`strip_credentials` applied to every string inside ``value`` (dicts, lists, tuples)."""
    if isinstance(value, str):
        return strip_credentials(value)
    if isinstance(value, dict):
        return {k: strip_credentials_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(strip_credentials_deep(v) for v in value)
    return value
