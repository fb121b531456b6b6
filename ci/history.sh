#!/usr/bin/env bash
# Detect (and store, for the dashboard) the change points of every recorded kernel's series.
#   LOWBIT_DB_URL         database (default ./lowbit.db)
#   LOWBIT_HISTORY_METRICS  metrics to follow (default: "failures rel_l2 p50_ms")
set -euo pipefail
kernels=$(python -c 'from harness.store import history, open_store, resolve_url
with open_store(resolve_url(None), create=False) as s:
    print(" ".join(history.kernel_names(s)))')
for kernel in $kernels; do
  for metric in ${LOWBIT_HISTORY_METRICS:-failures rel_l2 p50_ms}; do
    lowbit history --kernel "$kernel" --metric "$metric"
  done
done
