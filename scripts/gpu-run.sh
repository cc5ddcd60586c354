#!/usr/bin/env bash
# One build-check-time cycle on a GPU machine without the .NET SDK (the device tool's machine).
# Expects bundle/sparse-attention.tar.gz (scripts/bundle.sh); writes logs to $OUT.
# Steps: all CUDA tests; the demo; every path's result hashes (fingerprint); compute-sanitizer memcheck and racecheck on the smallest op tests; the benchmark;
# then scripts/peers.py on the same card; ptx: every kernel's registers and stack frame from ptxas.
# profile: ncu --set full on the forward, dQ and dK/dV of one case (CASE, default "all (causal)", fp16 D64 4k), one launch
# each after warm-up, with the per-SASS-line page (executed instructions and stall samples) gzipped beside it.
# Usage: scripts/gpu-run.sh [ptx|tests|fingerprint|sanitize|bench|profile|all]...
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/sa && tar -C /tmp/sa -xzf bundle/sparse-attention.tar.gz
app=/tmp/sa/app
export SPARSE_ATTENTION_DEVICES=cuda DOTNET_CLI_TELEMETRY_OPTOUT=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/card.txt"
steps=${*:-all}
has() { [[ " $steps " == *" $1 "* || " $steps " == *" all "* ]]; }

if has ptx; then
  "$app/SparseAttention.Cli" ptx --out /tmp/ptx >/dev/null
  # The machine's ptxas is the driver JIT's version (CUDA 13 on the H200), which can differ from 12.4's: WARPSYNC.ALL
  # counts the convergence barriers it adds.
  for f in /tmp/ptx/*.ptx; do echo "$(basename "$f"): $(ptxas -arch=sm_90 -v "$f" -o /tmp/k.cubin 2>&1 | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes stack frame' | tr '\n' ' ') WARPSYNC $(cuobjdump -sass /tmp/k.cubin | grep -c WARPSYNC.ALL)"; done | tee "$OUT/ptxas.txt"
fi
if has tests; then
  timeout 270 "$app/SparseAttention.Tests" --timeout 260s --report-trx --report-trx-filename cuda.trx --results-directory $OUT >"$OUT/tests.log" 2>&1; echo "tests exit $?"
  grep -E "^failed |exceeds|total:|failed:|succeeded:|skipped:" "$OUT/tests.log" | head -40
  timeout 60 "$app/SparseAttention.Cli" demo >"$OUT/demo.log" 2>&1; echo "demo exit $?"; cat "$OUT/demo.log"
fi
if has fingerprint; then
  timeout 120 "$app/SparseAttention.Cli" fingerprint >"$OUT/fingerprint.txt" 2>&1; echo "fingerprint exit $?"
  if grep -q H200 "$OUT/card.txt"; then
    diff <(tail -n +2 docs/fingerprints/h200.txt) "$OUT/fingerprint.txt" && echo "fingerprint: the same bits as docs/fingerprints/h200.txt"
  else
    cat "$OUT/fingerprint.txt"
  fi
fi
if has sanitize; then
  # The op tests on awkward layouts, and the fused kernels with autoregressAtKey, empty rows and columns, fp16 and bf16.
  filter='FullyQualifiedName~SoftmaxAutoregressAtKeyOnBidirectionalLayoutAndEmptyRows|FullyQualifiedName~EveryOpOnAwkwardLayouts|FullyQualifiedName~FusedFp16AttentionTests.FeatureMatchesReference|FullyQualifiedName~FusedBf16AttentionTests.FeatureMatchesReference'
  export SPARSE_ATTENTION_FEATURES="custom,autoregress inside a tile,autoregress on a tile boundary,dense autoregress"
  for tool in memcheck racecheck; do
    timeout 115 compute-sanitizer --tool $tool --print-limit 20 "$app/SparseAttention.Tests" --filter "$filter" >"$OUT/sanitize-$tool.log" 2>&1
    echo "$tool exit $?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|succeeded:|failed:' "$OUT/sanitize-$tool.log" | tr '\n' ' ')"
  done
fi
if has profile; then
  # --set full on one launch per kernel (about 30 s each on the H200), and the per-instruction page: executed counts and
  # stall samples per SASS line, which is where the JIT's WARPSYNCs and the branch joins' moves showed.
  for kernel in ForwardKernel QueryGradKernel KeyValueGradKernel; do
    timeout 170 ncu --kernel-name "regex:$kernel" --launch-skip 6 --launch-count 1 --set full --import-source no -o /tmp/$kernel \
      "$app/SparseAttention.Cli" bench --section attention --case "${CASE:-all (causal)}" --dtype fp16 >/tmp/ncu-$kernel.log 2>&1
    echo "ncu $kernel exit $?"
    ncu --import /tmp/$kernel.ncu-rep --page details >"$OUT/ncu-$kernel.txt" 2>&1
    ncu --import /tmp/$kernel.ncu-rep --page source --csv --print-source sass 2>&1 | gzip >"$OUT/source-$kernel.csv.gz"
    grep -E "Duration|Registers Per|Achieved Occupancy|Issue Slots Busy" "$OUT/ncu-$kernel.txt" | tr -s ' ' | tr '\n' ';'; echo
  done
fi
if has bench; then
  timeout 300 "$app/SparseAttention.Cli" bench >"$OUT/bench.log" 2>&1; echo "bench exit $?"
  PEERS_BUDGET_S=${PEERS_BUDGET_S:-100} PYTHONUNBUFFERED=1 timeout 330 python3 scripts/peers.py >"$OUT/peers.log" 2>&1; echo "peers exit $?"
  sed -n '/^$/,$p' "$OUT/bench.log"
  "$app/SparseAttention.Cli" compare --bench "$OUT/bench.log" --peers "$OUT/peers.log" | tee "$OUT/compare.md"
fi
