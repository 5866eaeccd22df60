"""Runs every Python example of every README, so the docs say what the code does.

The ```python blocks of one README run in order in one fresh module namespace,
with top-level ``await`` allowed; a block that raises fails the test.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted(
    [
        ROOT / "README.md",
        *ROOT.glob("packages/*/README.md"),
        ROOT / "packages/advanced/src/cqrs_ddd_advanced_core/projections/README.md",
        ROOT / "packages/advanced/src/cqrs_ddd_advanced_core/sagas/README.md",
        ROOT / "packages/advanced/src/cqrs_ddd_advanced_core/scheduling/README.md",
        ROOT / "packages/advanced/src/cqrs_ddd_advanced_core/undo/README.md",
        ROOT / "packages/advanced/src/cqrs_ddd_advanced_core/workers/README.md",
        *ROOT.glob("examples/*/README.md"),
    ]
)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(readme: Path) -> list[tuple[int, str]]:
    text = readme.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1)) for match in BLOCK.finditer(text)
    ]


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
async def test_every_python_example_of_the_readme_runs(readme: Path) -> None:
    blocks = python_blocks(readme)
    name = f"readme_{readme.parent.name}".replace("-", "_")
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        for first_line, source in blocks:
            padded = "\n" * (first_line - 1) + source
            code = compile(padded, str(readme), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            outcome = eval(code, module.__dict__)  # noqa: S307 - our own documentation
            if inspect.iscoroutine(outcome):
                await outcome
    finally:
        del sys.modules[name]
