#!/usr/bin/env bash
# benches/sysbench.sh — sqlproxy against direct MariaDB and HAProxy, one command.
#
# Starts (or reuses) the two-node cluster of scripts/cluster.sh on its own
# ports, HAProxy in TCP mode with the seed's configuration (benches/haproxy.cfg:
# roundrobin, weights 256/1, mysql-check) and a release build of sqlproxy
# (config/ha.toml, node addresses from SQLPROXY_ variables). Then, round by
# round and with the order of the targets rotated each round so machine drift
# hits all of them alike, runs sysbench oltp_point_select, oltp_read_only and
# oltp_read_write at 8 and 64 threads against each target. Measures sqlproxy's
# RSS idle, with 1000 idle logged-in clients, and under the 64-thread load.
# Prints one table (median qps and p95 latency over the rounds, ratios to
# direct MariaDB and to HAProxy) and writes it into docs/performance.md
# between the `sysbench:begin/end` markers, with the machine and the date.
#
#   QUICK=1            smoke test: 3 s runs, one round, 100 idle clients
#   TIME / ROUNDS      seconds per run (15) / rounds (3)
#   TESTS / THREADS    default "oltp_point_select oltp_read_only oltp_read_write" / "8 64"
#   IDLE_CLIENTS       idle connections for the memory figure (1000)
#   CN1_ONLY=0         leave out the target "sqlproxy, reads on cn1 only" (cn2
#                      weight 0: HAProxy's 256/1 placement). On one machine the
#                      read split costs the nodes CPU (two mariadbd processes
#                      share two cores); this target separates that cost from
#                      the proxy's own
#   CN1_PORT CN2_PORT HAPROXY_PORT PROXY_PORT PROXY_CACHE_PORT PROXY_CN1_PORT
#                      14306 14307 14308 14309 14310 14311
#   SQLPROXY_BIN       use this binary instead of `cargo build --release`
#   BEFORE_BIN         a second sqlproxy build (an earlier commit, say) run in
#                      the same rounds, cache off and on, as the targets
#                      "sqlproxy (before)" and "sqlproxy+cache (before)", on
#                      PROXY_BEFORE_PORT / PROXY_BEFORE_CACHE_PORT (14312/14313),
#                      with BEFORE_CONFIG (default config/ha.toml: give that
#                      build's own when its keys differ)
#   TLS=1              every client connects with TLS (sysbench --mysql-ssl=on,
#                      run in .cluster/tls where it finds its certificates):
#                      direct to cn1, through HAProxy (TCP mode: TLS from the
#                      client to the node) and to sqlproxy ([mysql.tls] with
#                      the cluster's server certificate; node hops in
#                      cleartext). The table goes between the sysbench-tls
#                      markers of docs/performance.md
#   NO_DOC=1           print the table only; leave docs/performance.md alone
#   KEEP=1             leave HAProxy, sqlproxy and the cluster running
#
# A column "sqlproxy+cache" is added once the config has a [cache] section
# (i.e. `sqlproxy --check` accepts SQLPROXY_CACHE__ENABLED=true).
#
# The cluster is the demo cluster (.cluster/ of this tree). For the benchmark
# it gets: a password-less `haproxy_check` user for HAProxy's check,
# max_connections=500 (two proxies' pools plus 64 clients), and
# slave_exec_mode=IDEMPOTENT: HAProxy's 256/1 weights send some of
# oltp_read_write's writes to cn2, and the master-master races they cause
# would otherwise stop replication and skew every later round (that leak is
# the seed's problem sqlproxy exists to fix). The cluster is stopped at the end
# unless it was already running (then it must be on the same CN1/CN2 ports).
# Raw figures and every sysbench log stay in .cluster/bench/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"
# The machine is shared: the load before we start goes into the report.
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    TIME=${TIME:-3} ROUNDS=${ROUNDS:-1} IDLE_CLIENTS=${IDLE_CLIENTS:-100} WARMUP=${WARMUP:-2}
else
    TIME=${TIME:-15} ROUNDS=${ROUNDS:-3} IDLE_CLIENTS=${IDLE_CLIENTS:-1000} WARMUP=${WARMUP:-5}
