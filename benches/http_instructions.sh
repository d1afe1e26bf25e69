#!/usr/bin/env bash
# User-space instructions per proxied request of balancer builds, counted by
# valgrind's callgrind while wrk drives them. Unlike req/s or CPU time on the
# shared 2-core box, the count hardly moves between runs (±0.5 %), so a
# change of 1 % in the balancer's own code shows. It says nothing of the
# kernel's share or of cache misses: confirm a gain with benches/http_ab.sh.
#
#   benches/http_instructions.sh BUILD [BUILD ...]
#   benches/http_instructions.sh target/release/examples/http_balancer \
#       target/release/examples/http_floor     # the bare hyper proxy
#
# A BUILD may be VAR=value:path to run it with one environment variable.
# With KEEP=dir, the callgrind profiles are kept there (callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-6}
WORKER_BIN=${WORKER_BIN:-target/release/examples/http_balancer}
[ $# -ge 1 ] || { echo "usage: $0 BUILD [BUILD ...]" >&2; exit 2; }
for tool in wrk valgrind callgrind_control; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install wrk valgrind)" >&2; exit 1; }
done
[ -x "$WORKER_BIN" ] || cargo build --release --example http_balancer

# shellcheck source=benches/http_lib.sh
. benches/http_lib.sh
scratch
start_workers
wait_ports "$W1" "$W2"

printf '%-60s %9s %12s\n' build requests "instr/req"
for spec in "$@"; do
    env_var=() build=$spec
    case "$spec" in *=*:*) env_var=("${spec%%:*}"); build=${spec#*:} ;; esac
    port=$(free_port)
    balancer_config "$port" "$tmp/b.toml"
    env "${env_var[@]}" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" \
        "$build" "$tmp/b.toml" >"$tmp/vg.log" 2>&1 &
    vg=$!
    pids+=("$vg")
    # Under valgrind the start takes seconds.
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    wrk -t2 -c16 -d3s "http://127.0.0.1:$port/" >/dev/null   # warm pools and caches
    callgrind_control -z "$vg" >/dev/null 2>&1
    wrk -t2 -c16 -d"${SECS}s" "http://127.0.0.1:$port/" >"$tmp/wrk.txt"
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill "$vg" 2>/dev/null || true
    wait "$vg" 2>/dev/null || true
    requests=$(awk '/requests in/ { print $1 }' "$tmp/wrk.txt")
    instr=$(cat "$tmp"/cg."$vg".* | awk '/^summary:/ { s += $2 } END { print s + 0 }')
    printf '%-60s %9s %12s\n' "$spec" "$requests" "$(( instr / (requests > 0 ? requests : 1) ))"
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cat "$tmp"/cg."$vg".* > "$KEEP/$(basename "$build")${env_var[0]:+.${env_var[0]}}.callgrind"
    fi
    rm -f "$tmp"/cg.*
done
