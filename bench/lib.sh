# Shared by bench/run.sh, bench/run_pg.sh and bench/profile.sh (sourced, not run).
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
CONDUIT=$VENV/bin/conduit
UVICORN=$VENV/bin/uvicorn
TOOLS=$BENCH_DIR/tools.py
# Measure this checkout's code: worktrees share one .venv whose editable install points at one of
# them (its finder comes after sys.path, so PYTHONPATH wins for graph/, db/ and auth/).
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
DATA=${BENCH_DATA:-$BENCH_DIR/.data}
RESULTS=$BENCH_DIR/results
# the benchmark kit (load.py, floor.py, pg.sh, postgraphile/): shared/bench beside the repository
if [ -z "${BENCH_SHARED:-}" ]; then
  for d in "$ROOT/../shared/bench" /work/shared/bench; do
    [ -f "$d/load.py" ] && { BENCH_SHARED=$(cd "$d" && pwd); break; }
  done
fi
[ -f "${BENCH_SHARED:-}/load.py" ] || { echo "bench: shared/bench (load.py) not found; set BENCH_SHARED" >&2; exit 2; }
LOAD=$BENCH_SHARED/load.py

SERVER_CPU=${SERVER_CPU:-0}   # server and its database
LOAD_CPU=${LOAD_CPU:-1}       # wrk / load.py
CONNS=${CONNS:-16}
M1_HIGH_CONNS=${M1_HIGH_CONNS:-64}
if [ "${QUICK:-0}" = 1 ]; then
  DURATION=${DURATION:-2}; REPEAT=${REPEAT:-1}; WARMUP=${WARMUP:-1}; SEQ=${SEQ:-30}
else
  DURATION=${DURATION:-10}; REPEAT=${REPEAT:-3}; WARMUP=${WARMUP:-3}; SEQ=${SEQ:-200}
fi
BENCH_ENV=${BENCH_ENV:-production}   # CONDUIT_ENV of our server (a deployment's settings)
JWT_SECRET=bench-secret-not-for-production-0123456789abcdef

# Seed scale (the README's); tools.py db-status reads the same variables.
export USERS=${USERS:-5000} ARTICLES=${ARTICLES:-50000} COMMENTS=${COMMENTS:-200000}
export FAVORITES=${FAVORITES:-250000} FOLLOWS=${FOLLOWS:-20000}
SEED_ARGS=(--users "$USERS" --articles "$ARTICLES" --comments "$COMMENTS" --favorites "$FAVORITES" --follows "$FOLLOWS")

