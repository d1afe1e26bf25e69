#!/usr/bin/env bash
# wrk against HAProxy (the seed's HTTP front) and against sqlproxy's HTTP
# balancer, in the same run, in front of the same two workers; prints
# requests/s and p99 latency of each and the sqlproxy/HAProxy ratios.
#
#   benches/http.sh                       # defaults below
#   DUR=30s CONNS=128 ROUNDS=3 benches/http.sh
#   WORKERS=php CONNS=8 benches/http.sh   # the demo's PHP page under php -S
#   TLS=1 benches/http.sh                 # HTTPS: both fronts terminate TLS (benches/https.sh)
#
# The workers are `http_balancer --worker` (a fixed ~600-byte page) so that
# the balancers, not PHP, are what is measured; WORKERS=php shows a shop's
# case instead. Everything shares the same
# machine: read the ratios, not the absolute numbers. Loopback only, free
# ports chosen by the OS.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-4}
BIN=${HTTP_BALANCER_BIN:-target/release/examples/http_balancer}
# The workers' binary (default: the same); set it to compare two balancer builds.
WORKER_BIN=${WORKER_BIN:-$BIN}

command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "haproxy is not installed" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
    cargo build --release --example http_balancer
fi

# shellcheck source=benches/http_lib.sh
. benches/http_lib.sh
scratch
tls_setup
start_workers
start_haproxy
SP=$(free_port)
balancer_config "$SP" "$tmp/sqlproxy.toml"
"$BIN" "$tmp/sqlproxy.toml" >"$tmp/sqlproxy.log" 2>&1 & pids+=($!)
wait_ports "$W1" "$W2" "$HA" "$SP"

# p99 from `wrk --latency` in milliseconds.
p99_ms() {
    awk '$1 == "99%" { v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.3f", v }' "$1"
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
errors() { awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$1"; }

echo "warm-up"
wrk -t"$THREADS" -c"$CONNS" -d2s "$SCHEME://127.0.0.1:$HA/" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d2s "$SCHEME://127.0.0.1:$SP/" >/dev/null

echo "workers: ${WORKERS:-fast}, $SCHEME"
printf '%-6s %-9s %12s %10s  %s\n' round target "req/s" "p99 ms" errors
ha_sum=0; sp_sum=0; ha_p99=0; sp_p99=0; ratios=()
for r in $(seq "$ROUNDS"); do
    # ABBA: odd rounds start with HAProxy, even ones with sqlproxy, so that a
    # drift of the shared machine's speed weighs on both the same.
    order="haproxy sqlproxy"; [ $((r % 2)) -eq 0 ] && order="sqlproxy haproxy"
    for t in $order; do
        port=$HA; [ "$t" = sqlproxy ] && port=$SP
        out="$tmp/$t.$r.txt"
        wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$SCHEME://127.0.0.1:$port/" >"$out"
        printf '%-6s %-9s %12s %10s  %s\n' "$r" "$t" "$(rps "$out")" "$(p99_ms "$out")" "$(errors "$out")"
        if [ "$t" = haproxy ]; then
            ha_sum=$(echo "$ha_sum + $(rps "$out")" | bc -l); ha_p99=$(echo "$ha_p99 + $(p99_ms "$out")" | bc -l)
        else
            sp_sum=$(echo "$sp_sum + $(rps "$out")" | bc -l); sp_p99=$(echo "$sp_p99 + $(p99_ms "$out")" | bc -l)
        fi
    done
    ratios+=("$(echo "$(rps "$tmp/sqlproxy.$r.txt") / $(rps "$tmp/haproxy.$r.txt")" | bc -l)")
done
printf 'mean req/s: haproxy %.0f, sqlproxy %.0f → ratio %.2f× (target ≥ 1.0×)\n' \
    "$(echo "$ha_sum / $ROUNDS" | bc -l)" "$(echo "$sp_sum / $ROUNDS" | bc -l)" "$(echo "$sp_sum / $ha_sum" | bc -l)"
printf 'per-round ratios: %s → median %.2f×\n' \
    "$(printf '%.2f ' "${ratios[@]}")" \
    "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
printf 'mean p99 ms: haproxy %.3f, sqlproxy %.3f → ratio %.2f× (lower is better)\n' \
    "$(echo "$ha_p99 / $ROUNDS" | bc -l)" "$(echo "$sp_p99 / $ROUNDS" | bc -l)" "$(echo "$sp_p99 / $ha_p99" | bc -l)"
