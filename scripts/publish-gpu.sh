#!/usr/bin/env bash
# Publishes the GPU harness (bench/XFormers.Bench) self-contained, single-file, for linux-x64, and copies the
# device scripts beside it. The GPU machine has no .NET; the folder travels there as-is.
#   scripts/publish-gpu.sh [OUT_DIR]      (default: .publish in the repository root, git-ignored)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.publish}
dotnet publish "$root/bench/XFormers.Bench/XFormers.Bench.csproj" -c Release -r linux-x64 --self-contained \
  -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:InvariantGlobalization=true \
  -p:DebugType=none -o "$out" --nologo -v quiet
cp "$root/scripts/gpu-run.sh" "$root/scripts/attention_torch.py" "$out/"
ls -la "$out"
