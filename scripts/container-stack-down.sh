#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Stop what scripts/container-stack.sh started, by the PIDs it recorded (never by process name).
# Images, /var/lib/docker and /var/lib/containerd are kept, so the next bring-up is quick.
# Usage: scripts/container-stack-down.sh [--keep-containers]
set -uo pipefail
R=${LANNER_STACK_DIR:-/var/tmp/lanner-stack}
KEEP=0
[ "${1:-}" = --keep-containers ] && KEEP=1
[ -d "$R" ] || { echo "nothing to stop ($R missing)"; exit 0; }
# The containerd this stack uses (container-stack.sh records it; older stacks always used the system socket).
SOCK=/run/containerd/containerd.sock
[ -f "$R/containerd.sock" ] && SOCK=$(cat "$R/containerd.sock")
export CONTAINERD_ADDRESS=$SOCK

if [ $KEEP = 0 ]; then
  # CRI pods first, through CRI itself (their shims outlive containerd otherwise).
  if [ -S "$SOCK" ]; then
    PY="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
    if [ -x "$PY" ] && "$PY" - "unix://$SOCK" <<'PYEOF'
import sys
import grpc
from lanner.cri.v1 import cri_pb2 as pb, cri_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as ch:
    rt = cri_pb2_grpc.RuntimeServiceStub(ch)
    for s in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
PYEOF
    then :; else
      # Without the project's venv: kill and delete the k8s.io tasks and containers directly.
      for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do
        ctr -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
        for _ in $(seq 1 20); do
          ctr -n k8s.io tasks delete "$c" >/dev/null 2>&1 && break
          ctr -n k8s.io tasks ls -q 2>/dev/null | grep -qx "$c" || break
          sleep 0.1
        done
        ctr -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
      done
    fi
  fi
  if docker info >/dev/null 2>&1; then
    ids=$(docker ps -aq)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null
    docker network prune -f >/dev/null 2>&1 || true
  fi
fi

stop() {  # $1 = pidfile
  [ -f "$1" ] || return 0
  local p; p=$(cat "$1")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$1"
}
# Only the bridges of what this stack started: another stack (or the host's Docker) may be using the others.
bridges=$(grep -o '"bridge": "[^"]*"' "$R/cni/net.d/10-lanner-bridge.conflist" 2>/dev/null | cut -d'"' -f4)
[ -f "$R/dockerd.pid" ] && bridges="$bridges docker0"
stop "$R/dockerd.pid"
stop "$R/containerd.pid"
rm -f "$R/containerd.sock" "$R/cri-endpoint"
for br in $bridges; do ip link show "$br" >/dev/null 2>&1 && ip link del "$br"; done
echo "container stack stopped (images kept)"
