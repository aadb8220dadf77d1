#!/usr/bin/env bash
# One-GPU end-to-end check (an H200 in about 5 minutes): analyze vs bare forward, one tune cell, evaluate.
# Offline: builds its random OLMo-2-0425-1B-shaped pair, tokenizer and GSM8K-format data under --out.
# Usage: bash scripts/gpu_check.sh --out /tmp/gpu-check [--tiny] [--rounds 3] [--engine-cost]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$(pwd)/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" scripts/gpu_check.py "$@"
