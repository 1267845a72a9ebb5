"""``cosmic-ray users`` and ``cosmic-ray tokens``: API users and tokens in the event store."""

from __future__ import annotations

import sys
from datetime import timedelta

import typer

from cosmic_ray.ops.cli_common import emit as _emit
from cosmic_ray.ops.cli_common import fail as _fail
from cosmic_ray.ops.cli_common import settings as _settings

users_app = typer.Typer(no_args_is_help=True, help="API users in the event store (roles: viewer, astronomer, admin).")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens for scripts (Authorization: Bearer <token>).")


# ----------------------------------------------------------------------------- users and tokens
def _accounts():
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.store import Store

    return Store.open(_settings().event_store_url).accounts


def _read_password(password_stdin: bool) -> str:
    """The new password from stdin (first line) or an interactive prompt; never from an argument."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        _fail("empty password", 2)
    return password


@users_app.command("add")
def users_add(
    username: str = typer.Argument(...),
    role: str = typer.Option("viewer", help="viewer, astronomer or admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Add a user (the password is prompted for, or read from stdin)."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import StoreError

    password = _read_password(password_stdin)
    try:
        user = _accounts().add_user(username, password, role=role)
    except StoreError as exc:
        _fail(str(exc))
    _emit({"username": user.username, "role": user.role, "added": True})


@users_app.command("passwd")
def users_passwd(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Change a user's password (ends their web sessions)."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import StoreError

    password = _read_password(password_stdin)
    try:
        _accounts().set_password(username, password)
    except StoreError as exc:
        _fail(str(exc))
    _emit({"username": username, "password_changed": True})


@users_app.command("remove")
def users_remove(username: str = typer.Argument(...)) -> None:
    """Remove a user with their tokens and sessions."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import StoreError

    try:
        _accounts().remove_user(username)
    except StoreError as exc:
        _fail(str(exc))
    _emit({"username": username, "removed": True})


@users_app.command("list")
def users_list() -> None:
    _emit([{"username": u.username, "role": u.role} for u in _accounts().list_users()])


@tokens_app.command("create")
def tokens_create(
    username: str = typer.Argument(...),
    name: str = typer.Option("", help="A label, e.g. the script's name."),
    days: float | None = typer.Option(None, help="Lifetime in days (default: COSMIC_RAY_TOKEN_DAYS, 30)."),
) -> None:
    """Create an API token for USERNAME; the token is printed once and only its hash is kept. It expires."""
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import StoreError

    try:
        info = _accounts().create_token(username, name, timedelta(days=days or _settings().token_days))
    except StoreError as exc:
        _fail(str(exc))
    expires = info.expires_at.isoformat() + "Z" if info.expires_at else None
    _emit({"id": info.id, "username": info.username, "name": info.name, "token": info.token, "expires_at": expires})


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="The id printed by `tokens create`.")) -> None:
    # deferred: each command imports what it runs, so `cosmic-ray --help` starts fast
    from cosmic_ray.serve.db import StoreError

    try:
        _accounts().revoke_token(token_id)
    except StoreError as exc:
        _fail(str(exc))
    _emit({"id": token_id, "revoked": True})