fi
TESTS=${TESTS:-oltp_point_select oltp_read_only oltp_read_write}
THREADS=${THREADS:-8 64}
export CN1_PORT=${CN1_PORT:-14306} CN2_PORT=${CN2_PORT:-14307}
export HAPROXY_PORT=${HAPROXY_PORT:-14308}
PROXY_PORT=${PROXY_PORT:-14309}
PROXY_CACHE_PORT=${PROXY_CACHE_PORT:-14310}
PROXY_CN1_PORT=${PROXY_CN1_PORT:-14311}
PROXY_BEFORE_PORT=${PROXY_BEFORE_PORT:-14312}
PROXY_BEFORE_CACHE_PORT=${PROXY_BEFORE_CACHE_PORT:-14313}
# sysbench data: small enough to stay in the nodes' 64 MiB buffer pool, so the
# figures measure the network path, not the disk.
TABLES=8
TABLE_SIZE=10000
DB=sbtest
APP_USER=prestashop
APP_PASSWORD=prestashop

OUT=$ROOT/.cluster/bench
mkdir -p "$OUT"
rm -f "$OUT"/*.pid
RESULTS=$OUT/results.tsv
MEMORY=$OUT/memory.tsv
PIDS=()
CLUSTER_WAS_UP=0

cleanup() {
    local pid
    if [ "${KEEP:-0}" = 1 ]; then
        info "KEEP=1: leaving HAProxy, sqlproxy and the cluster running (pid files in $OUT);"
        info "  stop: kill \$(cat $OUT/*.pid); scripts/cluster.sh down"
        return
    fi
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

# --- tools -------------------------------------------------------------------
apt_install_missing sysbench:sysbench haproxy:haproxy mariadb:mariadb-client python3:python3
# Debian's python3-pymysql lives in /usr/bin/python3, which a pyenv or venv
# python3 earlier in PATH does not see.
find_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if "$py" -c 'import pymysql' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}
PY=$(find_python) || { apt_install python3-pymysql; PY=$(find_python) || die "no python3 with pymysql"; }
HAPROXY=$(find_program haproxy)

# --- cluster -----------------------------------------------------------------
if "$ROOT/scripts/cluster.sh" status >/dev/null 2>&1; then
    CLUSTER_WAS_UP=1
fi
"$ROOT/scripts/cluster.sh" up
TLS=${TLS:-0}
TLS_DIR=$ROOT/.cluster/tls

# The unix-socket admin of a node, as scripts/cluster.sh logs in.
admin() {
    local node=$1
    shift
    mariadb --no-defaults --protocol=socket --socket="$(cat "$ROOT/.cluster/$node/socket-path")" \
        --user="$(id -un)" --batch --skip-column-names "$@"
}
app() { mariadb --no-defaults -h127.0.0.1 -P"$1" -u"$APP_USER" -p"$APP_PASSWORD" --batch --skip-column-names "${@:2}"; }

step "preparing the nodes for the benchmark"
for node in cn1 cn2; do
    admin "$node" -e "SET SESSION sql_log_bin = 0;
        CREATE USER IF NOT EXISTS 'haproxy_check'@'%';
        SET GLOBAL max_connections = 500;
        SET GLOBAL slave_exec_mode = 'IDEMPOTENT';"
done
if [ "$TLS" = 1 ] && [ "$(admin cn1 -e "SELECT @@have_ssl")" != YES ]; then
    die "TLS=1: the running cluster was started without TLS; restart it (scripts/cluster.sh down)"
fi

# --- sqlproxy ----------------------------------------------------------------
if [ -n "${SQLPROXY_BIN:-}" ]; then
    BIN=$SQLPROXY_BIN
else
    step "building sqlproxy (release)"
    cargo build --release --quiet
    BIN=$ROOT/target/release/sqlproxy
fi
export SQLPROXY_NODES__CN1__ADDRESS=127.0.0.1:$CN1_PORT
export SQLPROXY_NODES__CN2__ADDRESS=127.0.0.1:$CN2_PORT
export SQLPROXY_LOG=${SQLPROXY_LOG:-warn}
CONFIG=$ROOT/config/ha.toml
SQLPROXY_MYSQL__LISTEN=127.0.0.1:$PROXY_PORT "$BIN" --check --config "$CONFIG" >/dev/null
CACHE=0
if SQLPROXY_CACHE__ENABLED=true "$BIN" --check --config "$CONFIG" >/dev/null 2>&1; then
    CACHE=1
fi

start_proxy() { # port log [VAR=value...]: overrides for this instance
    local port=$1 log=$2
    shift 2
    # Admin, metrics and HTTP on free ports: several instances run side by side.
    env SQLPROXY_MYSQL__LISTEN="127.0.0.1:$port" SQLPROXY_ADMIN__LISTEN=127.0.0.1:0 \
        SQLPROXY_METRICS__LISTEN=127.0.0.1:0 SQLPROXY_HTTP__LISTEN=127.0.0.1:0 \
        SQLPROXY_HTTP__STATS__LISTEN=127.0.0.1:0 \
        "${TLS_ENV[@]}" "$@" "${RUN_BIN:-$BIN}" --config "${RUN_CONFIG:-$CONFIG}" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    echo "$LAST_PID" >"$OUT/sqlproxy-$port.pid"
}

wait_answers() { # port name
    local _
    for _ in $(seq 1 100); do
        if app "$1" -e 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    die "$2 on port $1 does not answer"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

TLS_ENV=()
if [ "$TLS" = 1 ]; then
    TLS_ENV=(SQLPROXY_MYSQL__TLS__CERT="$TLS_DIR/server.pem"
        SQLPROXY_MYSQL__TLS__KEY="$TLS_DIR/server-key.pem")
fi

step "starting sqlproxy on 127.0.0.1:$PROXY_PORT"
start_proxy "$PROXY_PORT" "$OUT/sqlproxy.log"
PROXY_PID=$LAST_PID
wait_answers "$PROXY_PORT" sqlproxy
if [ "$CACHE" = 1 ]; then
    step "starting sqlproxy with the cache on 127.0.0.1:$PROXY_CACHE_PORT"
    start_proxy "$PROXY_CACHE_PORT" "$OUT/sqlproxy-cache.log" SQLPROXY_CACHE__ENABLED=true
    wait_answers "$PROXY_CACHE_PORT" "sqlproxy (cache)"
else
    info "the config has no [cache] section yet: no cache column"
fi
if [ "${CN1_ONLY:-1}" = 1 ]; then
    step "starting sqlproxy with every read on cn1 on 127.0.0.1:$PROXY_CN1_PORT"
    start_proxy "$PROXY_CN1_PORT" "$OUT/sqlproxy-cn1.log" SQLPROXY_NODES__CN2__WEIGHT=0
    wait_answers "$PROXY_CN1_PORT" "sqlproxy (reads on cn1)"
fi

if [ -n "${BEFORE_BIN:-}" ]; then
    step "starting the earlier build $BEFORE_BIN on 127.0.0.1:$PROXY_BEFORE_PORT (and cache on, $PROXY_BEFORE_CACHE_PORT)"
    RUN_BIN=$BEFORE_BIN RUN_CONFIG=${BEFORE_CONFIG:-$CONFIG} \
        start_proxy "$PROXY_BEFORE_PORT" "$OUT/sqlproxy-before.log"
    wait_answers "$PROXY_BEFORE_PORT" "sqlproxy (before)"
    RUN_BIN=$BEFORE_BIN RUN_CONFIG=${BEFORE_CONFIG:-$CONFIG} \
        start_proxy "$PROXY_BEFORE_CACHE_PORT" "$OUT/sqlproxy-before-cache.log" \
        SQLPROXY_CACHE__ENABLED=true
    wait_answers "$PROXY_BEFORE_CACHE_PORT" "sqlproxy+cache (before)"
fi

# The data goes in through sqlproxy: nodes start fenced (read_only,
# scripts/cluster.cnf) and fence themselves again when no proxy is connected
# (the sqlproxy.self_fence event), while a running sqlproxy names cn1 master
# (config/ha.toml's priorities) and keeps it writable, for HAProxy's writes
# too.
for _ in $(seq 1 150); do
    [ "$(admin cn1 -e "SELECT @@read_only")" = 0 ] && break
    sleep 0.2
done
[ "$(admin cn1 -e "SELECT @@read_only")" = 0 ] || die "sqlproxy did not make cn1 writable; see $OUT/sqlproxy.log"
tables=$(admin cn1 -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB'")
if [ "$tables" != "$TABLES" ]; then
    step "sysbench prepare: $TABLES tables of $TABLE_SIZE rows on cn1"
    admin cn1 -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PROXY_PORT" \
        --mysql-user="$APP_USER" --mysql-password="$APP_PASSWORD" --mysql-db="$DB" \
        --tables="$TABLES" --table-size="$TABLE_SIZE" --threads=2 prepare >"$OUT/prepare.log" 2>&1
    # sysbench 1.0 exits 0 even when a table could not be created.
    tables=$(admin cn1 -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB'")
    [ "$tables" = "$TABLES" ] || { tail -n 5 "$OUT/prepare.log" >&2; die "sysbench prepare made $tables of $TABLES tables"; }
fi
gtid=$(admin cn1 -e "SELECT @@gtid_binlog_pos")
[ "$(admin cn2 -e "SELECT MASTER_GTID_WAIT('$gtid', 120)")" = 0 ] ||
    die "cn2 did not catch up with cn1 ($gtid); see scripts/cluster.sh status"


# --- HAProxy -----------------------------------------------------------------
step "starting HAProxy on 127.0.0.1:$HAPROXY_PORT"
"$HAPROXY" -c -q -f "$ROOT/benches/haproxy.cfg"
"$HAPROXY" -db -f "$ROOT/benches/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
PIDS+=("$!")
echo "$!" >"$OUT/haproxy.pid"
wait_answers "$HAPROXY_PORT" HAProxy
# Let the health checks of both (rise 3 x 2 s) see the nodes up.
sleep 6

TARGETS=(direct haproxy sqlproxy)
declare -A PORT=([direct]=$CN1_PORT [haproxy]=$HAPROXY_PORT [sqlproxy]=$PROXY_PORT)
if [ "$CACHE" = 1 ]; then
    TARGETS+=(sqlproxy+cache)
    PORT[sqlproxy+cache]=$PROXY_CACHE_PORT
fi
if [ "${CN1_ONLY:-1}" = 1 ]; then
    TARGETS+=(sqlproxy-cn1)
    PORT[sqlproxy-cn1]=$PROXY_CN1_PORT
fi
if [ -n "${BEFORE_BIN:-}" ]; then
    TARGETS+=(sqlproxy-before sqlproxy+cache-before)
    PORT[sqlproxy-before]=$PROXY_BEFORE_PORT
    PORT[sqlproxy+cache-before]=$PROXY_BEFORE_CACHE_PORT
fi

# sysbench's libmariadb falls back to cleartext, silently, where a server
# offers no TLS: every target must take a login with a verified certificate.
if [ "$TLS" = 1 ]; then
    for target in "${TARGETS[@]}"; do
        mariadb --no-defaults -h127.0.0.1 -P"${PORT[$target]}" -u"$APP_USER" -p"$APP_PASSWORD" \
            --ssl-ca="$TLS_DIR/ca.pem" --ssl-verify-server-cert -e 'SELECT 1' >/dev/null ||
            die "TLS=1: $target (port ${PORT[$target]}) does not take a verified TLS login"
    done
fi

# --- memory: idle, then with idle clients ------------------------------------
printf 'what\tkib\n' >"$MEMORY"
rm -f "$OUT/cache.tsv"
printf 'idle\t%s\n' "$(rss_kib "$PROXY_PID")" >>"$MEMORY"
step "memory: $IDLE_CLIENTS idle clients on sqlproxy"
rm -f "$OUT/idle.ready"
"$PY" "$ROOT/benches/idle_clients.py" 127.0.0.1 "$PROXY_PORT" "$APP_USER" "$APP_PASSWORD" \
    "$IDLE_CLIENTS" "$OUT/idle.ready" 300 &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
while [ ! -s "$OUT/idle.ready" ]; do
    kill -0 "$IDLE_PID" 2>/dev/null || die "idle_clients.py failed"
    sleep 0.5
done
sleep 2
printf 'idle_clients_%s\t%s\n' "$IDLE_CLIENTS" "$(rss_kib "$PROXY_PID")" >>"$MEMORY"
kill -TERM "$IDLE_PID" 2>/dev/null || true
wait "$IDLE_PID" 2>/dev/null || true
sleep 2
printf 'after_idle_clients\t%s\n' "$(rss_kib "$PROXY_PID")" >>"$MEMORY"

# --- sysbench ----------------------------------------------------------------
# run_one TEST THREADS TARGET SECONDS LOG: one sysbench run; prints "qps p95 errors".
run_one() {
    local status=0 ssl=() dir=$OUT
    if [ "$TLS" = 1 ]; then
        # sysbench 1.0 reads its TLS files from the working directory.
        ssl=(--mysql-ssl=on) dir=$TLS_DIR
    fi
    (cd "$dir" && exec sysbench "$1" "${ssl[@]}" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="${PORT[$3]}" \
        --mysql-user="$APP_USER" --mysql-password="$APP_PASSWORD" --mysql-db="$DB" \
        --tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$2" --time="$4" \
        --percentile=95 run) >"$5" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        info "sysbench $1 $2 threads against $3 failed (exit $status), see $5"
        echo "0 0 failed"
        return
    fi
    awk '/^ *queries:/ { q = substr($3, 2) }
         /95th percentile:/ { p = $3 }
         /^ *ignored errors:/ { e = $3 }
         END { print q, p, e }' "$5"
}

step "warm-up: oltp_point_select, ${WARMUP}s per target"
for target in "${TARGETS[@]}"; do
    run_one oltp_point_select 8 "$target" "$WARMUP" "$OUT/warmup-$target.log" >/dev/null
done

printf 'round\ttest\tthreads\ttarget\tqps\tp95_ms\tignored_errors\n' >"$RESULTS"
RSS_SAMPLES=$OUT/rss-under-load.txt
: >"$RSS_SAMPLES"
n_targets=${#TARGETS[@]}
for round in $(seq 1 "$ROUNDS"); do
    for test in $TESTS; do
        for threads in $THREADS; do
            for i in $(seq 0 $((n_targets - 1))); do
                target=${TARGETS[$(((i + round - 1) % n_targets))]}
                sampler=
                if [ "$target" = sqlproxy ] && [ "$threads" = 64 ]; then
                    (while kill -0 "$PROXY_PID" 2>/dev/null; do
                        rss_kib "$PROXY_PID" >>"$RSS_SAMPLES"
                        sleep 1
                    done) &
                    sampler=$!
                fi
                read -r qps p95 errs < <(run_one "$test" "$threads" "$target" "$TIME" \
                    "$OUT/r$round-$test-$threads-$target.log")
                if [ -n "$sampler" ]; then
                    kill "$sampler" 2>/dev/null || true
                    wait "$sampler" 2>/dev/null || true
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$test" "$threads" "$target" \
                    "$qps" "$p95" "$errs" >>"$RESULTS"
                info "round $round/$ROUNDS  $test  $threads threads  $target: $qps qps, p95 $p95 ms"
            done
        done
    done
done
# The cache's own counters over the whole run (warm-up included).
if [ "$CACHE" = 1 ]; then
    cache_admin=$(sed -n 's/^sqlproxy: admin SQL port on //p' "$OUT/sqlproxy-cache.log" | head -1)
    if [ -n "$cache_admin" ]; then
        mariadb --no-defaults -h"${cache_admin%:*}" -P"${cache_admin##*:}" -uadmin \
            -p"${SQLPROXY_ADMIN__PASSWORD:-change-me}" --batch --skip-column-names \
            -e 'SHOW CACHE' >"$OUT/cache.tsv" 2>/dev/null || info "SHOW CACHE failed"
    fi
fi
printf 'load_64_threads_max\t%s\n' "$(sort -n "$RSS_SAMPLES" | tail -1)" >>"$MEMORY"
printf 'peak_hwm\t%s\n' "$(hwm_kib "$PROXY_PID")" >>"$MEMORY"

# --- replication must have survived ------------------------------------------
repl=$("$ROOT/scripts/cluster.sh" status 2>&1 | grep -c 'io=Yes sql=Yes' || true)
[ "$repl" = 2 ] || info "WARNING: replication is not running on both nodes after the benchmark"

# --- report ------------------------------------------------------------------
doc=$ROOT/docs/performance.md
[ "${NO_DOC:-0}" = 1 ] && doc=
"$PY" "$ROOT/benches/report.py" --results "$RESULTS" --memory "$MEMORY" \
    --time "$TIME" --rounds "$ROUNDS" --tables "$TABLES" --table-size "$TABLE_SIZE" \
    --quick "$QUICK" --idle-clients "$IDLE_CLIENTS" --load-start "$LOAD_START" ${doc:+--doc "$doc"} \
    --cache "$OUT/cache.tsv" --tls "$TLS" --markers "$([ "$TLS" = 1 ] && echo sysbench-tls || echo sysbench)"
