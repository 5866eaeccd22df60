"""Runs the README's examples as a test file of their own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cqrs_ddd_testing import PostgresDatabase, RedisNamespace

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"


def _python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_example_passes(
    inner_pytester: pytest.Pytester,
    postgres_database: PostgresDatabase,
    redis_namespace: RedisNamespace,
) -> None:
    # given (the two fixtures above make this test skip or fail as the example would)
    services, sagas = _python_examples()
    inner_pytester.makepyfile(test_readme_example=services, test_readme_sagas=sagas)
    # when
    result = inner_pytester.runpytest()
    # then
    result.assert_outcomes(passed=3)
