#!/usr/bin/env bash
# Profile our server under load for one operation with py-spy (SQLite, README data).
#
#   LABEL=before bench/profile.sh Q1       -> bench/profiles/Q1-before.txt
#   LABEL=after  bench/profile.sh Q1       -> bench/profiles/Q1-after.txt
#   bench/.venv/bin/python bench/tools.py profile-compare bench/profiles/Q1-before.txt bench/profiles/Q1-after.txt
#
# OP: Q1 | Q2 | Q3 | M1 | F1 | P1 | O1.  Env: LABEL (default "now"), VIEWER (anon | auth; M1 and F1
#   are always auth: M1 as the demo user, F1 as meta's f1_user_id),
#   DURATION (seconds sampled, default 20; QUICK=1: 5), RATE (py-spy samples/s, default 100),
#   CONNS (16), DB_URL (profile against another database, e.g. the run_pg.sh cluster with KEEP_PG=1;
#   default: a fresh copy of bench/.data/bench.db), PYSPY_ARGS (extra py-spy record arguments,
#   e.g. "--gil" or "--native"), SERVER_CPU (0) / LOAD_CPU (1).
# Writes the summary (top functions by own and total time, module shares) to
# bench/profiles/<op>-<label>.txt and the raw collapsed stacks (py-spy --format raw; open it in
# https://www.speedscope.app or flamegraph.pl) to bench/profiles/raw/<op>-<label>.collapsed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OP=${1:-}
case $OP in Q1|Q2|Q3|M1|F1|P1|O1) ;; *) echo "usage: [LABEL=before] $0 Q1|Q2|Q3|M1|F1|P1|O1" >&2; exit 2;; esac
LABEL=${LABEL:-now}
VIEWER=${VIEWER:-anon}
case $OP in M1|F1) VIEWER=auth;; esac
if [ "${QUICK:-0}" = 1 ]; then PROFILE_SECONDS=${DURATION:-5}; else PROFILE_SECONDS=${DURATION:-20}; fi
RATE=${RATE:-100}
NAME=$OP-$LABEL
[ "$VIEWER" = auth ] && [ "$OP" != M1 ] && [ "$OP" != F1 ] && NAME=$OP-auth-$LABEL
OUT_DIR=$BENCH_DIR/profiles
mkdir -p "$OUT_DIR/raw"
RUN_DIR=$DATA/runs/profile-$NAME-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN_DIR"
META=$RUN_DIR/meta.json

PYSPY=$VENV/bin/py-spy
if [ ! -x "$PYSPY" ]; then
  log "installing py-spy into $VENV (pip; not a project dependency)"
  "$VENV/bin/pip" install --quiet py-spy
fi

if [ -n "${DB_URL:-}" ]; then
  URL=$DB_URL
else
  ensure_sqlite_db
  fresh_copy
  URL=sqlite:///$WORK
fi
"$PY" "$TOOLS" meta "$URL" "$META" >/dev/null

start_ours "$URL" "$RUN_DIR/ours.log" "$SERVER_CPU"
check_pinned "$SERVER_PID" "$SERVER_CPU"
ARGS=("$SERVER_URL" "$OP" --meta "$META" --stats --json "$RUN_DIR/results.jsonl" --label "$NAME")
if [ "$VIEWER" = auth ]; then
  sign_in ours
  if [ "$OP" = F1 ]; then ARGS+=(-H "$F1_AUTH_HEADER"); else ARGS+=(-H "$AUTH_HEADER"); fi
fi

log "$NAME: load -c $CONNS for $((PROFILE_SECONDS + 4)) s, py-spy record for $PROFILE_SECONDS s at $RATE Hz on pid $SERVER_PID"
# warm up first (caches, pools), then load for longer than py-spy samples
"$PY" "$LOAD" "${ARGS[@]}" -c "$CONNS" -d 3 --warmup 0 --repeat 1 --cpu "$LOAD_CPU" >/dev/null
"$PY" "$LOAD" "${ARGS[@]}" -c "$CONNS" -d $((PROFILE_SECONDS + 4)) --warmup 0 --repeat 1 --cpu "$LOAD_CPU" \
  >"$RUN_DIR/load.txt" 2>&1 &
LOAD_PID=$!
BENCH_PIDS+=("$LOAD_PID")
sleep 2
RAW=$OUT_DIR/raw/$NAME.collapsed
# shellcheck disable=SC2086
taskset -c "$LOAD_CPU" "$PYSPY" record --pid "$SERVER_PID" --duration "$PROFILE_SECONDS" --rate "$RATE" \
  --format raw --output "$RAW" --nonblocking ${PYSPY_ARGS:-} >"$RUN_DIR/py-spy.log" 2>&1 \
  || { cat "$RUN_DIR/py-spy.log" >&2; exit 1; }
wait "$LOAD_PID" || true
LOAD_LINE=$(grep -E "^$OP c=" "$RUN_DIR/load.txt" | tail -1 || true)
stop_server

TITLE="py-spy profile of conduit serve: $OP ($VIEWER), label '$LABEL', $(date '+%F %T')
git: $(git -C "$ROOT" rev-parse --short HEAD)$( [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] && echo ' + uncommitted changes')
database: ${DB_URL:+$DB_URL}${DB_URL:-SQLite copy of bench/.data/bench.db}; server pinned to CPU $SERVER_CPU, load (wrk -c $CONNS) on CPU $LOAD_CPU
py-spy record --rate $RATE --duration $PROFILE_SECONDS --nonblocking ${PYSPY_ARGS:-}; load average $(cut -d' ' -f1-3 /proc/loadavg)
load during the profile (sampling slows the server): ${LOAD_LINE:-?}"
"$PY" "$TOOLS" profile-summary "$RAW" "$OUT_DIR/$NAME.txt" "$TITLE"
log "wrote $OUT_DIR/$NAME.txt (raw stacks: $RAW)"
for other in "$OUT_DIR/$OP-before.txt"; do
  if [ -f "$other" ] && [ "$other" != "$OUT_DIR/$NAME.txt" ]; then
    echo; "$PY" "$TOOLS" profile-compare "$other" "$OUT_DIR/$NAME.txt"
  fi
done
