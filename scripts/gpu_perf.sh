#!/usr/bin/env bash
# The GPU checks of the performance work, in one go (docs/PERFORMANCE.md says where each figure goes):
#   1. the fused Triton loss compiled on the GPU against the float64 torch objective (tests/fused_loss_check.py),
#   2. the loss benchmark (every method vs F.cross_entropy, the Triton kernel in its own column),
#   3. the training benchmark, images and audio, as the recipes run it, then lsr_os_tc with the Triton loss.
# Usage: bash scripts/gpu_perf.sh [OUTPUT_DIR]   (default: outputs/gpu_perf; needs torch, timm, transformers,
# accelerate, torchaudio, datasets and evaluate importable, e.g. the project's venv or wheels on PYTHONPATH)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-outputs/gpu_perf}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 - <<'PY' | tee "$out/versions.txt"
import torch, transformers, timm
print(torch.cuda.get_device_name(), "torch", torch.__version__, "transformers", transformers.__version__, "timm", timm.__version__)
PY
python3 tests/fused_loss_check.py cuda 2>&1 | tee "$out/fused_loss_check.txt"
python3 scripts/bench.py loss --device cuda 2>&1 | tee "$out/loss.md"
python3 scripts/bench.py train --batch 128 512 2>&1 | tee "$out/train.md"
python3 scripts/bench.py train --batch 128 512 --modality image --triton 2>&1 | tee "$out/train_triton.md"
