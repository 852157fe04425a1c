#!/usr/bin/env bash
# Runs on the GPU machine, from the folder scripts/publish-gpu.sh made: one call does every step named.
#   gpu-run.sh [ptx] [conformance] [bench] [tutorial] [dump]     (FILTER=S narrows conformance and ptx to matching variants;
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
      for f in /tmp/ptx/*.ptx; do
        name=$(basename "$f" .ptx)
        usage=$(ptxas -arch=sm_90 -v "$f" -o "/tmp/ptx/$name.cubin" 2>&1 | grep -E "registers|spill" | tr -s ' \n' ' ')
        hmma=$(cuobjdump -sass "/tmp/ptx/$name.cubin" 2>/dev/null | grep -c HMMA)
        ldl=$(cuobjdump -sass "/tmp/ptx/$name.cubin" 2>/dev/null | grep -cE "LDL|STL")
        echo "$name: HMMA $hmma, LDL/STL $ldl; $usage"
      done | tee "$out/ptx.log" ;;
    conformance)
      "$bin" conformance ${FILTER:+--filter "$FILTER"} 2>&1 | tee "$out/conformance.log"
      status=$((status | PIPESTATUS[0])) ;;
    bench)
      "$bin" bench --out "$out" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.log"
      python3 "$here/attention_torch.py" bench --out "$out" 2>&1 | tee -a "$out/bench.log"
      python3 "$here/attention_torch.py" table --out "$out" 2>&1 | tee "$out/table.md" ;;
    tutorial)
      "$bin" tutorial 2>&1 | tee "$out/tutorial.log"
      status=$((status | PIPESTATUS[0])) ;;
    dump)
      "$bin" --dump /tmp/dump 2>&1 | tail -1
      python3 "$here/attention_torch.py" check /tmp/dump/dump.safetensors 2>&1 | tee "$out/dump.log"
      status=$((status | PIPESTATUS[0])) ;;
    *) echo "unknown step $step"; status=2 ;;
  esac
done
exit $status
