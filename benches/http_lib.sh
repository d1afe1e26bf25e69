# Shared by benches/http.sh, http_ab.sh and http_instructions.sh (sourced,
# not run): a scratch directory, the two workers, the seed's HAProxy front
# and a balancer config in front of the same workers. The caller calls
# `scratch` first and sets WORKER_BIN.

# Sets `tmp` (a scratch directory) and `pids` (processes to kill); both are
# cleaned up when the script exits (the directory kept if KEEP_TMP is set).
scratch() {
    tmp=$(mktemp -d)
    pids=()
    trap cleanup_scratch EXIT
}

cleanup_scratch() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts workers wa1 and wa2 on free ports; sets W1, W2 and WORKER_PIDS.
# WORKERS=php runs the demo's PHP page under `php -S` instead (without a
# database: SQLPROXY_DSN unset), as a shop's web workers would be: then PHP,
# not the balancer, sets the pace.
start_workers() {
    W1=$(free_port); W2=$(free_port)
    if [ "${WORKERS:-fast}" = php ]; then
        command -v php >/dev/null || { echo "php is not installed (apt-get install php-cli)" >&2; exit 1; }
        WORKER_NAME=wa1 php -S "127.0.0.1:$W1" scripts/http-worker.php >/dev/null 2>&1 & pids+=($!)
        WORKER_NAME=wa2 php -S "127.0.0.1:$W2" scripts/http-worker.php >/dev/null 2>&1 & pids+=($!)
    else
        "$WORKER_BIN" --worker wa1 "127.0.0.1:$W1" >/dev/null & pids+=($!)
        "$WORKER_BIN" --worker wa2 "127.0.0.1:$W2" >/dev/null & pids+=($!)
    fi
    WORKER_PIDS=("${pids[@]: -2}")
}

# Starts HAProxy with the seed's HTTP front on a free port; sets HA and HA_PID.
# HA_BIND_OPTS is appended to its `bind` line (e.g. `ssl crt FILE`).
start_haproxy() {
    HA=$(free_port)
    # HAProxy wants 2 fds per maxconn up front; lower the seed's 20000 if
    # the hard fd limit cannot give that.
    local maxconn=$(( $(ulimit -Hn) / 2 - 100 ))
    [ "$maxconn" -gt 20000 ] && maxconn=20000
    cat > "$tmp/haproxy.cfg" <<CFG
global
    maxconn $maxconn
defaults
    mode http
    retries 3
    option redispatch
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option forwardfor
frontend www
    bind 127.0.0.1:$HA${HA_BIND_OPTS:-}
    default_backend workers
backend workers
    balance roundrobin
    option httpchk GET /health
    server wa1 127.0.0.1:$W1 check inter 2s rise 3 fall 2
    server wa2 127.0.0.1:$W2 check inter 2s rise 3 fall 2
CFG
    haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 & pids+=($!)
    HA_PID=$!
}

# Writes to file $2 a balancer config listening on port $1, in front of
# the workers, with the seed's retries and health check path, then
# BALANCER_EXTRA (more [http.*] tables, e.g. [http.tls]).
balancer_config() {
    cat > "$2" <<CFG
[http]
listen = "127.0.0.1:$1"
retries = 3
[http.health]
path = "/health"
[[http.backends]]
name = "wa1"
address = "127.0.0.1:$W1"
[[http.backends]]
name = "wa2"
address = "127.0.0.1:$W2"
${BALANCER_EXTRA:-}
CFG
}

# With TLS=1: a throwaway self-signed certificate for localhost in $tmp,
# served by both fronts (HAProxy wants key and chain in one PEM), and
# SCHEME=https. Otherwise SCHEME=http.
tls_setup() {
    SCHEME=http
    [ "${TLS:-0}" = 1 ] || return 0
    command -v openssl >/dev/null || { echo "openssl is not installed" >&2; exit 1; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$tmp/tls.key" -out "$tmp/tls.pem" 2>/dev/null
    cat "$tmp/tls.pem" "$tmp/tls.key" > "$tmp/haproxy.pem"
    HA_BIND_OPTS=" ssl crt $tmp/haproxy.pem alpn h2,http/1.1"
    BALANCER_EXTRA=$(printf '[http.tls]\ncert = "%s"\nkey = "%s"\n' "$tmp/tls.pem" "$tmp/tls.key")
    SCHEME=https
}

# Waits (up to 10 s each) until every given port accepts connections.
wait_ports() {
    local port
    for port in "$@"; do
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
    done
}