[ -x "$PY" ] || { echo "bench: $PY missing (create the venv: python3 -m venv .venv && .venv/bin/pip install -r requirements-test.lock && .venv/bin/pip install --no-deps -e .)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 2; }
command -v taskset >/dev/null || { echo "bench: taskset missing (util-linux)" >&2; exit 2; }
mkdir -p "$DATA"
# one bench script at a time per data directory (they share work.db, the cluster and the CPUs)
exec 9>"$DATA/.lock"
flock -n 9 || { echo "bench: another bench script is running (lock $DATA/.lock)" >&2; exit 3; }

log() { printf '\n[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ------------------------------------------------------------------ the SQLite database
PRISTINE=$DATA/bench.db   # seeded once, never served
WORK=$DATA/work.db        # what a server runs on: a fresh copy per server run (M1 writes)

ensure_sqlite_db() {  # build $PRISTINE at the seed scale unless it is there and complete
  local status
  status=$("$PY" "$TOOLS" db-status "sqlite:///$PRISTINE")
  if [ "$status" = complete ] && [ "$(cat "$PRISTINE.scale" 2>/dev/null)" != "${SEED_ARGS[*]}" ]; then
    status="seeded at another scale"
  fi
  if [ "$status" != complete ]; then
    log "building $PRISTINE ($status): conduit db upgrade + seed ${SEED_ARGS[*]}"
    rm -f "$PRISTINE" "$PRISTINE-wal" "$PRISTINE-shm" "$PRISTINE.tmp"*
    # built under a temporary name, so an interrupted seed never looks complete
    (cd "$DATA" && CONDUIT_DATABASE_URL="sqlite:///$PRISTINE.tmp" "$CONDUIT" db upgrade >/dev/null \
       && CONDUIT_DATABASE_URL="sqlite:///$PRISTINE.tmp" "$CONDUIT" db seed "${SEED_ARGS[@]}")
    "$PY" "$TOOLS" checkpoint "$PRISTINE.tmp"
    mv "$PRISTINE.tmp" "$PRISTINE"
    echo "${SEED_ARGS[*]}" >"$PRISTINE.scale"
    rm -f "$PRISTINE.tmp-wal" "$PRISTINE.tmp-shm"
  else
    log "reusing $PRISTINE"
  fi
  # keep the file at the newest migration (a no-op when it is), so no server migrates a copy mid-run
  if ! (cd "$DATA" && CONDUIT_DATABASE_URL="sqlite:///$PRISTINE" "$CONDUIT" db upgrade) >"$DATA/upgrade.log" 2>&1; then
    cat "$DATA/upgrade.log" >&2; return 1
  fi
  "$PY" "$TOOLS" checkpoint "$PRISTINE"
}

fresh_copy() {  # $WORK = $PRISTINE
  rm -f "$WORK" "$WORK-wal" "$WORK-shm"
  cp "$PRISTINE" "$WORK"
}

# ------------------------------------------------------------------ process bookkeeping
BENCH_PIDS=()
CLEANUP_HOOKS=()

stop_pid() {  # PID: TERM, wait up to 15 s, then KILL (only processes this script started)
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$? pid hook
  trap - EXIT INT TERM
  for pid in "${BENCH_PIDS[@]}"; do stop_pid "$pid"; done
  for hook in "${CLEANUP_HOOKS[@]}"; do eval "$hook" || true; done
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {  # PID: stop it and drop it from the cleanup list
  local pid=$1 keep=() p
  stop_pid "$pid"
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# ------------------------------------------------------------------ servers
# Each start_* sets SERVER_PID and SERVER_URL. CPU: taskset list, or "" for unpinned.
pin() { local cpu=$1; shift; if [ -n "$cpu" ]; then taskset -c "$cpu" "$@"; else "$@"; fi; }

start_ours() {  # DB_URL LOGFILE CPU [extra serve args...]
  local url=$1 logf=$2 cpu=$3; shift 3
  local port; port=$("$PY" "$TOOLS" free-port)
  local envs=(CONDUIT_DATABASE_URL="$url" CONDUIT_JWT_SECRET="$JWT_SECRET" CONDUIT_BENCH_STATS="${OURS_STATS:-true}"
              CONDUIT_ENV="$BENCH_ENV" CONDUIT_ACCESS_TOKEN_TTL_SECONDS=86400
              # the cost budget stays on, but large enough that one load generator on one address is
              # never refused (its leases then cover a whole run: at the default 5,000 points a lease
              # is 78, one write per 78 one-point operations)
              CONDUIT_RATE_LIMIT_POINTS="${RATE_LIMIT_POINTS:-1000000000}"
              # production refuses to start without a mail server; no operation measured sends mail
              CONDUIT_SMTP_URL=smtp://127.0.0.1:25 CONDUIT_MAIL_FROM=bench@conduit.example
              CONDUIT_PUBLIC_URL=http://127.0.0.1
              # the response cache (graph/responses/): on, as deployed; the *-nocache servers turn it off
              CONDUIT_RESPONSE_CACHE="${RESPONSE_CACHE:-true}")
  [ -n "${DB_POOL_SIZE:-}" ] && envs+=(CONDUIT_DB_POOL_SIZE="$DB_POOL_SIZE")
  # the budget and auth limits in Redis instead of the database (issue 13)
  [ -n "${CACHE_URL:-}" ] && envs+=(CONDUIT_CACHE_URL="$CACHE_URL")
  local cmd=()
  [ -n "$cpu" ] && cmd=(taskset -c "$cpu")
  cmd+=("$CONDUIT" serve --host 127.0.0.1 --port "$port" --log-level warning --log-format text "$@")
  (cd "$DATA" && exec env "${envs[@]}" "${cmd[@]}") >"$logf" 2>&1 9>&- &
  SERVER_PID=$!
  BENCH_PIDS+=("$SERVER_PID")
  SERVER_URL=http://127.0.0.1:$port/graphql
  "$PY" "$TOOLS" wait "http://127.0.0.1:$port/healthz" 120 "$SERVER_PID" || { tail -20 "$logf" >&2; return 1; }
}

start_floor() {  # DB_URL LOGFILE CPU
  local url=$1 logf=$2 cpu=$3
  local port; port=$("$PY" "$TOOLS" free-port)
  local cmd=()
  [ -n "$cpu" ] && cmd=(taskset -c "$cpu")
  cmd+=("$UVICORN" floor:app --app-dir "$BENCH_SHARED" --host 127.0.0.1 --port "$port" --log-level warning --no-access-log)
  (exec env DATABASE_URL="$url" "${cmd[@]}") >"$logf" 2>&1 9>&- &
  SERVER_PID=$!
  BENCH_PIDS+=("$SERVER_PID")
  SERVER_URL=http://127.0.0.1:$port/graphql
  "$PY" "$TOOLS" wait "http://127.0.0.1:$port/__stats" 60 "$SERVER_PID" || { tail -20 "$logf" >&2; return 1; }
}

stop_server() { forget_pid "$SERVER_PID"; }

check_pinned() {  # PID CPU: warn if the affinity is not what we asked for
  local want=$2 got
  got=$(taskset -pc "$1" 2>/dev/null | sed 's/.*: //') || return 0
  [ -z "$want" ] || [ "$got" = "$want" ] || echo "bench: warning: pid $1 runs on CPUs $got, wanted $want" >&2
}

vm_status() {  # PID FIELD (VmRSS/VmHWM) in kB, summed over the process and its direct children
  local pid=$1 field=$2 total=0 p v
  for p in "$pid" $(pgrep -P "$pid" 2>/dev/null || true); do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

rss_sampler() {  # PID OUTFILE: write the peak VmRSS (kB) seen every 0.2 s until killed
  local pid=$1 out=$2 max=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(vm_status "$pid" VmRSS)
    if [ "$v" -gt "$max" ]; then max=$v; echo "$max" >"$out"; fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ measurements
ALL_OPS="Q1 Q2 Q3 M1 F1 P1 O1"   # shared/bench/README.md's operations (load.py's documents)

meta_get() { "$PY" "$TOOLS" meta-get "$META" "$1"; }  # KEY: one value of $META

# sign_in SERVER_KEY: set AUTH_HEADER (the signed-in runs: the demo user, meta's m1_user_id) and
# F1_AUTH_HEADER (F1: meta's f1_user_id, the user following the most authors) for that server.
# Ours gets tokens from the login mutation (every seeded user has the demo password); the floor
# takes the same users as x-user-id (lower case: load.py already sends that header for M1 and F1,
# and -H replaces it instead of adding a second one); PostGraphile runs anonymous only.
sign_in() {
  case $1 in
    ours*)
      AUTH_HEADER="Authorization: Bearer $("$PY" "$TOOLS" login "$SERVER_URL" "$(meta_get m1_email)")"
      F1_AUTH_HEADER="Authorization: Bearer $("$PY" "$TOOLS" login "$SERVER_URL" "$(meta_get f1_email)")"
      ;;
    floor)
      AUTH_HEADER="x-user-id: $(meta_get m1_user_id)"
      F1_AUTH_HEADER="x-user-id: $(meta_get f1_user_id)"
      ;;
    *) AUTH_HEADER="" F1_AUTH_HEADER="";;
  esac
}

# run_op SERVER_KEY OP VIEWER [VARIANT]
#   (uses SERVER_URL, SERVER_PID, RUN_DIR, META, DIALECT, AUTH_HEADER, F1_AUTH_HEADER)
#   VIEWER: anon | auth;  VARIANT: "" or c64 (M1 at high concurrency, load only)
run_op() {
  local server=$1 op=$2 viewer=$3 variant=${4:-}
  local label="$server:$op:$viewer${variant:+:$variant}"
  local args=("$SERVER_URL" "$op" --meta "$META" --dialect "${DIALECT:-ours}" --stats --json "$RUN_DIR/results.jsonl")
  local header=${AUTH_HEADER:-}
  [ "$op" = F1 ] && header=${F1_AUTH_HEADER:-}
  [ "$viewer" = auth ] && [ -n "$header" ] && args+=(-H "$header")
  local conns=$CONNS
  [ "$variant" = c64 ] && conns=$M1_HIGH_CONNS
  echo "$label" >>"$RUN_DIR/attempted.txt"
  log "$label: load -c $conns -d $DURATION --warmup $WARMUP --repeat $REPEAT"
  rss_sampler "$SERVER_PID" "$RUN_DIR/rss-${label//:/_}.txt" &
  local sampler=$!
  BENCH_PIDS+=("$sampler")
  if ! "$PY" "$LOAD" "${args[@]}" --label "$label" -c "$conns" -d "$DURATION" --warmup "$WARMUP" \
       --repeat "$REPEAT" --cpu "$LOAD_CPU"; then
    echo "- $label: load.py failed (see the run log)" >>"$RUN_DIR/failures.md"
  fi
  forget_pid "$sampler"
  if [ -z "$variant" ] && [ "${SEQ:-0}" -gt 0 ] && [ "${RUN_SEQ:-1}" = 1 ]; then
    log "$label: sequential --seq $SEQ"
    if ! "$PY" "$LOAD" "${args[@]}" --label "$label" --seq "$SEQ" --cpu "$LOAD_CPU"; then
      echo "- $label: load.py --seq failed" >>"$RUN_DIR/failures.md"
    fi
  fi
}

run_op_all() {  # SERVER_KEY OP: every measurement op_runs lists
  local run variant
  for run in $(op_runs "$2"); do
    variant=""
    if [[ $run == *:* ]]; then variant=${run#*:}; fi
    run_op "$1" "$2" "${run%%:*}" "$variant"
  done
}

# The operations to run (OPS, default all seven), queries first and M1 last (it writes).
ordered_ops() {
  local op out=()
  for op in ${OPS:-$ALL_OPS}; do
    case $op in Q1|Q2|Q3|F1|P1|O1) out+=("$op");; M1) ;; *) echo "bench: unknown op $op" >&2; exit 2;; esac
  done
  for op in ${OPS:-$ALL_OPS}; do if [ "$op" = M1 ]; then out+=(M1); fi; done
  echo "${out[@]}"
}

# op_runs OP: the measurements of one operation, "VIEWER[:VARIANT]" words in order.
#   M1: signed in, at CONNS and at M1_HIGH_CONNS (c64); F1: signed in only (a feed needs a viewer);
#   the others: anonymous, and signed in unless AUTH=0.
op_runs() {
  case $1 in
    M1) echo "auth auth:c64";;
    F1) echo "auth";;
    *) if [ "${AUTH:-1}" = 1 ]; then echo "anon auth"; else echo "anon"; fi;;
  esac
}

