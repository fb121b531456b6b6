#!/usr/bin/env bash
# Install lowbit and everything it needs into the current Python environment.
#
#   bash ci/install.sh            # CPU machine: torch 2.13.0 (CPU build), Triton 3.6.0 interpreter
#   LOWBIT_TORCH=skip bash ci/install.sh   # GPU runner whose image already has a CUDA torch + triton
#
# torch is installed first and pinned, because a bare `torch` requirement with no torch present pulls a
# multi-GB CUDA build. Triton 3.6.0's CPU interpreter needs numpy < 2.4. Everything else comes in at the
# exact versions of ci/constraints.txt (refreshed on purpose with `bash ci/lock.sh`), so the same install
# resolves the same tools today and next month.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if [ "${LOWBIT_TORCH:-}" != "skip" ]; then
  want=${LOWBIT_TORCH:-torch==2.13.0}
  have=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
  if [ "torch==$have" != "$want" ]; then
    echo "lowbit install: $want"
    pip_install "$want"
  fi
  pip_install "triton==3.6.0" "numpy<2.4"
fi
echo "lowbit install: project with dev extras"
pip_install -c ci/constraints.txt -e ".[dev,dashboard]"
"$PY" -c 'import torch, triton, numpy; print(f"torch {torch.__version__}, triton {triton.__version__}, numpy {numpy.__version__}")'
