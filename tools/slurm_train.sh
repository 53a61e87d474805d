#!/usr/bin/env bash
# Training on a SLURM cluster: one task per device, mmengine's slurm launcher.
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#
# GPUS is the total number of devices (tasks); GPUS_PER_NODE those on each
# node (also the --gres count). mmengine reads the rank, world size and master
# address from SLURM's environment; PORT (default 29500) sets the master port.
#
# Preemption and time limits (docs/training.md#preemption): on SIGTERM, or the
# signal asked for with srun's --signal, every task saves at the end of its
# iteration and exits 75; with --requeue the job requeues itself
# (scontrol requeue), and --resume makes the requeued job continue:
#
#   SRUN_ARGS="--signal=USR1@120" tools/slurm_train.sh PARTITION JOB CONFIG \
#       WORK_DIR --resume --requeue
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

if [ ! -f "$CONFIG" ]; then
    echo "$0: config file not found: $CONFIG" >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MASTER_PORT=${PORT:-29500}

# SRUN_ARGS is split on spaces on purpose (several srun options).
# shellcheck disable=SC2086
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "$@"
