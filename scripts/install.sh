#!/usr/bin/env bash
# Set up sftscope in a virtual environment (.venv by default).
# On a machine without an NVIDIA GPU it installs the CPU build of torch first: a plain `pip install torch`
# would pull a multi-GB CUDA build. SFTSCOPE_TORCH overrides the pip arguments for torch, e.g.
#   SFTSCOPE_TORCH="torch --index-url https://download.pytorch.org/whl/cpu" bash scripts/install.sh
# With an NVIDIA GPU, torch comes from PyPI with the package (or keep the CUDA build you already have).
# SFTSCOPE_EXTRAS picks the optional dependency groups (default dev; CI adds eval = lm-evaluation-harness).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SFTSCOPE_VENV:-.venv}"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
if [ -n "${SFTSCOPE_TORCH:-}" ]; then
  read -r -a torch_args <<< "$SFTSCOPE_TORCH"
  "${pip[@]}" "${torch_args[@]}"
elif ! command -v nvidia-smi >/dev/null 2>&1; then
  # A CPU wheel: the one on this machine's disk, else PyTorch's CPU index.
  "${pip[@]}" "torch==2.13.0" 2>/dev/null || \
    "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cpu
fi
"${pip[@]}" -e ".[${SFTSCOPE_EXTRAS:-dev}]"
echo "sftscope installed in $venv: activate with 'source $venv/bin/activate'"
