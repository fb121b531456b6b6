#!/usr/bin/env bash
# Record one commit (or one shard of it) into lowbit's history: schema upgrade, then `lowbit run`.
# Works from any CI (GitHub Actions, GitLab, Buildkite): everything comes from the environment.
#
#   LOWBIT_DB_URL      database (PostgreSQL shared by all runners, or a SQLite URL); default ./lowbit.db
#   LOWBIT_COMMIT      commit to record (default: git HEAD)
#   LOWBIT_BRANCH      branch to record (default: from git or the CI's own variables)
#   LOWBIT_SUITE       quick | ci | nightly (default ci)
#   LOWBIT_DEVICE      cuda | cpu (default: cuda if torch sees a GPU)
#   LOWBIT_SHARD       I/N to run one shard of N (default: everything)
#   LOWBIT_DEVICES     all | 0,1,...: spread the kernels over this host's GPUs, one worker per GPU, all
#                      one model (default: one kernel at a time on the first GPU)
#   LOWBIT_KERNELS     space-separated --kernel specs (default: the registry)
#
# Exit status is `lowbit run`'s: 0 every property held, 1 a property failed or a worker crashed, 2 bad
# usage. A failing property is judged again (as new or known) by ci/check.sh, so workflows usually let
# this step continue on 1 and gate on the check.
set -euo pipefail
args=(--suite "${LOWBIT_SUITE:-ci}")
[ -n "${LOWBIT_COMMIT:-}" ] && args+=(--commit "$LOWBIT_COMMIT")
[ -n "${LOWBIT_BRANCH:-}" ] && args+=(--branch "$LOWBIT_BRANCH")
[ -n "${LOWBIT_DEVICE:-}" ] && args+=(--device "$LOWBIT_DEVICE")
[ -n "${LOWBIT_SHARD:-}" ] && args+=(--shard "$LOWBIT_SHARD")
[ -n "${LOWBIT_DEVICES:-}" ] && args+=(--devices "$LOWBIT_DEVICES")
for spec in ${LOWBIT_KERNELS:-}; do args+=(--kernel "$spec"); done
lowbit db upgrade
exec lowbit run "${args[@]}"
