#!/usr/bin/env bash
# A two-node Ray cluster on loopback, a spec submitted to it with `ray job submit`, then shutdown.
#
#   ray_jobs/cluster_demo.sh [SPEC] [STORE]      (defaults: cluster-demo, $PWD/store/cluster-demo)
#
# Node 1 (head): 1 CPU, 0 GPUs.  Node 2 (worker): 1 CPU and a *declared* GPU (--num-gpus 1), so runs
# that ask for num_gpus are scheduled there; torch sees no CUDA device and deep/ falls back to the CPU.
#
# Token auth (Ray >= 2.52): with RAY_AUTH_MODE=token every node, the job CLI and the driver must
# present the same token. It is read from $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH, else
# ~/.ray/auth_token, which `ray get-auth-token --generate` creates once (it is never printed here).
# On a real cluster copy that file to every node and to the machine you submit from.
#
# Cleanup stops only this cluster's processes (those whose command line names its private temp dir),
# because `ray stop` would also kill any other Ray instance on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SPEC=${1:-cluster-demo}
STORE=${2:-$REPO/store/cluster-demo}
export PATH="$REPO/.venv/bin:$PATH"          # the job's `python` must be the project's interpreter
export RAY_AUTH_MODE=token
export RAY_USAGE_STATS_ENABLED=0
TMPDIR_RAY=${RAY_DEMO_TEMP_DIR:-/tmp/ray_demo_$$}
GCS_PORT=${RAY_DEMO_PORT:-6391}
DASH_PORT=${RAY_DEMO_DASHBOARD_PORT:-8266}

ray get-auth-token --generate >/dev/null      # creates ~/.ray/auth_token if it does not exist

cleanup() {
  pids=$(pgrep -f -- "$TMPDIR_RAY" || true)   # only the processes of this demo cluster
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 3; kill -9 $(pgrep -f -- "$TMPDIR_RAY") 2>/dev/null || true; fi
  [ -n "${RAY_DEMO_KEEP_LOGS:-}" ] || rm -rf "$TMPDIR_RAY"
  echo "[demo] cluster stopped"
}
trap cleanup EXIT

echo "[demo] starting head on 127.0.0.1:$GCS_PORT (1 CPU, 0 GPU)"
ray start --head --node-ip-address=127.0.0.1 --port="$GCS_PORT" --num-cpus=1 --num-gpus=0 \
  --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT" \
  --temp-dir="$TMPDIR_RAY" --disable-usage-stats >/dev/null
echo "[demo] starting worker node (1 CPU, declared 1 GPU)"
ray start --address="127.0.0.1:$GCS_PORT" --node-ip-address=127.0.0.1 --num-cpus=1 --num-gpus=1 \
  --temp-dir="$TMPDIR_RAY" --disable-usage-stats >/dev/null
for _ in $(seq 60); do   # wait until both nodes have registered
  python -c "import ray,sys; ray.init(address='127.0.0.1:$GCS_PORT', logging_level='ERROR'); sys.exit(len([n for n in ray.nodes() if n['Alive']]) < 2)" 2>/dev/null && break
  sleep 1
done
ray status --address="127.0.0.1:$GCS_PORT" | sed -n '/Total Usage/,/Pending/p' || true

echo "[demo] submitting: python -m ray_jobs run $SPEC --address auto --store $STORE"
ray job submit --address "http://127.0.0.1:$DASH_PORT" --working-dir . \
  --runtime-env-json '{"excludes": [".*", "store", "runs", "figures/out", "**/__pycache__", "*.egg-info"]}' \
  -- python -m ray_jobs run "$SPEC" --address auto --store "$STORE" --no-progress
echo "[demo] store status after the job:"
python -m ray_jobs status "$SPEC" --store "$STORE"
if [ "$SPEC" = cluster-demo ]; then
  echo "[demo] placement (stage, node, GPU ids Ray assigned, torch device):"
  python - "$STORE" <<'PY'
import json, sys
from pathlib import Path
for run in sorted(Path(sys.argv[1], "runs").iterdir()):
    cfg, m = json.loads((run / "config.json").read_text()), json.loads((run / "metrics.json").read_text())
    print(f"  {cfg['labels'][0]['stage']:4s} i={cfg['config']['i']} node={m['node_id'][:12]} gpu_ids={m['gpu_ids']} "
          f"cuda_available={m['cuda_available']} device={m['device']}")
PY
fi
