#!/usr/bin/env bash
# Distributed training with torchrun, on one node or several.
#
#   tools/dist_train.sh CONFIG NUM_DEVICES [train.py args...]
#
# NUM_DEVICES processes per node; each takes the accelerator of its local rank
# (NVIDIA GPU with NCCL, Ascend NPU with HCCL when torch_npu is installed) or,
# on a machine without either, trains on the CPU with gloo.
# Multi-node: run the same command on every node with
#   NNODES (default 1), NODE_RANK (0..NNODES-1), MASTER_ADDR (node 0's address,
#   default 127.0.0.1) and PORT (default 29500) set in the environment.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_DEVICES [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
NUM_DEVICES=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}

if [ ! -f "$CONFIG" ]; then
    echo "$0: config file not found: $CONFIG" >&2
    exit 2
fi
case $NUM_DEVICES in
    ''|*[!0-9]*|0) echo "$0: NUM_DEVICES must be a positive integer, got '$NUM_DEVICES'" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Each process gets an equal share of the CPU threads unless the user chose.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / NUM_DEVICES > 0 ? $(nproc) / NUM_DEVICES : 1 ))}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NUM_DEVICES" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
