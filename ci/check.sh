#!/usr/bin/env bash
# Judge one commit against its baseline and leave the reports where CI systems look for them.
#
#   LOWBIT_DB_URL          database (default ./lowbit.db)
#   LOWBIT_COMMIT          commit to judge (default: git HEAD)
#   LOWBIT_BASELINE        commit to compare with (default: auto, the nearest measured ancestor)
#   LOWBIT_WAIT_SHARDS     seconds to wait for every shard of the commit to finish (default 0)
#   LOWBIT_REPORT_DIR      where lowbit-check.md, lowbit-check.xml (JUnit) and lowbit-check.json go
#                          (default: lowbit-report)
#   LOWBIT_CHECK_ARGS      extra arguments for `lowbit check` (e.g. --latency-threshold 10)
#   LOWBIT_ALLOW_NOTHING_COMPARABLE=1   treat exit 3 (nothing comparable: first commit of a history, new
#                          GPU or driver) as success, with a warning; by default it fails the job.
#
# On GitHub Actions the Markdown report is appended to the job's step summary. Exit status is
# `lowbit check`'s: 0 clean, 1 regression or new failure, 2 usage or unusable database, 3 nothing
# comparable measured.
set -uo pipefail
out=${LOWBIT_REPORT_DIR:-lowbit-report}
mkdir -p "$out"
args=(--baseline "${LOWBIT_BASELINE:-auto}" --wait-shards "${LOWBIT_WAIT_SHARDS:-0}")
[ -n "${LOWBIT_COMMIT:-}" ] && args+=(--commit "$LOWBIT_COMMIT")
# shellcheck disable=SC2206  # word splitting of the extra arguments is intended
extra=(${LOWBIT_CHECK_ARGS:-})
lowbit check "${args[@]}" "${extra[@]}" --format md --output "$out/lowbit-check.md" \
  --junit "$out/lowbit-check.xml" --json "$out/lowbit-check.json"
status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/lowbit-check.md" ]; then
  cat "$out/lowbit-check.md" >> "$GITHUB_STEP_SUMMARY"
fi
if [ "$status" -eq 3 ] && [ "${LOWBIT_ALLOW_NOTHING_COMPARABLE:-0}" = "1" ]; then
  echo "lowbit check: nothing comparable was measured (exit 3); allowed by LOWBIT_ALLOW_NOTHING_COMPARABLE" >&2
  exit 0
fi
exit "$status"
