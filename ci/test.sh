#!/usr/bin/env bash
# The project's test command: lint, format check, import contracts, then the test suite (GPU tests are deselected
# automatically where torch sees no GPU; `slow` tests are left to the nightly job). Extra arguments go to
# pytest; a `-m EXPR` among them replaces the default `-m "not slow"` (e.g. `bash ci/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m ruff check .
"$PY" -m ruff format --check .
lint-imports
"$PY" -m pytest -m "not slow" "$@"
