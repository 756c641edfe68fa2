#!/usr/bin/env bash
# Stop the Docker engine that docker-up.sh started, and nothing else.
#
# Why: other engines (a system dockerd, someone's DOCKER_HOST) may be running;
# we only signal the pid that docker-up.sh recorded, after checking that it is
# still a dockerd. Containers of that engine stop with it (no live-restore).
# Idempotent: without a recorded, live dockerd it does nothing.
set -euo pipefail

RUN=${CLABGEN_DOCKER_RUN:-/run/clabgen-docker}
WAIT=${CLABGEN_DOCKER_WAIT:-30}

pid=""
for f in "$RUN/dockerd.pid" "$RUN/dockerd.started-pid"; do
    if [ -z "$pid" ] && [ -f "$f" ]; then pid=$(cat "$f"); fi
done
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || ! grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null; then
    echo "docker-down: no clabgen dockerd running; nothing to do"
    rm -f "$RUN/dockerd.pid" "$RUN/dockerd.started-pid"
    [ -d "$RUN" ] && [ -z "$(ls -A "$RUN/exec" 2>/dev/null)" ] && rm -rf "$RUN"
    exit 0
fi

echo "docker-down: stopping dockerd pid $pid"
kill -TERM "$pid"
for _ in $(seq 1 "$((WAIT * 4))"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
done
if kill -0 "$pid" 2>/dev/null; then
    echo "docker-down: dockerd pid $pid ignored SIGTERM for ${WAIT}s; sending SIGKILL" >&2
    kill -KILL "$pid" || true
fi
rm -f "$RUN/dockerd.pid" "$RUN/dockerd.started-pid"
rm -rf --one-file-system "$RUN"   # exec-root of a stopped dockerd: nothing in /run outlives it
echo "docker-down: stopped"
