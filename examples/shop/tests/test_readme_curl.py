"""The README's curl walk-through, run against a real shop process, answers as the README says.

Every ```bash block of the section "The API, with curl" runs, in order, in one
bash process, against ``python -m shop --no-scenario`` on a fresh SQLite file.
A block followed by a ```text or ```json block must print that: ``...`` (or
``…``) stands for any text, and in JSON a ``"..."`` value for any value.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from shop_testing import read_until

README = Path(__file__).parents[1] / "README.md"
SECTION = ("## The API, with curl", "## Events to a broker")
BLOCK = re.compile(r"```(bash|text|json)\n(.*?)```", re.DOTALL)


def walk_through() -> list[tuple[str, str | None, str | None]]:
    """Return the section's commands, each with the kind and text of its expected answer."""
    text = README.read_text()
    section = text[text.index(SECTION[0]) : text.index(SECTION[1])]
    steps: list[tuple[str, str | None, str | None]] = []
    for kind, body in BLOCK.findall(section):
        if kind == "bash":
            steps.append((body, None, None))
        else:
            command, _, _ = steps[-1]
            steps[-1] = (command, kind, body)
    return steps


def matches(expected: Any, actual: Any) -> bool:
    """Compare JSON values; the string ``"..."`` matches anything."""
    if expected == "...":
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(expected[key], actual[key]) for key in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def text_pattern(expected: str) -> re.Pattern[str]:
    parts = re.split(r"\.\.\.|…", expected.strip())
    return re.compile(".*?".join(re.escape(part) for part in parts), re.DOTALL)


def start_shop(folder: Path, port: int) -> subprocess.Popen[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "RABBITMQ_URL", "NATS_URL", "REDIS_URL"}
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running the shop
        [sys.executable, "-m", "shop", "--no-scenario", "--port", str(port)],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    read_until(process, "until Ctrl-C", within=60)
    return process


def test_the_readme_curl_walk_through_answers_as_shown(tmp_path: Path) -> None:
    from test_command_line import free_port

    steps = walk_through()
    assert len(steps) >= 12, "the walk-through lost its steps"
    port = free_port()
    script = ["set -u"]
    for number, (command, _, _) in enumerate(steps):
        script += [
            f"printf '\\n@@step {number}@@\\n'",
            command.replace("127.0.0.1:8000", f"127.0.0.1:{port}"),
        ]
    shop = start_shop(tmp_path, port)
    try:
        result = subprocess.run(  # noqa: S603 - bash running the README's commands
            ["/bin/bash", "-c", "\n".join(script)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shop.send_signal(signal.SIGINT)
        shop.communicate(timeout=60)
    assert result.returncode == 0, result.stderr
    outputs = re.split(r"\n@@step \d+@@\n", result.stdout)[1:]
    assert len(outputs) == len(steps)
    for (command, kind, expected), output in zip(steps, outputs, strict=True):
        if kind == "json":
            assert expected is not None
            assert matches(json.loads(expected), json.loads(output)), (command, output)
        elif kind == "text":
            assert expected is not None
            assert text_pattern(expected).fullmatch(output.strip()), (command, output)
