#!/bin/sh
# Gunicorn's worker pool, for racy-matrix's live change of `workers`:
#   workers.sh           prints how many workers have loaded the app and live (markers
#                        left by lab/gunicorn_conf.py whose process still runs)
#   workers.sh resize N  sends the master TTIN or TTOU, one at a time, until it has N
#                        worker processes (a master queues at most five signals)
markers=${WORKER_MARKERS:-/tmp/racy-workers}
master=$(cat /tmp/gunicorn.pid 2>/dev/null) || { echo "no /tmp/gunicorn.pid" >&2; exit 1; }

children() {
  n=0
  for s in /proc/[0-9]*/stat; do
    read -r _ _ _ ppid _ 2>/dev/null < "$s" || continue
    [ "$ppid" = "$master" ] && n=$((n + 1))
  done
  echo "$n"
}

if [ "$1" = resize ]; then
  want=$2
  steps=0
  while have=$(children) && [ "$have" -ne "$want" ]; do
    if [ "$have" -lt "$want" ]; then kill -TTIN "$master"; else kill -TTOU "$master"; fi
    # wait (at most 3 s) until the master has forked or reaped one
    i=0
    while [ "$(children)" -eq "$have" ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
    steps=$((steps + 1))
    [ $steps -le 200 ] || { echo "the pool stays at $have workers, wanted $want" >&2; exit 1; }
  done
  exit 0
fi

n=0
for f in "$markers"/*; do
  [ -e "$f" ] || continue
  if [ -d "/proc/${f##*/}" ]; then n=$((n + 1)); else rm -f "$f"; fi
done
echo "$n"
