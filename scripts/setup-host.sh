#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install what Lanner needs on a Debian host: bcc + kernel headers (eBPF), redis-server, a venv with Lanner.
# Idempotent and quick when everything is already there. Needs root for apt, the headers link and tracefs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
log() { echo "[setup] $*" >&2; }

need=()
# nats-server and prometheus-alertmanager: real servers for the dispatcher output tests; cron and logrotate for the
# quiet-by-default test.
for p in python3-bpfcc linux-headers-amd64 redis-server redis-tools curl openssl python3-venv gcc libc6-dev make sysdig \
         nats-server prometheus-alertmanager cron logrotate; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# kubectl renders deploy/kubernetes in the tests (kubectl kustomize); any kubectl will do.
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then log "missing packages ${need[*]}: run as root (sudo make run)"; exit 1; fi
  log "apt-get install ${need[*]}"
  for i in 1 2 3 4 5 6 7 8 9 10; do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then break; fi
    log "apt busy or failed; retry $i"; sleep 10
  done
fi

# bcc compiles against /lib/modules/$(uname -r)/build; this kernel ships none, so point it at the installed
# headers. Lanner reads tracepoint arguments only, never kernel structs, so a version mismatch is harmless.
# bcc also wants .../source (the -common headers: include/linux/kconfig.h and friends).
mods="/lib/modules/$(uname -r)"
if [ "$(id -u)" = 0 ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
  mkdir -p "$mods"
  if [ ! -e "$mods/build" ] && [ -n "$hdr" ]; then ln -sfn "$hdr" "$mods/build"; log "linked $mods/build -> $hdr"; fi
  if [ ! -e "$mods/source" ] && [ -n "$common" ]; then ln -sfn "$common" "$mods/source"; log "linked $mods/source -> $common"; fi
fi
if [ ! -e /sys/kernel/tracing/events ] && [ "$(id -u)" = 0 ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null && log "mounted tracefs at /sys/kernel/tracing" || true
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import lanner, grpc_tools, pytest' 2>/dev/null || [ pyproject.toml -nt "$VENV/.installed" ]; then
  log "pip install -e .[dev]"
  mkdir -p var
  if ! { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e '.[dev]'; } >var/pip.log 2>&1; then
    tail -n 30 var/pip.log >&2; log "pip install failed (full log: var/pip.log)"; exit 1
  fi
  touch "$VENV/.installed"
fi
log "ok"
