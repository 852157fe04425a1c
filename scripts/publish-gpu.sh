#!/usr/bin/env bash
# Publishes the GPU harness (bench/XFormers.Bench) self-contained, single-file, for linux-x64, and copies the
# device scripts beside it. The GPU machine has no .NET; the folder travels there as-is.
#   scripts/publish-gpu.sh [OUT_DIR]      (default: .publish/xformers-bench in the repository root, git-ignored)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.publish/xformers-bench}
dotnet publish "$root/bench/XFormers.Bench/XFormers.Bench.csproj" -c Release -r linux-x64 --self-contained \
  -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:InvariantGlobalization=true \
  -p:DebugType=none -o "$out" --nologo -v quiet
# Native helpers BenchmarkDotNet brings for disassembly and ETW tracing, unused here: the device call carries 64 MiB at most.
rm -rf "$out/consumer" "$out/amd64" "$out/libcapstone.so" "$out"/*.xml
cp "$root/scripts/gpu-run.sh" "$root/scripts/attention_torch.py" "$out/"
ls -la "$out"
