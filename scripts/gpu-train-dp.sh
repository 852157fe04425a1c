#!/usr/bin/env bash
# The trainer's data-parallel, tokenizer and plot checks in one device call (2 GPUs of one host), from the folder
# scripts/publish-tinygpt.sh made. Prints tokens/s on 1 and 2 GPUs at the GPT-2-small shape, the loss curves of 1 and 2
# GPUs on the same global batch side by side, a resume across GPU counts, and a GPT-2-tokenized --data run with its
# plot. Logs and pictures go to $OUT.
#   gpu-train-dp.sh [GPUS] [trace] [bench] [curve] [resume] [text]
#     GPUS: the larger count to compare with one GPU (default 2); the steps to run (default all five; each process
#     compiles its kernels first, so all five take several minutes: split them over two calls when a call is capped).
#     trace: 3 steps of a 2-layer GPT-2-wide model on 1, then GPUS GPUs, with XFORMERS_TRACE_CONTEXT=1 (which CUDA
#     context each handle lives in, per rank); when the GPUS-rank run fails, the later steps are skipped.
set -uo pipefail
gpus=${1:-2}
shift || true
steps=${*:-trace bench curve resume text}
want() { [[ " $steps " == *" $1 "* ]]; }
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cd "$out"
bin="$here/XFormers.TinyGpt"
export XFORMERS_DEVICE=cuda
gpt2="--layers 12 --d 768 --heads 12 --seq 1024 --vocab 50304"
small="--layers 2 --d 768 --heads 12 --seq 1024 --vocab 50304 --batch 4"
# The first loss column of "step N | loss X | ..." lines, one per step.
losses() { grep -E '^step ' "$1" | awk -F'|' '{ gsub(/[^0-9.]/, "", $2); print $2 }'; }
{
nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.mem --format=csv
ldconfig -p | grep -m1 libnccl || ls /usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2 2>/dev/null || echo "libnccl.so.2: not on the loader path (set XFORMERS_NCCL)"

if want trace; then
echo "== CUDA contexts: 1 GPU, then $gpus ranks (3 steps, 2 layers at GPT-2 width; XFORMERS_TRACE_CONTEXT=1)"
XFORMERS_TRACE_CONTEXT=1 timeout 150 "$bin" --bench 3 $small 2>&1 | grep -E '^context|bench:|rror|xception'
XFORMERS_TRACE_CONTEXT=1 NCCL_DEBUG=WARN timeout 150 "$bin" --gpus "$gpus" --bench 3 $small 2>&1 | grep -E '^context|data parallel|bench:|rank|rror|xception|NCCL'
code=${PIPESTATUS[0]}
if [ "$code" -ne 0 ]; then
  echo "the $gpus-rank run failed (exit $code): the later steps are skipped"
  exit "$code"
fi
fi

if want bench; then
echo "== GPT-2-small shape: tokens/s on 1 GPU (batch 8), then $gpus GPUs (global batch 8, then 8 per GPU)"
timeout 300 "$bin" --bench 20 $gpt2 --batch 8 2>&1 | grep -E 'data parallel|bench:|rror'
timeout 300 "$bin" --gpus "$gpus" --bench 20 $gpt2 --batch 8 2>&1 | grep -E 'data parallel|bench:|rank|rror'
timeout 300 "$bin" --gpus "$gpus" --bench 20 $gpt2 --batch $((8 * gpus)) 2>&1 | grep -E 'data parallel|bench:|rank|rror'
fi

if want curve || want resume; then
echo "== loss curve: 1 GPU against $gpus GPUs, same global batch (seed model, 200 steps, fp16)"
timeout 240 "$bin" --plain --print-every 1 --steps 200 --sample 0 --out one > one.log 2>&1
timeout 240 "$bin" --plain --print-every 1 --steps 200 --sample 0 --out many --gpus "$gpus" > many.log 2>&1
tail -2 one.log; tail -2 many.log
paste <(losses one.log) <(losses many.log) | awk '
  { d = $1 - $2; if (d < 0) d = -d; r = d / ($1 > 1e-3 ? $1 : 1e-3); if (r > worst) { worst = r; at = NR - 1 } n++ }
  END { printf "loss curves: %d steps compared, largest relative difference %.2e at step %d\n", n, worst, at }'
# Same weights and batches: step 0 differs only in how the GEMMs split the batch (fp16 operands, fp32 sums), the
# first 50 steps by that compounded through AdamW.
paste <(losses one.log) <(losses many.log) | awk '
  { d = $1 - $2; if (d < 0) d = -d; r = d / ($1 > 1e-3 ? $1 : 1e-3); if (NR == 1) first = r; if (NR <= 50 && r > early) early = r }
  END { if (NR == 0) { print "fp16 tolerance: no steps to compare"; exit }
        printf "fp16 tolerance: step 0 %.2e (within 1e-3: %s), steps 0-49 at most %.2e (within 1e-2: %s)\n",
        first, first <= 1e-3 ? "yes" : "NO", early, early <= 1e-2 ? "yes" : "NO" }'
cp one/tinygpt-loss.png loss-1gpu.png; cp many/tinygpt-loss.png "loss-${gpus}gpu.png"
fi

if want resume; then
echo "== resume across GPU counts: 100 steps on 1 GPU, then $gpus GPUs to 200, against the straight 1-GPU run"
timeout 240 "$bin" --plain --print-every 1 --steps 100 --sample 0 --out half > half.log 2>&1
timeout 240 "$bin" --plain --print-every 1 --steps 200 --sample 0 --out half --resume half/tinygpt.safetensors --gpus "$gpus" > resumed.log 2>&1
paste <(losses one.log | tail -100) <(losses resumed.log) | awk '
  { d = $1 - $2; if (d < 0) d = -d; r = d / ($1 > 1e-3 ? $1 : 1e-3); if (r > worst) worst = r; n++ }
  END { printf "resumed on %s GPUs: %d steps compared, largest relative difference %.2e\n", "'"$gpus"'", n, worst }'
fi

if want text; then
echo "== GPT-2 tokenizer: --prepare once, then train on the memory-mapped token file ($gpus GPUs), plot"
timeout 120 "$bin" --data "$here/sample.txt" --prepare tokens.bin
timeout 300 "$bin" --plain --data tokens.bin --steps 300 --print-every 100 --batch 32 --gpus "$gpus" --out text --sample 200 2>&1 | tail -8
cp text/tinygpt-loss.png text-loss.png
fi
rm -rf one many half text/*.safetensors
} 2>&1 | tee "$out/train-dp.log"
