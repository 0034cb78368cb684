#!/usr/bin/env bash
# The SQLite benchmark: our server against the floor (shared/bench/floor.py) on the same data.
#
#   bench/run.sh                 full run (wrk -c 16 -d 10 --warmup 3 --repeat 3, --seq 200)
#   QUICK=1 bench/run.sh         smoke run (-d 2 --repeat 1 --warmup 1, --seq 30)
#   OPS="Q1 Q2" AUTH=0 bench/run.sh
#
# Operations (shared/bench/README.md): Q1 Q2 Q3 P1 O1 anonymous and signed in (as the demo user);
# F1 (feed) signed in only, as meta's f1_user_id (the user following the most authors): a feed
# has no anonymous form; M1 signed in (the demo user) at CONNS and at M1_HIGH_CONNS connections.
# Ours signs in through the login mutation, the floor gets the same user ids as x-user-id.
#
# Env: OPS (subset of "Q1 Q2 Q3 M1 F1 P1 O1", the default), AUTH (1: also run the queries signed in; default 1),
#      DURATION, REPEAT, WARMUP, SEQ, CONNS (16), M1_HIGH_CONNS (64), SERVERS ("ours floor"; also
#      ours-nocache: ours with the response cache off, CONDUIT_RESPONSE_CACHE=false; ours-redis: the
#      response cache and the budget in the Redis at CACHE_URL, which the caller starts),
#      DB_POOL_SIZE (our CONDUIT_DB_POOL_SIZE), BENCH_ENV (our CONDUIT_ENV, default production),
#      SERVER_CPU (0) / LOAD_CPU (1), RESULT (output .md path), USERS/ARTICLES/... (seed scale).
# Writes bench/results/sqlite-<date>.md (+ .jsonl raw lines); scratch in bench/.data/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

AUTH=${AUTH:-1}
SERVERS=${SERVERS:-ours floor}
STAMP=$(date +%Y%m%d-%H%M%S)
RUN_DIR=$DATA/runs/sqlite-$STAMP
mkdir -p "$RUN_DIR" "$RESULTS"
META=$RUN_DIR/meta.json
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ the database (built once)
ensure_sqlite_db
"$PY" "$TOOLS" meta "sqlite:///$PRISTINE" "$META" >/dev/null
log "meta: $(tr -d '\n' <"$META")"

# ------------------------------------------------------------------ one server, every operation
HWM_NOTES=()
bench_server() {  # KEY
  local key=$1
  fresh_copy
  case $key in
    ours)
      CACHE_URL="" start_ours "sqlite:///$WORK" "$RUN_DIR/ours.log" "$SERVER_CPU"
      ;;
    ours-nocache)  # the response cache off: every request executes
      CACHE_URL="" RESPONSE_CACHE=false start_ours "sqlite:///$WORK" "$RUN_DIR/ours-nocache.log" "$SERVER_CPU"
      ;;
    ours-redis)  # the response cache, the budget and auth limits in the Redis at CACHE_URL (the caller's)
      CACHE_URL=${CACHE_URL:?ours-redis needs CACHE_URL=redis://...} \
        start_ours "sqlite:///$WORK" "$RUN_DIR/ours-redis.log" "$SERVER_CPU"
      ;;
    floor)
      FLOOR_COMPAT=$("$PY" "$TOOLS" floor-compat "$WORK")
      start_floor "sqlite+aiosqlite:///$WORK" "$RUN_DIR/floor.log" "$SERVER_CPU"
      ;;
    *) echo "unknown server $key" >&2; exit 2;;
  esac
  sign_in "$key"
  check_pinned "$SERVER_PID" "$SERVER_CPU"
  log "$key: pid $SERVER_PID on $SERVER_URL"
  local op
  for op in $(ordered_ops); do run_op_all "$key" "$op"; done
  HWM_NOTES+=("$key $(( $(vm_status "$SERVER_PID" VmHWM) / 1024 )) MiB")
  stop_server
}

NOTES=$(machine_notes)
for s in $SERVERS; do bench_server "$s"; done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ the report
begin_report sqlite
INFO_ROWS=$(printf '%s\n' "${ROWS[@]}") INFO_NOTES=$NOTES INFO_FAILS=$(cat "$RUN_DIR/failures.md" 2>/dev/null || true) \
INFO_HWM=$(printf "%s; " "${HWM_NOTES[@]}") INFO_LOAD="before $LOAD_BEFORE, after $LOAD_AFTER" \
INFO_TITLE="SQLite benchmark, $DAY ($STAMP)$TITLE_SUFFIX" \
INFO_SERVERS=$SERVERS INFO_RAW=$(basename "$RAW") \
INFO_METHOD="server pinned to CPU $SERVER_CPU (taskset), wrk/load.py on CPU $LOAD_CPU; one uvicorn worker; \
wrk -c $CONNS -d $DURATION --warmup $WARMUP --repeat $REPEAT (median), --seq $SEQ; \
each server on a fresh copy of the same seeded file; ours with CONDUIT_ENV=$BENCH_ENV, \
CONDUIT_DB_POOL_SIZE=${DB_POOL_SIZE:-default}, CONDUIT_BENCH_STATS=true" \
INFO_COMPAT="floor.py's copy only: ${FLOOR_COMPAT:-not run} (floor.py's M1 INSERT names only body, article_id, author_id, created_at)" \
INFO_DATA="users $USERS, articles $ARTICLES, comments $COMMENTS, favorites $FAVORITES, follows $FOLLOWS (conduit db seed)" \
  "$PY" "$TOOLS" info "$RUN_DIR/info.json"
finish_report
