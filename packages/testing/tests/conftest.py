"""Shared helpers for the plugin's own tests.

`pytester` is enabled in the test modules that use it (`pytest_plugins` there), not
here: pytest refuses `pytest_plugins` in a conftest.py below the rootdir.
"""

from __future__ import annotations

import pytest

INNER_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest -p no:faker
"""


@pytest.fixture
def inner_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose inner runs use the workspace's asyncio settings.

    The inner runs leave out the workspace's unrelated pytest plugins: Hypothesis's
    end-of-session summary alone costs over a second per in-process run.
    """
    pytester.makeini(INNER_INI)
    return pytester
