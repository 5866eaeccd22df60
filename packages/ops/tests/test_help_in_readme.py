"""The README shows every command's ``--help`` exactly as the command line prints it.

Run with ``CQRS_DDD_WRITE_HELP=1`` to write the section again after changing a command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from cqrs_ddd_ops.cli import app
from typer.testing import CliRunner

README = Path(__file__).parents[1] / "README.md"
BEGIN = "<!-- every command's help: begin -->"
END = "<!-- every command's help: end -->"


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the path of every command under ``group``, groups before their commands."""
    found: list[tuple[str, ...]] = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def help_section() -> str:
    runner = CliRunner()
    root = typer.main.get_command(app)
    parts = [BEGIN, ""]
    for path in commands(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
        assert result.exit_code == 0, result.output
        text = "\n".join(line.rstrip() for line in result.stdout.strip("\n").splitlines())
        parts += [f"#### `cqrs-ddd {' '.join(path)} --help`".replace("  ", " "), ""]
        parts += ["```text", text.strip("\n"), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def test_the_readme_shows_every_commands_help_as_printed() -> None:
    readme = README.read_text()
    before, _, rest = readme.partition(BEGIN)
    _, _, after = rest.partition(END)
    expected = help_section()
    if os.environ.get("CQRS_DDD_WRITE_HELP") == "1":
        README.write_text(before + expected + after)
        return
    shown = BEGIN + rest.partition(END)[0] + END
    assert shown == expected, (
        "run: CQRS_DDD_WRITE_HELP=1 pytest packages/ops/tests/test_help_in_readme.py"
    )
