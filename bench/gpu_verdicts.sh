#!/usr/bin/env bash
# On a GPU: an A/A pair (the fp16 Triton kernel recorded twice under two labels) must show no latency
# regression, and a deliberately slowed variant (~12% more work) must be flagged. Writes the three
# `lowbit check` JSON reports and a summary to $OUT (or ./gpu-verdicts).
#   bash bench/gpu_verdicts.sh
set -uo pipefail
out=${OUT:-gpu-verdicts}
mkdir -p "$out"
db="sqlite:///$PWD/gpu-verdicts.db"
rm -f gpu-verdicts.db
A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
B=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
C=cccccccccccccccccccccccccccccccccccccccc
lowbit() { python -m harness.cli "$@"; }
python -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())' | tee "$out/versions.txt"
for pair in "$A:fp16" "$B:fp16" "$C:fp16_slowed"; do
  commit=${pair%%:*} variant=${pair#*:}
  start=$(date +%s)
  lowbit run --db "$db" --commit "$commit" --device cuda --suite quick --fuzz-examples 0 \
    --kernel "k=tests.verdicts.variants:$variant" > "$out/run-$variant-${commit:0:1}.txt" 2>&1
  echo "run $variant ${commit:0:1}: exit $? in $(( $(date +%s) - start )) s"
done
lowbit check --db "$db" --commit "$B" --baseline "$A" --format json --output "$out/aa.json"
echo "A/A check exit $?"
lowbit check --db "$db" --commit "$C" --baseline "$B" --format json --output "$out/slowed.json"
echo "slowed check exit $?"
lowbit check --db "$db" --commit "$C" --baseline "$B" --format md --output "$out/slowed.md"
python - "$out" <<'PY'
import json, sys
for name in ("aa", "slowed"):
    data = json.load(open(f"{sys.argv[1]}/{name}.json"))
    print(f"== {name}: {data['status']} (exit {data['exit_code']}), counts {data['counts']}")
    for e in data["entries"]:
        lat = e["latency"] or {}
        print(
            f"  {e['kind']:<12} {e['shape_class']:<22} {e['params'].get('head_dim')} "
            f"{lat.get('direction')} ratio={lat.get('ratio')} p={lat.get('p_value')} "
            f"n={lat.get('n_base')}/{lat.get('n_now')} {lat.get('reason') or ''}"
        )
PY
