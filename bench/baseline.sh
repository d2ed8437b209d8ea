#!/usr/bin/env bash
# The compose-and-script baseline that bench/harness.rs compares racy-matrix against:
# the experiment of matrices/quick.yaml (django-mysql; workers 1 and 4; 8 endpoints;
# 4 repetitions of 8 concurrent requests, amount 100, delay_ms 300) driven the way a
# user would without racy-matrix: docker-compose, a port-wait loop, a thread-per-request
# burst client (bench/burst.py), SQL resets through `docker-compose exec`, and the app
# recreated by `docker-compose up -d` for each worker count.
#
# Prints one line per repetition (workers endpoint rep acked ledger_rows applied lost),
# then `baseline_build_s=`, `baseline_wall_s=` (first `up` to the last observation; the
# image build and the final `down` excluded) and `baseline_down_s=`. Compose's own
# output goes to stderr. Everything is removed at the end, on error and on Ctrl-C.
# Usage: bash bench/baseline.sh   (needs docker-compose 1.29 and the local base image)
set -euo pipefail
cd "$(dirname "$0")/.."

export BASE_IMAGE=racy-matrix/debian:trixie
DC=(docker-compose -f stacks/django-mysql/compose.yaml -p racybench)
pw=${db_password:-racy}        # the compose file's default: ${db_password:-racy}

WORKERS=(1 4)
ENDPOINTS=(atomic_long_delay non_atomic_long_delay atomic_no_delay non_atomic_no_delay
  row_locking_atomic_long_delay f_expression optimistic_version row_locking_nowait)
REPETITIONS=4
REQUESTS=8
AMOUNT=100
DELAY_MS=300

# x-racy.reset of stacks/django-mysql/compose.yaml
RESET_SQL="DELETE FROM demo_taskrun; DELETE FROM demo_job; DELETE FROM demo_thing;
DELETE FROM demo_loosething; DELETE FROM demo_transaction; DELETE FROM demo_account;
INSERT INTO demo_account (id, balance, version) VALUES (1, 0, 0)"
OBSERVE_SQL="SELECT balance FROM demo_account WHERE id=1; SELECT COUNT(*) FROM demo_transaction"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "baseline: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

torn_down=0
teardown() {
  [ "$torn_down" = 1 ] && return 0
  torn_down=1
  "${DC[@]}" down -v --remove-orphans --timeout 5 >&2 || true
}
trap teardown EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

sql() { "${DC[@]}" exec -T db mariadb -uracy -p"$pw" racy -N -e "$1"; }

# Polls GET /health through nginx every 0.5 s until it answers 200 (120 s deadline).
wait_ready() {
  local port deadline
  port=$("${DC[@]}" port web 80 | tail -n1)
  port=${port##*:}
  [ -n "$port" ] || die "web has no published port 80"
  deadline=$(( $(date +%s) + 120 ))
  until curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/health" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      "${DC[@]}" ps >&2 || true
      "${DC[@]}" logs --tail 30 app web >&2 || true
      die "http://127.0.0.1:$port/health did not answer 200 within 120 s"
    fi
    sleep 0.5
  done
  PORT=$port
}

# Polls GET /inflight until the app reports no request in flight (90 s deadline).
wait_quiet() {
  local deadline body=""
  deadline=$(( $(date +%s) + 90 ))
  while :; do
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/inflight" 2>/dev/null || true)
    [[ $body =~ \"inflight\":\ *0[,}] ]] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && die "requests still in flight after 90 s (/inflight said: $body)"
    sleep 0.1
  done
}

# Leftovers of an interrupted earlier run of this script (its own project only).
"${DC[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true

log "building the stack images (not timed)"
t_build=$(now)
"${DC[@]}" build >&2
build_s=$(elapsed "$t_build" "$(now)")
echo "baseline_build_s=$build_s"

echo "# workers endpoint rep acked ledger_rows applied lost"
t0=$(now)
for w in "${WORKERS[@]}"; do
  log "workers=$w: docker-compose up -d"
  workers=$w "${DC[@]}" up -d >&2
  wait_ready
  log "workers=$w: ready on 127.0.0.1:$PORT after $(elapsed "$t0" "$(now)") s"
  for ep in "${ENDPOINTS[@]}"; do
    for rep in $(seq 1 "$REPETITIONS"); do
      sql "$RESET_SQL"
      out=$(python3 bench/burst.py --url "http://127.0.0.1:$PORT/$ep/" \
        --requests "$REQUESTS" --delay-ms "$DELAY_MS" --amount "$AMOUNT")
      [[ $out =~ acked=([0-9]+) ]] || die "burst.py printed: $out"
      acked=${BASH_REMATCH[1]}
      wait_quiet
      obs=$(sql "$OBSERVE_SQL")
      { read -r balance; read -r ledger; } <<<"$obs"
      [[ $balance =~ ^[0-9]+$ && $ledger =~ ^[0-9]+$ ]] || die "unexpected observation: $obs"
      applied=$(( balance / AMOUNT ))
      echo "$w $ep $rep $acked $ledger $applied $(( ledger - applied ))"
    done
  done
done
t1=$(now)
wall_s=$(elapsed "$t0" "$t1")

log "docker-compose down -v"
teardown
down_s=$(elapsed "$t1" "$(now)")
echo "baseline_down_s=$down_s"
echo "baseline_wall_s=$wall_s"
