#!/usr/bin/env bash
# benches/multiplex.sh — what multiplexing buys: node connections and memory
# for many idle clients, and more clients than the nodes take, served under
# load.
#
# Starts (or reuses) the demo cluster of scripts/cluster.sh with both nodes at
# MariaDB's default max_connections (151), and a release build of sqlproxy with
# config/ha.toml (pool.multiplex on, its default). Then:
#   1. IDLE clients (1000) log in, run one statement each and stay idle; after
#      a pause longer than pool.multiplex_idle: the node connections sqlproxy
#      holds (counted in each node's process list) and sqlproxy's RSS per
#      client.
#   2. MANY clients (4000) do the same and stay; meanwhile sysbench
#      oltp_read_only with THREADS (64) threads for TIME (30) seconds through
#      sqlproxy. Then every one of the MANY runs a statement again. Reported:
#      sysbench qps and errors, the most node connections seen, and how many
#      of the MANY were refused or failed.
# Prints one table, and writes it into docs/performance.md between the
# `multiplex:begin/end` markers unless NO_DOC=1.
#
#   IDLE MANY THREADS TIME   see above
#   MULTIPLEX=false          the same with multiplexing off (expect refusals)
#   CN1_PORT CN2_PORT PROXY_PORT   14306 14307 14320
#   SQLPROXY_BIN             use this binary instead of `cargo build --release`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)

IDLE=${IDLE:-1000}
MANY=${MANY:-4000}
THREADS=${THREADS:-64}
TIME=${TIME:-30}
MULTIPLEX=${MULTIPLEX:-true}
export CN1_PORT=${CN1_PORT:-14306} CN2_PORT=${CN2_PORT:-14307}
PROXY_PORT=${PROXY_PORT:-14320}
TABLES=8
TABLE_SIZE=10000
DB=sbtest
APP_USER=prestashop
APP_PASSWORD=prestashop
OUT=$ROOT/.cluster/bench-multiplex
mkdir -p "$OUT"
PIDS=()
CLUSTER_WAS_UP=0

cleanup() {
    local pid
    for pid in "${PIDS[@]:-}"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "$CLUSTER_WAS_UP" = 0 ]; then
        "$ROOT/scripts/cluster.sh" down || true
    fi
}
trap cleanup EXIT

apt_install_missing sysbench:sysbench mariadb:mariadb-client python3:python3
PY=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import pymysql' 2>/dev/null; then PY=$py && break; fi
done
[ -n "$PY" ] || { apt_install python3-pymysql; PY=/usr/bin/python3; }
# MANY clients and their node connections: as many descriptors as allowed.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((MANY + 1000)) ] ||
    die "open files limited to $(ulimit -n): too few for MANY=$MANY clients"

if "$ROOT/scripts/cluster.sh" status >/dev/null 2>&1; then
    CLUSTER_WAS_UP=1
fi
"$ROOT/scripts/cluster.sh" up
admin() {
    local node=$1
    shift
    mariadb --no-defaults --protocol=socket --socket="$(cat "$ROOT/.cluster/$node/socket-path")" \
        --user="$(id -un)" --batch --skip-column-names "$@"
}
for node in cn1 cn2; do
    admin "$node" -e "SET GLOBAL max_connections = 151"
