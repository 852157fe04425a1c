#!/usr/bin/env bash
# Publishes samples/XFormers.TinyGpt self-contained, single-file, for linux-x64, with the device script, the
# PyTorch reference and a text for --data, for a device call that carries the folder.
#   scripts/publish-tinygpt.sh [OUT_DIR]      (default: .publish/tinygpt in the repository root, git-ignored)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.publish/tinygpt}
dotnet publish "$root/samples/XFormers.TinyGpt/XFormers.TinyGpt.csproj" -c Release -r linux-x64 --self-contained \
  -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:InvariantGlobalization=true \
  -p:DebugType=none -o "$out" --nologo -v quiet
cp "$root/scripts/tinygpt-device.sh" "$root/scripts/gpu-train-dp.sh" "$root/scripts/tinygpt_torch.py" "$out/"
cat "$root"/docs/*.md > "$out/sample.txt"
ls -la "$out"
