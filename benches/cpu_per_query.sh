#!/usr/bin/env bash
# One sysbench run against one target, with the CPU each process spent per
# query (utime + stime from /proc/<pid>/stat): the figures behind the A/B
# comparisons in docs/performance-history.md ("The SQL path").
#
#   benches/cpu_per_query.sh direct|haproxy|sqlproxy|cache|cn1|floor|floor-blocking|relay-floor|relay-floor-plain [test] [threads] [seconds]
#
# floor, floor-blocking and relay-floor run examples/mysql_floor.rs (FLOOR_BIN,
# default target/release/examples/mysql_floor): every command answered from
# memory on one event loop per CPU, the same with a blocking thread per
# client, and a bare byte relay to cn1 (relay-floor-plain: the same with
# MariaDB's extended capabilities hidden from sysbench, so no cached result
# metadata): the least a cache hit or a relayed
# statement can cost on this machine.
#
# Needs the bench cluster with sysbench's tables, as benches/sysbench.sh
# leaves it (`KEEP=1 QUICK=1 benches/sysbench.sh` once, then stop its
# proxies). Starts its own HAProxy / sqlproxy on PROXY_PORT (14312), warms up
# for WARM seconds (5), then measures. SQLPROXY_BIN picks the binary (default
# target/release/sqlproxy); TOKIO_WORKER_THREADS etc. pass through.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGET=${1:?usage: $0 direct|haproxy|sqlproxy|cache|cn1|floor|floor-blocking|relay-floor|relay-floor-plain [test] [threads] [seconds]}
TEST=${2:-oltp_point_select}
THREADS=${3:-8}
SECS=${4:-10}
WARM=${WARM:-5}
BIN=${SQLPROXY_BIN:-$ROOT/target/release/sqlproxy}
FLOOR_BIN=${FLOOR_BIN:-$ROOT/target/release/examples/mysql_floor}
export CN1_PORT=${CN1_PORT:-14306} CN2_PORT=${CN2_PORT:-14307}
PROXY_PORT=${PROXY_PORT:-14312}

pid_of_node() { cat "$ROOT/.cluster/$1/mariadbd.pid"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CN1=$(pid_of_node cn1)
CN2=$(pid_of_node cn2)

proxy=
port=$PROXY_PORT
case $TARGET in
direct) port=$CN1_PORT ;;
haproxy)
    HAPROXY_PORT=$PROXY_PORT haproxy -db -f benches/haproxy.cfg >/dev/null 2>&1 &
    proxy=$!
    ;;
sqlproxy | cache | cn1)
    extra=()
    [ "$TARGET" = cache ] && extra+=(SQLPROXY_CACHE__ENABLED=true)
    [ "$TARGET" = cn1 ] && extra+=(SQLPROXY_NODES__CN2__WEIGHT=0)
    env SQLPROXY_NODES__CN1__ADDRESS="127.0.0.1:$CN1_PORT" \
        SQLPROXY_NODES__CN2__ADDRESS="127.0.0.1:$CN2_PORT" \
        SQLPROXY_MYSQL__LISTEN="127.0.0.1:$PROXY_PORT" SQLPROXY_ADMIN__LISTEN=127.0.0.1:0 \
        SQLPROXY_METRICS__LISTEN=127.0.0.1:0 SQLPROXY_HTTP__LISTEN=127.0.0.1:0 \
        SQLPROXY_HTTP__STATS__LISTEN=127.0.0.1:0 SQLPROXY_LOG=warn "${extra[@]}" \
        "$BIN" --config config/ha.toml >/dev/null 2>&1 &
    proxy=$!
    ;;
floor | floor-blocking | relay-floor | relay-floor-plain)
    case $TARGET in
    floor) mode=(answer) ;;
    floor-blocking) mode=(blocking) ;;
    relay-floor-plain) mode=(relay-plain) ;;
    *) mode=(relay) ;;
    esac
    args=("${mode[@]}" "127.0.0.1:$PROXY_PORT")
    [ "$TARGET" != floor ] && [ "$TARGET" != floor-blocking ] && args+=("127.0.0.1:$CN1_PORT")
    "$FLOOR_BIN" "${args[@]}" >/dev/null 2>&1 &
    proxy=$!
    ;;
*) echo "unknown target $TARGET" >&2; exit 2 ;;
esac
trap '[ -n "$proxy" ] && kill "$proxy" 2>/dev/null; true' EXIT

SB=(sysbench "$TEST" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port"
    --mysql-user=prestashop --mysql-password=prestashop --mysql-db=sbtest
    --tables=8 --table-size=10000 --threads="$THREADS" --percentile=95)
for _ in $(seq 50); do
    mariadb --no-defaults -h127.0.0.1 -P"$port" -uprestashop -pprestashop -e 'SELECT 1' \
        >/dev/null 2>&1 && break
    sleep 0.2
done
"${SB[@]}" --time="$WARM" run >/dev/null

n0=$(( $(ticks "$CN1") + $(ticks "$CN2") ))
p0=$([ -n "$proxy" ] && ticks "$proxy" || echo 0)
out=$(/usr/bin/time -f 'SBCPU %U %S' "${SB[@]}" --time="$SECS" run 2>&1)
n1=$(( $(ticks "$CN1") + $(ticks "$CN2") ))
p1=$([ -n "$proxy" ] && ticks "$proxy" || echo 0)

hz=$(getconf CLK_TCK)
echo "$out" | awk -v n=$((n1 - n0)) -v p=$((p1 - p0)) -v hz="$hz" -v t="$TARGET" '
    /^ *queries:/ { q = $2; qps = substr($3, 2) }
    /95th percentile:/ { p95 = $3 }
    /^SBCPU/ { sb = $2 + $3 }
    END {
        if (q == 0) { print "no queries counted"; exit 1 }
        printf "%s: %.0f qps, p95 %s ms; CPU µs/query: sysbench %.1f, nodes %.1f, proxy %.1f\n",
            t, qps, p95, sb * 1e6 / q, n * 1e6 / hz / q, p * 1e6 / hz / q }'
