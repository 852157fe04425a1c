#!/usr/bin/env bash
# The trainer's GPU checks and timings in one device call, from the folder scripts/publish-tinygpt.sh made
# (XFormers.TinyGpt single-file, tinygpt_torch.py, sample.txt). Logs and artifacts go to $OUT.
#   tinygpt-device.sh [full|quick|gate]   quick: no torch.compile, no --data run, 3 GPT-2-shaped steps
#   gate: the seed run and its bit-identical resume (the GPU kernels' correctness), then the GPT-2-small shape against
#   torch.compile in the same call, its profile, and the odd-vocabulary and bf16 paths
set -uo pipefail
mode=${1:-full}
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cd "$out"
bin="$here/XFormers.TinyGpt"
py="python3 $here/tinygpt_torch.py"
export XFORMERS_DEVICE=cuda PYTHONUNBUFFERED=1
gpt2="--layers 12 --d 768 --heads 12 --seq 1024 --batch 8 --vocab 50304"
# peak LABEL CMD...: runs CMD while nvidia-smi samples the GPU memory of compute processes every 100 ms, then prints the
# largest sample (the process's whole device footprint: CUDA context, allocator pools, workspaces), for ours and PyTorch alike.
peak() {
  local label=$1; shift
  nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits -lms 100 > "peak-$label.log" 2>/dev/null &
  local sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  echo "peak device memory ($label): $(sort -n "peak-$label.log" | tail -1) MiB"
}
# hang-watch SECONDS CMD...: runs CMD; if it is still running after SECONDS, prints the kernels resident on the GPU
# (cuda-gdb attached to it) and kills it.
hang_watch() {
  local limit=$1; shift
  "$@" &
  local pid=$!
  for _ in $(seq "$limit"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "!! still running after ${limit} s; resident kernels:"
    timeout 60 /usr/local/cuda/bin/cuda-gdb -p "$pid" -batch -ex "info cuda kernels" -ex "info cuda blocks" 2>&1 | tail -20
    kill -9 "$pid"
  fi
  wait "$pid"
}
if [ "$mode" = gate ]; then
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
echo "== .NET seed run (400 steps), then 200 steps and --resume to 400 against it"
hang_watch 60 "$bin" --plain --checkpoint seed.safetensors --plot seed-loss.png > seed.log 2>&1; tail -3 seed.log
timeout 120 "$bin" --plain --steps 200 --checkpoint half.safetensors --plot /tmp/half.png > half.log 2>&1
timeout 120 "$bin" --plain --resume half.safetensors --steps 400 --checkpoint resumed.safetensors --plot /tmp/resumed.png > resumed.log 2>&1
tail -2 resumed.log
timeout 120 $py same seed.safetensors resumed.safetensors
echo "== GPT-2-small shape: .NET, then torch.compile, same call"
peak dotnet timeout 300 "$bin" --plain --bench 20 $gpt2
peak torch-compile timeout 300 $py bench --gpt2 --compile --timed 10 --repeats 3
peak torch-eager timeout 300 $py bench --gpt2 --timed 10 --repeats 3
echo "== .NET profile (a wait after every operation)"
timeout 300 "$bin" --profile 3 $gpt2
echo "== odd vocabulary (50257: rows off the 8-element grid), bf16"
timeout 300 "$bin" --plain --bench 5 ${gpt2/50304/50257}
timeout 300 "$bin" --plain --bench 5 --dtype bf16 $gpt2
rm -f half.safetensors resumed.safetensors
} 2>&1 | tee "$out/device.log"
exit
fi
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
echo "== .NET seed run (400 steps)"
timeout 240 "$bin" --plain --checkpoint seed.safetensors --plot seed-loss.png
echo "== PyTorch reads the .NET checkpoint"
timeout 120 $py check seed.safetensors
echo "== resume: 200 steps, then --resume to 400, against the straight 400-step run"
timeout 120 "$bin" --plain --steps 200 --checkpoint half.safetensors --plot /tmp/half.png > half.log 2>&1
timeout 120 "$bin" --plain --resume half.safetensors --steps 400 --checkpoint resumed.safetensors --plot /tmp/resumed.png > resumed.log 2>&1
tail -3 resumed.log
timeout 120 $py same seed.safetensors resumed.safetensors
echo "== .NET seed bench and profile"
timeout 120 "$bin" --bench 300
timeout 120 "$bin" --bench 300
timeout 120 "$bin" --profile 50
echo "== PyTorch seed: eager${mode/quick/}"
timeout 120 $py bench
[ "$mode" = full ] && timeout 240 $py bench --compile
echo "== GPT-2-small shape: .NET, then PyTorch eager"
if [ "$mode" = full ]; then
  timeout 300 "$bin" --bench 10 $gpt2
  timeout 300 "$bin" --profile 3 $gpt2
  timeout 240 $py bench --gpt2 --timed 10 --repeats 3
else
  timeout 300 "$bin" --profile 3 $gpt2
  timeout 240 $py bench --gpt2 --timed 5 --repeats 3
fi
if [ "$mode" = full ]; then
  echo "== PyTorch seed training log"
  timeout 120 $py train
  echo "== .NET --data (character-level) with sampling"
  timeout 120 "$bin" --plain --data "$here/sample.txt" --steps 300 --print-every 100 --checkpoint text.safetensors --plot text-loss.png
fi
rm -f half.safetensors resumed.safetensors
} 2>&1 | tee "$out/device.log"
