#!/usr/bin/env bash
# benches/readonly_tx.sh — read-only transactions on the replica.
#
# sysbench oltp_read_only through sqlproxy (config/ha.toml, read split on),
# --mysql-ignore-errors off, twice in alternation: as shipped (each
# transaction opened with BEGIN, so it runs on the master) and with
# benches/oltp_read_only_tx.lua (START TRANSACTION READ ONLY, which sqlproxy
# places like a read). Prints qps, p95 and how the SELECTs split between
# the nodes (Com_select deltas read on each node).
#
#   THREADS (8) TIME (20) ROUNDS (2)   CN1_PORT CN2_PORT PROXY_PORT (14306 14307 14321)
#   SQLPROXY_BIN   use this binary instead of `cargo build --release`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
THREADS=${THREADS:-8}
TIME=${TIME:-20}
ROUNDS=${ROUNDS:-2}
export CN1_PORT=${CN1_PORT:-14306} CN2_PORT=${CN2_PORT:-14307}
PROXY_PORT=${PROXY_PORT:-14321}
TABLES=8
TABLE_SIZE=10000
DB=sbtest
OUT=$ROOT/.cluster/bench-readonly-tx
mkdir -p "$OUT"
PROXY_PID=
CLUSTER_WAS_UP=0
cleanup() {
    if [ -n "$PROXY_PID" ]; then kill -TERM "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
    if [ "$CLUSTER_WAS_UP" = 0 ]; then "$ROOT/scripts/cluster.sh" down || true; fi
}
trap cleanup EXIT

apt_install_missing sysbench:sysbench mariadb:mariadb-client
if "$ROOT/scripts/cluster.sh" status >/dev/null 2>&1; then CLUSTER_WAS_UP=1; fi
"$ROOT/scripts/cluster.sh" up
admin() {
    local node=$1
    shift
    mariadb --no-defaults --protocol=socket --socket="$(cat "$ROOT/.cluster/$node/socket-path")" \
        --user="$(id -un)" --batch --skip-column-names "$@"
}
selects() { admin "$1" -e "SHOW GLOBAL STATUS LIKE 'Com_select'" | cut -f2; }

if [ -n "${SQLPROXY_BIN:-}" ]; then
    BIN=$SQLPROXY_BIN
else
    cargo build --release --quiet
    BIN=$ROOT/target/release/sqlproxy
fi
env SQLPROXY_NODES__CN1__ADDRESS=127.0.0.1:$CN1_PORT SQLPROXY_NODES__CN2__ADDRESS=127.0.0.1:$CN2_PORT \
    SQLPROXY_MYSQL__LISTEN=127.0.0.1:$PROXY_PORT SQLPROXY_ADMIN__LISTEN=127.0.0.1:0 \
    SQLPROXY_METRICS__LISTEN=127.0.0.1:0 SQLPROXY_HTTP__LISTEN=127.0.0.1:0 \
    SQLPROXY_HTTP__STATS__LISTEN=127.0.0.1:0 SQLPROXY_LOG=${SQLPROXY_LOG:-warn} \
    "$BIN" --config "$ROOT/config/ha.toml" >"$OUT/sqlproxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 1 150); do
    [ "$(admin cn1 -e "SELECT @@read_only")" = 0 ] && break
    sleep 0.2
done
sb() { # script log
    sysbench "$1" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PROXY_PORT" \
        --mysql-user=prestashop --mysql-password=prestashop --mysql-db="$DB" \
        --tables="$TABLES" --table-size="$TABLE_SIZE" "${@:3}" >"$2" 2>&1
}
tables=$(admin cn1 -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB'")
if [ "$tables" != "$TABLES" ]; then
    admin cn1 -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    sb oltp_read_only "$OUT/prepare.log" --threads=2 prepare
fi
sleep 2

printf 'round\tmode\tqps\tp95_ms\terrors\tselects_cn1\tselects_cn2\n' >"$OUT/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for mode in begin read-only; do
        script=oltp_read_only
        [ "$mode" = read-only ] && script=$ROOT/benches/oltp_read_only_tx.lua
        a1=$(selects cn1) a2=$(selects cn2)
        log=$OUT/$mode-$round.log
        sb "$script" "$log" --threads="$THREADS" --time="$TIME" --report-interval=0 run ||
            die "sysbench failed ($mode); see $log"
        b1=$(selects cn1) b2=$(selects cn2)
        qps=$(awk '/queries:/ { gsub(/[()]/, "", $3); print $3; exit }' "$log")
        p95=$(awk '/95th percentile:/ { print $3; exit }' "$log")
        errors=$(awk '/ignored errors:/ { print $3; exit }' "$log")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$qps" "$p95" "$errors" \
            $((b1 - a1)) $((b2 - a2)) >>"$OUT/results.tsv"
    done
done
echo
echo "sysbench oltp_read_only through sqlproxy, $THREADS threads, ${TIME}s per run; load before: $LOAD_START"
column -t "$OUT/results.tsv"