machine_notes() {  # JSON object of facts about this sitting
  "$PY" - "$ROOT" <<'EOF'
import json, os, platform, subprocess, sys
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception: return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
vers = sh(f"{sys.executable} -m pip list 2>/dev/null | grep -iE '^(strawberry-graphql|graphql-core|sqlalchemy|starlette|uvicorn|aiosqlite|asyncpg|uvloop|orjson) '")
print(json.dumps({
  "machine": f"{os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}",
  "git": sh(f"git -C {sys.argv[1]} rev-parse --short HEAD") + (" + uncommitted changes" if sh(f"git -C {sys.argv[1]} status --porcelain --untracked-files=no") else ""),
  "code measured": os.path.dirname(os.path.dirname(__import__("graph").__file__)),
  "packages": ", ".join(" ".join(l.split()) for l in vers.splitlines()),
  "wrk": sh("wrk -v 2>&1 | head -1"),
}))
EOF
}

begin_report() {  # KIND (sqlite|postgres): set DAY, RESULT, RAW, TITLE_SUFFIX and ROWS; keep the raw JSON lines
  DAY=$(date +%F)
  local suffix=""
  TITLE_SUFFIX=""
  if [ "${QUICK:-0}" = 1 ]; then suffix=-quick TITLE_SUFFIX=" — QUICK smoke run, not for comparison"; fi
  RESULT=${RESULT:-$RESULTS/$1-$DAY$suffix.md}
  RAW=${RESULT%.md}.jsonl
  cp "$RUN_DIR/results.jsonl" "$RAW"
  ROWS=()
  local op run
  for op in $(ordered_ops); do
    for run in $(op_runs "$op"); do ROWS+=("$op ${run/:/ }"); done
  done
}

finish_report() {  # after tools.py info: write $RESULT from $RUN_DIR and show it
  "$PY" "$TOOLS" report "$RUN_DIR" "$RESULT" >/dev/null
  log "wrote $RESULT (raw: $RAW, scratch: $RUN_DIR)"
  cat "$RESULT"
}
