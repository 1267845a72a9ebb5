"""Every ``cosmic-ray <command> [<subcommand>]`` the pages and the README mention is a real command.

Issue 19, item 6: a new user after ``make demo`` was told to run ``cosmic-ray live``, which does not
exist. The commands are read from the typer app itself (``cosmic_ray.ops.cli.app``), never listed
here, so a command added or renamed later is checked the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from cosmic_ray.ops.cli import app

REPO = Path(__file__).resolve().parents[3]
MENTION = re.compile(r"cosmic-ray\s+([a-z][a-z0-9_-]*)(?:\s+([a-z][a-z0-9_|-]*))?")


def _texts() -> dict[str, str]:
    """The files users read: every page and script under web/ (not node_modules), and the README."""
    files = [REPO / "README.md"]
    for pattern in ("*.html", "*.js", "*.md"):
        files += [p for p in (REPO / "web").rglob(pattern) if "node_modules" not in p.parts]
    return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in files}


def _cli() -> Any:
    """The CLI as a command group (typer's group: ``.commands`` maps names to commands and groups)."""
    command = typer.main.get_command(app)
    assert isinstance(getattr(command, "commands", None), dict)
    return command


def mentions_not_in_cli(texts: dict[str, str], cli: Any) -> list[str]:
    """``file: cosmic-ray cmd [sub]`` for each mention the CLI does not have."""
    bad = []
    for name, text in texts.items():
        for match in MENTION.finditer(text):
            cmd, sub = match.group(1), match.group(2)
            found = cli.commands.get(cmd)
            if found is None:
                bad.append(f"{name}: cosmic-ray {cmd} (commands: {sorted(cli.commands)})")
                continue
            subcommands = getattr(found, "commands", None)
            if isinstance(subcommands, dict) and sub:
                for part in sub.split("|"):  # `cluster up|down|status`
                    if part and part not in subcommands:
                        bad.append(f"{name}: cosmic-ray {cmd} {part} (its commands: {sorted(subcommands)})")
    return bad


def test_every_command_the_pages_and_readme_mention_exists():
    texts = _texts()
    assert any("web/index.html" in name for name in texts)
    mentioned = sum(len(MENTION.findall(t)) for t in texts.values())
    assert mentioned >= 10, f"only {mentioned} mentions found: is the pattern still right?"
    assert mentions_not_in_cli(texts, _cli()) == []


def test_the_check_catches_a_command_that_does_not_exist():
    cli = _cli()
    bad = mentions_not_in_cli({"page": "run <code>cosmic-ray live</code> or cosmic-ray cluster up|sideways"}, cli)
    assert len(bad) == 2 and "cosmic-ray live" in bad[0] and "cluster sideways" in bad[1]
    assert mentions_not_in_cli({"page": "cosmic-ray watch MAILBOX --classify; cosmic-ray cutouts prune"}, cli) == []


def test_the_empty_live_feed_names_the_real_live_command():
    page = (REPO / "web" / "index.html").read_text(encoding="utf-8")
    empty = re.search(r'<p id="feed-empty"[^>]*>(.*?)</p>', page, re.S)
    assert empty is not None
    assert "cosmic-ray watch" in empty.group(1) and "cosmic-ray live" not in empty.group(1)