done
# Node connections of the application user (sqlproxy's pool), per node.
held() { admin "$1" -e "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '$APP_USER'"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

if [ -n "${SQLPROXY_BIN:-}" ]; then
    BIN=$SQLPROXY_BIN
else
    step "building sqlproxy (release)"
    cargo build --release --quiet
    BIN=$ROOT/target/release/sqlproxy
fi
step "starting sqlproxy (pool.multiplex = $MULTIPLEX)"
env SQLPROXY_NODES__CN1__ADDRESS=127.0.0.1:$CN1_PORT SQLPROXY_NODES__CN2__ADDRESS=127.0.0.1:$CN2_PORT \
    SQLPROXY_MYSQL__LISTEN=127.0.0.1:$PROXY_PORT SQLPROXY_MYSQL__MAX_CONNECTIONS=$((MANY + THREADS + 100)) \
    SQLPROXY_POOL__MULTIPLEX="$MULTIPLEX" \
    SQLPROXY_ADMIN__LISTEN=127.0.0.1:0 SQLPROXY_METRICS__LISTEN=127.0.0.1:0 \
    SQLPROXY_HTTP__LISTEN=127.0.0.1:0 SQLPROXY_HTTP__STATS__LISTEN=127.0.0.1:0 \
    SQLPROXY_LOG=${SQLPROXY_LOG:-warn} "$BIN" --config "$ROOT/config/ha.toml" >"$OUT/sqlproxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 1 150); do
    [ "$(admin cn1 -e "SELECT @@read_only")" = 0 ] && break
    sleep 0.2
done
[ "$(admin cn1 -e "SELECT @@read_only")" = 0 ] || die "sqlproxy did not make cn1 writable; see $OUT/sqlproxy.log"
tables=$(admin cn1 -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB'")
if [ "$tables" != "$TABLES" ]; then
    step "sysbench prepare: $TABLES tables of $TABLE_SIZE rows"
    admin cn1 -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PROXY_PORT" \
        --mysql-user="$APP_USER" --mysql-password="$APP_PASSWORD" --mysql-db="$DB" \
        --tables="$TABLES" --table-size="$TABLE_SIZE" --threads=2 prepare >"$OUT/prepare.log" 2>&1
fi
sleep 3
RSS0=$(rss_kib "$PROXY_PID")

# clients N HOLD_SECONDS: N clients through sqlproxy, each after one statement.
clients() {
    rm -f "$OUT/idle.ready" "$OUT/idle.ready.check"
    "$PY" "$ROOT/benches/idle_clients.py" 127.0.0.1 "$PROXY_PORT" "$APP_USER" "$APP_PASSWORD" \
        "$1" "$OUT/idle.ready" "$2" "SELECT COUNT(*) FROM $DB.sbtest1 WHERE id < 10" 2>"$OUT/idle.err" &
    CLIENTS_PID=$!
    PIDS+=("$CLIENTS_PID")
    while [ ! -s "$OUT/idle.ready" ]; do
        kill -0 "$CLIENTS_PID" 2>/dev/null || die "idle_clients.py failed: $(tail -n 3 "$OUT/idle.err")"
        sleep 0.5
    done
}

step "1. $IDLE idle clients"
began=$(date +%s)
clients "$IDLE" 600
login_s=$(($(date +%s) - began))
sleep 3
idle_cn1=$(held cn1) idle_cn2=$(held cn2) idle_rss=$(rss_kib "$PROXY_PID")
kill -TERM "$CLIENTS_PID" 2>/dev/null || true
wait "$CLIENTS_PID" 2>/dev/null || true
sleep 2

step "2. $MANY clients, then sysbench oltp_read_only $THREADS threads for ${TIME}s"
clients "$MANY" 900
sleep 3
many_cn1=$(held cn1) many_cn2=$(held cn2) many_rss=$(rss_kib "$PROXY_PID")
peak=0
(
    while sleep 1; do echo "$(($(held cn1) + $(held cn2)))"; done
) >"$OUT/held.samples" &
SAMPLER=$!
PIDS+=("$SAMPLER")
sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PROXY_PORT" \
    --mysql-user="$APP_USER" --mysql-password="$APP_PASSWORD" --mysql-db="$DB" \
    --tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$THREADS" --time="$TIME" \
    --report-interval=0 run >"$OUT/sysbench.log" 2>&1 || true
kill "$SAMPLER" 2>/dev/null || true
peak=$(sort -n "$OUT/held.samples" | tail -n 1)
qps=$(awk '/queries:/ { gsub(/[()]/, "", $3); print $3; exit }' "$OUT/sysbench.log")
sb_errors=$(awk '/ignored errors:/ { print $3; exit }' "$OUT/sysbench.log")
sb_fatal=$(grep -c FATAL "$OUT/sysbench.log" || true)
kill -USR1 "$CLIENTS_PID"
for _ in $(seq 1 600); do
    [ -s "$OUT/idle.ready.check" ] && break
    sleep 0.5
done
read -r many_ok many_failed <"$OUT/idle.ready.check" || die "the $MANY clients did not report"
kill -TERM "$CLIENTS_PID" 2>/dev/null || true
wait "$CLIENTS_PID" 2>/dev/null || true

kib_per() { awk -v a="$1" -v b="$RSS0" -v n="$2" 'BEGIN { printf "%.1f", (a - b) / n }'; }
table=$(
    cat <<EOF
| multiplexing $MULTIPLEX | node connections (cn1 + cn2) | sqlproxy RSS | per client | other |
|---|---:|---:|---:|---|
| $IDLE idle clients (logged in in ${login_s} s) | $idle_cn1 + $idle_cn2 | $((idle_rss / 1024)) MiB | $(kib_per "$idle_rss" "$IDLE") KiB | |
| $MANY idle clients | $many_cn1 + $many_cn2 | $((many_rss / 1024)) MiB | $(kib_per "$many_rss" "$MANY") KiB | |
| $MANY idle + sysbench oltp_read_only $THREADS thr ${TIME}s | peak $peak | | | ${qps:-?} qps, ${sb_errors:-?} ignored errors, $sb_fatal fatal; then $many_ok of $MANY clients answered, $many_failed failed |
EOF
)
echo
echo "$table"
echo
echo "nodes at max_connections = 151; sqlproxy idle RSS $((RSS0 / 1024)) MiB; load before the run: $LOAD_START"
if [ "${NO_DOC:-0}" != 1 ] && grep -q 'multiplex:begin' docs/performance.md; then
    {
        echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores by \`benches/multiplex.sh\` (load before: $LOAD_START; nodes at max_connections = 151, sqlproxy idle RSS $((RSS0 / 1024)) MiB)."
        echo
        echo "$table"
    } >"$OUT/table.md"
    "$PY" - "$OUT/table.md" <<'PYEOF'
import re, sys
doc = open("docs/performance.md").read()
new = open(sys.argv[1]).read()
doc = re.sub(r"(<!-- multiplex:begin -->\n).*?(<!-- multiplex:end -->)", lambda m: m.group(1) + new + m.group(2), doc, flags=re.S)
open("docs/performance.md", "w").write(doc)
PYEOF
fi
