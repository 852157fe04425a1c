#!/usr/bin/env bash
# The trainer's GPU checks and timings in one device call, from the folder scripts/publish-tinygpt.sh made
# (XFormers.TinyGpt single-file, tinygpt_torch.py, sample.txt). Logs and artifacts go to $OUT.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cd "$out"
bin="$here/XFormers.TinyGpt"
py="python3 $here/tinygpt_torch.py"
export XFORMERS_DEVICE=cuda PYTHONUNBUFFERED=1
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
echo "== .NET seed run (400 steps)"
timeout 240 "$bin" --plain --checkpoint seed.safetensors --plot seed-loss.png
echo "== PyTorch reads the .NET checkpoint"
timeout 120 python3 -c "import safetensors.torch as s; t = s.load_file('seed.safetensors'); print('load_file:', len(t), 'tensors;', {k: tuple(v.shape) for k, v in list(t.items())[:4]})"
timeout 120 $py check seed.safetensors
echo "== .NET seed bench"
timeout 120 "$bin" --bench 300
timeout 120 "$bin" --bench 300
timeout 120 "$bin" --profile 50
echo "== PyTorch seed: eager, then torch.compile"
timeout 120 $py bench
timeout 240 $py bench --compile
echo "== GPT-2-small shape: .NET, then PyTorch eager"
timeout 300 "$bin" --bench 10 --layers 12 --d 768 --heads 12 --seq 1024 --batch 8 --vocab 50304
timeout 300 "$bin" --profile 3 --layers 12 --d 768 --heads 12 --seq 1024 --batch 8 --vocab 50304
timeout 240 $py bench --gpt2 --timed 10 --repeats 3
echo "== resume: 200 steps, then --resume to 400, against the straight 400-step run"
timeout 120 "$bin" --plain --steps 200 --checkpoint half.safetensors --plot /tmp/half.png > half.log 2>&1
timeout 120 "$bin" --plain --resume half.safetensors --steps 400 --checkpoint resumed.safetensors --plot /tmp/resumed.png > resumed.log 2>&1
tail -3 resumed.log
timeout 120 $py same seed.safetensors resumed.safetensors
echo "== PyTorch seed training log"
timeout 120 $py train
echo "== .NET --data (character-level) with sampling"
timeout 120 "$bin" --plain --data "$here/sample.txt" --steps 300 --print-every 100 --checkpoint text.safetensors --plot text-loss.png
rm -f half.safetensors resumed.safetensors
} 2>&1 | tee "$out/device.log"
