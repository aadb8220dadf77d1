#!/bin/bash
# A Mid-Block Efficient Tuning sweep as a SLURM job array: one array task per sweep cell, each cell itself
# data-parallel over the node's GPUs (accelerate launch), then one summary job after all cells.
#
#   n=$(sftscope sweep $SWEEP --list | wc -l)          # how many cells (seed-major order)
#   jid=$(sbatch --parsable --array=0-$((n - 1))%8 examples/slurm_sweep.sh)
#   sbatch --dependency=afterany:$jid --wrap "sftscope sweep $SWEEP --summarize-only"
#
# Every task runs the same `sftscope sweep` command with --cell; the Base's scores are computed once (the first
# cell to finish them writes OUT/base/, the others reuse it) and a finished cell is skipped on a re-run, so a
# failed or preempted task is simply resubmitted. Rank 0 of each cell writes its run folder; the sweep folder's
# config.json and tables are updated under a file lock, so the array's tasks never lose each other's results.
#SBATCH --job-name=sftscope-sweep
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=08:00:00
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail

# The sweep: the same options for every task (the --out folder holds all cells).
SWEEP=${SWEEP:-"--base allenai/OLMo-2-0425-1B --train gsm8k --k 5 --seeds 0,1,2 --limit 500 \
  --retention-limit 200 --batch-size 8 --out runs/sweep-olmo1b"}

# One cell, data-parallel on this node's GPUs (FSDP or DeepSpeed: add --config_file examples/accelerate_fsdp.yaml).
accelerate launch --num_processes "${SLURM_GPUS_ON_NODE:-8}" -m sftscope sweep $SWEEP --cell "$SLURM_ARRAY_TASK_ID"
