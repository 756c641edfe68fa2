#!/usr/bin/env bash
# Start a private Docker engine for clabgen unless one already answers.
#
# Why: the sandbox has no engine by default, and the default dockerd wants a
# bridge (docker0) plus iptables NAT rules. We start dockerd with
# --bridge=none --iptables=false --ip-forward=false so it touches no host
# networking, with its own data-root and exec-root, and record its pid so
# docker-down.sh stops only the process we started.
#
# Idempotent: a second run sees the engine answer and does nothing.
# Env: CLABGEN_DOCKER_DATA (data-root), CLABGEN_DOCKER_RUN (exec-root, pidfile,
#      log), CLABGEN_DOCKER_DRIVER (force overlay2|vfs), CLABGEN_DOCKER_WAIT (s).
set -euo pipefail

DATA=${CLABGEN_DOCKER_DATA:-/var/lib/clabgen-docker}
RUN=${CLABGEN_DOCKER_RUN:-/run/clabgen-docker}
SOCK=/var/run/docker.sock
WAIT=${CLABGEN_DOCKER_WAIT:-60}
PIDFILE=$RUN/dockerd.pid
LOG=$DATA/dockerd.log   # kept with the data root: /run is left empty after docker-down

engine_answers() {
    # `docker version` exits 0 only when the server part answers.
    if [ -n "${DOCKER_HOST:-}" ]; then
        timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        [ -S "$SOCK" ] && timeout 10 docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
    fi
}

if engine_answers; then
    echo "docker-up: an engine already answers (${DOCKER_HOST:-unix://$SOCK}); nothing to do"
    exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
    echo "docker-up: DOCKER_HOST=$DOCKER_HOST is set but does not answer; unset it to start a local engine" >&2
    exit 1
fi

for bin in dockerd docker containerd runc; do
    command -v "$bin" >/dev/null || { echo "docker-up: $bin not found; run 'make deps' (Debian docker.io)" >&2; exit 1; }
done

mkdir -p "$DATA" "$RUN"

# A pidfile from an earlier run whose process is gone or is not our dockerd.
if [ -f "$PIDFILE" ]; then
    old=$(cat "$PIDFILE")
    if kill -0 "$old" 2>/dev/null && grep -q dockerd "/proc/$old/cmdline" 2>/dev/null; then
        echo "docker-up: dockerd pid $old is running but does not answer on $SOCK; see $LOG" >&2
        exit 1
    fi
    rm -f "$PIDFILE"
fi
# A stale socket left by a killed engine blocks dockerd from listening.
if [ -S "$SOCK" ] && ! engine_answers; then rm -f "$SOCK"; fi

pick_driver() {
    # overlay2 needs a working overlay mount on the data-root's filesystem
    # (not on overlayfs itself); otherwise vfs (slow, copies layers, always works).
    if [ -n "${CLABGEN_DOCKER_DRIVER:-}" ]; then echo "$CLABGEN_DOCKER_DRIVER"; return; fi
    if [ -f "$DATA/.driver" ]; then cat "$DATA/.driver"; return; fi   # never switch under existing layers
    local t driver=vfs
    t=$(mktemp -d "$DATA/.ovl-probe.XXXXXX")
    mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
    if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
        umount "$t/m"; driver=overlay2
    fi
    rm -rf "$t"
    echo "$driver" > "$DATA/.driver"
    echo "$driver"
}
DRIVER=$(pick_driver)

echo "docker-up: starting dockerd (storage-driver=$DRIVER, data-root=$DATA, log=$LOG)"
# setsid: the engine outlives this shell and make; it is stopped by docker-down.sh.
setsid dockerd \
    --host "unix://$SOCK" \
    --data-root "$DATA" \
    --exec-root "$RUN/exec" \
    --pidfile "$PIDFILE" \
    --storage-driver "$DRIVER" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    </dev/null >>"$LOG" 2>&1 &
pid=$!
echo "$pid" > "$RUN/dockerd.started-pid"

for _ in $(seq 1 "$((WAIT * 4))"); do
    if engine_answers; then
        echo "docker-up: engine answers (pid $pid, $(docker version --format '{{.Server.Version}}'), driver $DRIVER)"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "docker-up: dockerd exited; last log lines:" >&2
        tail -n 20 "$LOG" >&2
        rm -f "$RUN/dockerd.started-pid"
        exit 1
    fi
    sleep 0.25
done
echo "docker-up: dockerd (pid $pid) did not answer within ${WAIT}s; see $LOG" >&2
exit 1
