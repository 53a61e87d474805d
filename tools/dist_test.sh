#!/usr/bin/env bash
# Distributed evaluation with torchrun, on one node or several.
#
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_DEVICES [test.py args...]
#
# Devices and multi-node variables (NNODES, NODE_RANK, MASTER_ADDR, PORT) as
# in tools/dist_train.sh; metrics are gathered across all processes.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_DEVICES [test.py args...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NUM_DEVICES=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}

if [ ! -f "$CONFIG" ]; then
    echo "$0: config file not found: $CONFIG" >&2
    exit 2
fi
if [ ! -f "$CHECKPOINT" ]; then
    echo "$0: checkpoint not found: $CHECKPOINT" >&2
    exit 2
fi
case $NUM_DEVICES in
    ''|*[!0-9]*|0) echo "$0: NUM_DEVICES must be a positive integer, got '$NUM_DEVICES'" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / NUM_DEVICES > 0 ? $(nproc) / NUM_DEVICES : 1 ))}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

exec python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NUM_DEVICES" \
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
