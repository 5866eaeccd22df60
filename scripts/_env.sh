# Sourced by the other scripts: makes sure uv exists and the workspace is installed.
# Never downloads a Python build: the machine's own python3 (3.11+) is used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export UV_PYTHON_DOWNLOADS=never
export PATH="$HOME/.local/bin:$PATH"

PYTHON_BIN="${PYTHON_BIN:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PYTHON_BIN="$(command -v "$candidate")"
      break
    fi
  done
fi
if [ -z "$PYTHON_BIN" ]; then
  echo "cqrs-ddd needs Python 3.11 or newer on PATH" >&2
  exit 1
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv with $PYTHON_BIN -m pip" >&2
  "$PYTHON_BIN" -m pip install --quiet --user uv 2>/dev/null ||
    "$PYTHON_BIN" -m pip install --quiet uv
  hash -r
fi
if ! command -v uv >/dev/null 2>&1; then
  # pip may have put it in the interpreter's own scripts folder
  PATH="$("$PYTHON_BIN" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
fi

uv sync --quiet --all-packages --frozen --python "$PYTHON_BIN"
