#!/usr/bin/env bash
# Runs on the GPU machine, from the folder scripts/publish-gpu.sh made: one call does every step named.
#   gpu-run.sh [ptx] [conformance] [bench] [tutorial] [dump] [reliability] [decode] [mods] [local]   (FILTER=S,... narrows conformance and ptx to
#                                                      variants whose names contain one of the substrings;
#                                                      BENCH_ARGS adds options to 'bench', e.g. "--throughput --bdn")
# Logs go to $OUT (the device tool brings them back); the exit status is non-zero when conformance misses.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
bin="$here/XFormers.Bench"
export XFORMERS_DEVICE=cuda PYTHONUNBUFFERED=1 DOTNET_gcServer=0
status=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$out/gpu.txt"
for step in "$@"; do
  case $step in
    ptx)
      # ILGPU's PTX for sm_90 → ptxas resource usage (registers, stack, spills) and the tensor-core instructions in SASS.
      "$bin" ptx /tmp/ptx ${FILTER:+--filter "$FILTER"} > /dev/null
      ls /tmp/ptx/*.ptx | xargs -P "$(nproc)" -I{} bash -c '
        f={}; name=$(basename "$f" .ptx)
        usage=$(ptxas -arch=sm_90 -v "$f" -o "/tmp/ptx/$name.cubin" 2>&1 | grep -E "registers|spill|error" | tr -s " \n" " ")
        hmma=$(cuobjdump -sass "/tmp/ptx/$name.cubin" 2>/dev/null | grep -c HMMA)
        ldsm=$(cuobjdump -sass "/tmp/ptx/$name.cubin" 2>/dev/null | grep -c LDSM)
        ldl=$(cuobjdump -sass "/tmp/ptx/$name.cubin" 2>/dev/null | grep -cE "LDL|STL")
        echo "$name: HMMA $hmma, LDSM $ldsm, LDL/STL $ldl; $usage"' | sort | tee "$out/ptx.log" ;;
    hopper-ptx)
      # The generator's sm_90a forward modules through ptxas: registers, spills, and wgmma (HGMMA) and TMA (UTMALDG) in SASS.
      "$bin" ptx /tmp/hptx --hopper-only ${FILTER:+--filter "$FILTER"} > /dev/null
      ls /tmp/hptx/*.sm90a.ptx | xargs -P "$(nproc)" -I{} bash -c '
        f={}; name=$(basename "$f" .sm90a.ptx)
        ptxas -arch=sm_90a -v "$f" -o "/tmp/hptx/$name.cubin" > "/tmp/hptx/$name.ptxas" 2>&1
        usage=$(grep -E "registers|spill|error|C75" "/tmp/hptx/$name.ptxas" | cut -c1-160 | tr -s " \n" " ")
        hgmma=$(cuobjdump -sass "/tmp/hptx/$name.cubin" 2>/dev/null | grep -c HGMMA)
        tma=$(cuobjdump -sass "/tmp/hptx/$name.cubin" 2>/dev/null | grep -c UTMALDG)
        ldl=$(cuobjdump -sass "/tmp/hptx/$name.cubin" 2>/dev/null | grep -cE "LDL|STL")
        echo "$name: HGMMA $hgmma, UTMALDG $tma, LDL/STL $ldl; $usage"' | sort | tee "$out/hopper-ptx.log"
      for f in /tmp/hptx/*.ptxas; do echo "== $f"; cat "$f"; done > "$out/hopper-ptxas.log" ;;
    first)
      # Time to the first result in a fresh process, cold (empty driver JIT cache) then warm, per variant named in FIRST.
      cache=$(mktemp -d)
      for v in ${FIRST:-None_None_F16_128 Causal_None_BF16_64}; do
        CUDA_CACHE_PATH=$cache/$v "$bin" first-result --filter "$v" | grep first-result | sed 's/^/cold: /' | tee -a "$out/first.log"
        CUDA_CACHE_PATH=$cache/$v "$bin" first-result --filter "$v" | grep first-result | sed 's/^/warm: /' | tee -a "$out/first.log"
      done
      "$bin" ptx-target | grep ptx-target | tee -a "$out/first.log" ;;
    gate)
      "$bin" bench --gate --out "$out" ${BENCH_ARGS:-} 2>&1 | tee "$out/gate.log"
      python3 "$here/attention_torch.py" gate --out "$out" 2>&1 | tee -a "$out/gate.log"
      python3 "$here/attention_torch.py" gate-table --out "$out" 2>&1 | tee "$out/gate.md" ;;
    conformance)
      # Compiling a variant (ILGPU, then the driver's JIT: 5-17 s a 16-bit variant) dominates, and one process compiles one
      # kernel at a time: SHARDS processes (default 12) each check every SHARDS-th variant.
      n=${SHARDS:-12}
      for i in $(seq 0 $((n - 1))); do "$bin" conformance ${FILTER:+--filter "$FILTER"} --shard "$i/$n" > "/tmp/conformance-$i.log" 2>&1 & done
      wait
      cat /tmp/conformance-*.log | grep -E '^(PASS|FAIL)' | sort -k2 > "$out/conformance.log"
      grep -h '^conformance:.*passed' /tmp/conformance-*.log >> "$out/conformance.log"
      passed=$(grep -c '^PASS' "$out/conformance.log"); failed=$(grep -c '^FAIL' "$out/conformance.log")
      echo "conformance: $passed passed, $failed failed ($n processes)" | tee -a "$out/conformance.log"
      grep '^FAIL' "$out/conformance.log"
      [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || status=1 ;;
    bench)
      "$bin" bench --out "$out" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.log"
      python3 "$here/attention_torch.py" bench --out "$out" 2>&1 | tee -a "$out/bench.log"
      python3 "$here/attention_torch.py" table --out "$out" 2>&1 | tee "$out/table.md" ;;
    mods)
      # Score and mask mods (issue 11): FlexAttention's cases against fp64, then timed beside FlexAttention (mods.csv, flex.csv).
      "$bin" mods --out "$out" 2>&1 | tee "$out/mods.log"
      status=$((status | PIPESTATUS[0]))
      python3 "$here/attention_torch.py" flex --out "$out" 2>&1 | tee -a "$out/mods.log" ;;
    local)
      # Local attention (issue 12): the sliding-window variant against fp64 on sampled rows, timed beside causal (local.csv),
      # then FlexAttention's sliding-window block mask on the same shapes (flex_local.csv).
      "$bin" local --out "$out" 2>&1 | tee "$out/local.log"
      status=$((status | PIPESTATUS[0]))
      python3 "$here/attention_torch.py" flex-local --out "$out" 2>&1 | tee -a "$out/local.log" ;;
    decode)
      # KV-cache decoding (issue 12): the KV-cache masks and split-KV against fp64, then the decode table (decode.csv),
      # then SDPA's flash and cuDNN backends on the same shapes (torch-decode.csv).
      "$bin" decode --out "$out" 2>&1 | tee "$out/decode.log"
      status=$((status | PIPESTATUS[0]))
      python3 "$here/attention_torch.py" decode --out "$out" 2>&1 | tee -a "$out/decode.log" ;;
    tutorial)
      "$bin" tutorial 2>&1 | tee "$out/tutorial.log"
      status=$((status | PIPESTATUS[0])) ;;
    dump)
      "$bin" --dump /tmp/dump 2>&1 | tail -1
      python3 "$here/attention_torch.py" check /tmp/dump/dump.safetensors 2>&1 | tee "$out/dump.log"
      status=$((status | PIPESTATUS[0])) ;;
    reliability)
      # docs/RELIABILITY.md on the device: past 2^31 K/V elements, the non-finite matrix, bad inputs, 200 create/run/dispose
      # rounds (the sm_90a kernels where a variant has them); then the non-finite matrix again on ILGPU's mma.sync kernels.
      # PASS / FAIL lines; RELIABILITY_ARGS adds options (e.g. "--rounds 50").
      "$bin" reliability --large ${RELIABILITY_ARGS:-} 2>&1 | tee "$out/reliability.log"
      status=$((status | PIPESTATUS[0]))
      echo "== XFORMERS_BACKEND=ilgpu" | tee -a "$out/reliability.log"
      XFORMERS_BACKEND=ilgpu "$bin" reliability --cases nonfinite --families F16,BF16 2>&1 | tee -a "$out/reliability.log"
      status=$((status | PIPESTATUS[0])) ;;
    *) echo "unknown step $step"; status=2 ;;
  esac
done
exit $status
