#!/usr/bin/env bash
# The project's test command: lint, format check, import contracts, then the test suite (GPU tests are deselected
# automatically where torch sees no GPU). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m ruff check .
"$PY" -m ruff format --check .
lint-imports
"$PY" -m pytest "$@"
