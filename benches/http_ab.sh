#!/usr/bin/env bash
# Compares balancer builds with each other and with HAProxy, in front of the
# same two workers, by the CPU each process spends per request: the balancer
# (user and kernel), wrk and the workers, read from /proc during each run.
# On the shared 2-core box throughput follows the machine's speed, which
# drifts; CPU per request of builds run side by side drifts less. Each round
# runs every target once; the medians over the rounds are printed last.
#
#   benches/http_ab.sh BUILD [BUILD ...]     # BUILD: an http_balancer binary
#   ROUNDS=6 SECS=5 benches/http_ab.sh target/release/examples/http_balancer /tmp/other
#
# A build may be a wrapper script (e.g. one setting an environment variable)
# as long as it `exec`s the binary, so that its pid is the balancer's.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-6}
SECS=${SECS:-5}
CONNS=${CONNS:-64}
WORKER_BIN=${WORKER_BIN:-target/release/examples/http_balancer}
[ $# -ge 1 ] || { echo "usage: $0 BUILD [BUILD ...]" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "haproxy is not installed" >&2; exit 1; }
[ -x "$WORKER_BIN" ] || cargo build --release --example http_balancer

# shellcheck source=benches/http_lib.sh
. benches/http_lib.sh
scratch
start_workers
workers=("${WORKER_PIDS[@]}")
start_haproxy
names=(haproxy); ports=("$HA"); fronts=("$HA_PID")

i=0
for build in "$@"; do
    i=$((i + 1)); port=$(free_port)
    balancer_config "$port" "$tmp/b$i.toml"
    "$build" "$tmp/b$i.toml" >"$tmp/b$i.log" 2>&1 & pids+=($!)
    names+=("b$i"); ports+=("$port"); fronts+=($!)
    echo "b$i = $build"
done
wait_ports "${ports[@]}" "$W1" "$W2"
for port in "${ports[@]}"; do wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$port/" >/dev/null; done

# utime + stime of a process, in clock ticks; voluntary + involuntary
# context switches of all its threads.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
user_sys() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
hz=$(getconf CLK_TCK)

printf '%-5s %-8s %9s %8s %8s %8s %8s %8s %8s %9s\n' round target "req/s" "p99" \
    "µs/req" user sys wrk workers "wrk cs/req"
for r in $(seq "$ROUNDS"); do
    for k in "${!names[@]}"; do
        pid=${fronts[$k]}
        wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:${ports[$k]}/" >"$tmp/out" &
        wp=$!
        # Measure the middle of the run: skip its first and last half second.
        sleep 0.5
        read -r u0 s0 < <(user_sys "$pid"); w0=$(ticks "$wp"); x0=$(switches "$wp")
        k0=$(( $(ticks "${workers[0]}") + $(ticks "${workers[1]}") ))
        sleep $((SECS - 1))
        read -r u1 s1 < <(user_sys "$pid"); w1=$(ticks "$wp"); x1=$(switches "$wp")
        k1=$(( $(ticks "${workers[0]}") + $(ticks "${workers[1]}") ))
        wait "$wp"
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/out")
        p99=$(awk '$1 == "99%" { print $2 }' "$tmp/out")
        awk -v r="$r" -v n="${names[$k]}" -v rps="$rps" -v p99="$p99" -v t=$((SECS - 1)) -v hz="$hz" \
            -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v w=$((w1 - w0)) -v kw=$((k1 - k0)) -v x=$((x1 - x0)) \
            'BEGIN { q = rps * t; us = 1e6 / hz / q
                     printf "%-5s %-8s %9.0f %8s %8.2f %8.2f %8.2f %8.2f %8.2f %9.3f\n",
                            r, n, rps, p99, (u + s) * us, u * us, s * us, w * us, kw * us, x / q }' \
            | tee -a "$tmp/rows"
    done
done

echo "medians over $ROUNDS rounds:"
for n in "${names[@]}"; do
    awk -v n="$n" '$2 == n { for (c = 3; c <= 10; c++) if (c != 4) v[c][NR] = $c }
        function med(a,   i, k, s) { k = 0; for (i in a) s[++k] = a[i]; asort(s)
            return (k % 2) ? s[(k + 1) / 2] : (s[k / 2] + s[k / 2 + 1]) / 2 }
        END { printf "%-14s req/s %.0f  balancer µs/req %.2f (user %.2f, sys %.2f)  wrk %.2f  workers %.2f  wrk cs/req %.3f\n",
                     n, med(v[3]), med(v[5]), med(v[6]), med(v[7]), med(v[8]), med(v[9]), med(v[10]) }' "$tmp/rows"
done
