#!/usr/bin/env bash
# The whole test suite: lint, format check, type check, dependency contracts, tests.
# Extra arguments go to pytest (for example: scripts/test.sh -m soak).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

echo "== ruff (lint)"
uv run --frozen ruff check .
echo "== ruff (format)"
uv run --frozen ruff format --check .
echo "== mypy (strict)"
uv run --frozen mypy packages/*/src examples/shop/src tests/reliability/harness
echo "== import-linter (dependency rule)"
uv run --frozen lint-imports
# The browser tests need Chromium and chromedriver: installs them when missing (warns
# where it cannot; those tests then skip, or fail under CQRS_DDD_REQUIRE_SERVICES=1).
bash scripts/install-chromium.sh
echo "== pytest"
uv run --frozen pytest -m "not soak" "$@"
