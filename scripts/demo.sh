#!/usr/bin/env bash
# The main job: runs the example system on the embedded SQLite default.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
uv run --frozen python -m shop "$@"
