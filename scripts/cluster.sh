#!/usr/bin/env bash
# scripts/cluster.sh up|down|status
#
# The demo cluster, for humans: two MariaDB nodes, cn1 and cn2, in GTID
# master-master replication on 127.0.0.1, with the accounts sqlproxy and the
# shop use. Same settings (scripts/cluster.cnf), accounts
# (scripts/cluster-init.sql) and replication (scripts/cluster-replicate.sql)
# as the test fixture in tests/common/. Files live in .cluster/ of the repo.
#
#   CN1_PORT (default 13306), CN2_PORT (default 13307)   node ports
#
# Both nodes offer TLS (not required) with a throwaway CA made by openssl at
# the first `up` in .cluster/tls/: ca.pem, the nodes' server.pem/server-key.pem
# (for 127.0.0.1 and localhost) and a client.pem/client-key.pem that clients
# such as sysbench (`--mysql-ssl=on` reads client-key.pem, client-cert.pem and
# cacert.pem from its working directory, linked there too) can present.
#
# `up` installs mariadb-server with apt-get if mariadbd is missing, creates
# and starts what is not running, and is safe to repeat. `down` stops both
# nodes (clean shutdown, SIGKILL if that hangs). The tests never use this
# cluster; they start their own on free ports.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

CN1_PORT=${CN1_PORT:-13306}
CN2_PORT=${CN2_PORT:-13307}
CLUSTER_DIR=$ROOT/.cluster
CNF=$ROOT/scripts/cluster.cnf
NODES=(cn1 cn2)
# Seconds a node may take to answer after starting, and replication to connect.
START_WAIT=60
# Seconds a clean shutdown may take before the node is killed.
STOP_WAIT=30
# The OS account that runs mariadbd and logs in as its unix-socket admin
# (root in CI; a developer's own account works too).
OS_USER=$(id -un)

port_of() { if [ "$1" = cn1 ]; then echo "$CN1_PORT"; else echo "$CN2_PORT"; fi; }
peer_of() { if [ "$1" = cn1 ]; then echo cn2; else echo cn1; fi; }
id_of() { if [ "$1" = cn1 ]; then echo 1; else echo 2; fi; }
node_dir() { echo "$CLUSTER_DIR/$1"; }
pid_file() { echo "$(node_dir "$1")/mariadbd.pid"; }
log_file() { echo "$(node_dir "$1")/error.log"; }

# The unix socket: in the node directory unless that path is too long for
# sun_path (108 bytes), then in /tmp. Recorded so `status`/`down` find it.
socket_of() {
    local dir record sock
    dir=$(node_dir "$1")
    record=$dir/socket-path
    if [ -f "$record" ]; then
        cat "$record"
        return
    fi
    sock=$dir/mariadbd.sock
    if [ "${#sock}" -gt 100 ]; then
        sock=${TMPDIR:-/tmp}/sqlproxy-cluster-$(id -u)-$1.sock
    fi
    if [ -d "$dir" ]; then
        printf '%s\n' "$sock" >"$record"
    fi
    printf '%s\n' "$sock"
}

# The mariadb client as the unix-socket admin of a node.
client() {
    local node=$1
    shift
    "$MARIADB" --no-defaults --protocol=socket --socket="$(socket_of "$node")" \
        --user="$OS_USER" --connect-timeout=5 "$@"
}

# SQL on a node; batch output without headers.
sql() {
    local node=$1
    shift
    client "$node" --batch --skip-column-names "$@"
}

# One field of SHOW SLAVE STATUS (empty when replication is not set up).
slave_field() {
    client "$1" --vertical -e "SHOW SLAVE STATUS" 2>/dev/null |
        awk -v k="$2" '{ sub(/^ +/, "") } index($0, k ": ") == 1 { print substr($0, length(k) + 3) }'
}

# The pid of a running node, or nothing.
running_pid() {
    local pid
    pid=$(cat "$(pid_file "$1")" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    fi
}

answers() { sql "$1" -e "SELECT 1" >/dev/null 2>&1; }

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

find_tools() {
    MARIADBD=$(find_program mariadbd) || die "mariadbd not found"
    MARIADB=$(find_program mariadb) || die "mariadb (client) not found"
    INSTALL_DB=$(find_program mariadb-install-db) || die "mariadb-install-db not found"
    ADMIN=$(find_program mariadb-admin) || die "mariadb-admin not found"
}

# The throwaway CA and certificates both nodes serve TLS with (first `up`).
TLS_DIR=$CLUSTER_DIR/tls
make_tls() {
    [ -f "$TLS_DIR/server.pem" ] && return
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    step "TLS: a throwaway CA and certificates in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    local d=$TLS_DIR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=sqlproxy demo CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null
    local who
    for who in server client; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=$who" -keyout "$d/$who-key.pem" -out "$d/$who.csr" 2>/dev/null
        openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
            -CAcreateserial -days 3650 -out "$d/$who.pem" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n') 2>/dev/null
        rm -f "$d/$who.csr"
    done
    # The file names sysbench 1.0 looks for in its working directory.
    ln -sf client.pem "$d/client-cert.pem"
    ln -sf ca.pem "$d/cacert.pem"
    chmod 0644 "$d"/*.pem
}

# Creates the data directory (first `up` only) and starts the node detached.
start_node() {
    local node=$1 dir port id
    dir=$(node_dir "$node")
    port=$(port_of "$node")
    id=$(id_of "$node")
    if [ -n "$(running_pid "$node")" ]; then
        info "$node is already up (pid $(running_pid "$node"))"
        return
    fi
    if port_taken "$port"; then
        die "port $port (for $node) is taken by another program; set ${node^^}_PORT"
    fi
    mkdir -p "$dir/tmp"
    socket_of "$node" >/dev/null # records the socket path now that the directory exists
    if [ ! -d "$dir/data/mysql" ]; then
        step "$node: creating $dir/data"
        "$INSTALL_DB" --defaults-file="$CNF" --datadir="$dir/data" --user="$OS_USER" \
            --auth-root-authentication-method=socket --auth-root-socket-user="$OS_USER" \
            --skip-test-db --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1 ||
            { cat "$dir/install.log" >&2; die "mariadb-install-db failed for $node"; }
    fi
    step "$node: starting on 127.0.0.1:$port"
    setsid "$MARIADBD" --defaults-file="$CNF" --user="$OS_USER" --datadir="$dir/data" \
        --port="$port" --socket="$(socket_of "$node")" --pid-file="$(pid_file "$node")" \
        --log-error="$(log_file "$node")" --tmpdir="$dir/tmp" \
        --server-id="$id" --gtid-domain-id="$id" \
        --ssl-ca="$TLS_DIR/ca.pem" --ssl-cert="$TLS_DIR/server.pem" \
        --ssl-key="$TLS_DIR/server-key.pem" </dev/null >/dev/null 2>&1 &
    local waited=0
    until answers "$node"; do
        if [ "$waited" -ge $((START_WAIT * 10)) ] || ! kill -0 $! 2>/dev/null; then
            tail -n 20 "$(log_file "$node")" >&2 || true
            die "$node did not come up (log: $(log_file "$node"))"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# Accounts (idempotent, not binlogged), then replication from the peer,
# re-pointed if the peer's port changed since the last `up`.
setup_node() {
    local node=$1 peer_port current
    peer_port=$(port_of "$(peer_of "$node")")
    sql "$node" <"$ROOT/scripts/cluster-init.sql"
    current=$(slave_field "$node" Master_Port)
    if [ "$current" != "$peer_port" ]; then
        if [ -n "$current" ]; then
            sql "$node" -e "STOP SLAVE"
        fi
        sed "s/@PEER_PORT@/$peer_port/; s/@PEER_HOST@/127.0.0.1/" "$ROOT/scripts/cluster-replicate.sql" | sql "$node"
    else
        sql "$node" -e "START SLAVE" 2>/dev/null || true
    fi
}

wait_replication() {
    local node waited=0
    for node in "${NODES[@]}"; do
        until [ "$(slave_field "$node" Slave_IO_Running)" = Yes ] &&
            [ "$(slave_field "$node" Slave_SQL_Running)" = Yes ]; do
            if [ "$waited" -ge $((START_WAIT * 10)) ]; then
                status >&2 || true
                die "replication did not start on $node"
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done
}

up() {
    apt_install_missing mariadbd:mariadb-server mariadb:mariadb-client
    find_tools
    local node
    make_tls
    for node in "${NODES[@]}"; do start_node "$node"; done
    for node in "${NODES[@]}"; do setup_node "$node"; done
    wait_replication
    step "cluster up"
    cat <<EOF
cn1  127.0.0.1:$CN1_PORT  server_id 1
cn2  127.0.0.1:$CN2_PORT  server_id 2
replication: GTID master-master, both slave threads running

connect:   mariadb -h127.0.0.1 -P$CN1_PORT -uprestashop -pprestashop
monitor:   user sqlproxy_monitor, password monitor
admin:     mariadb --socket=$(socket_of cn1) -u$OS_USER
sqlproxy:  set [nodes.cn1] address = "127.0.0.1:$CN1_PORT" and
           [nodes.cn2] address = "127.0.0.1:$CN2_PORT" in config/ha.toml
stop:      scripts/cluster.sh down
EOF
}

down() {
    local node pid waited
    find_program mariadb-admin >/dev/null || { info "mariadb is not installed; nothing runs"; return; }
    find_tools
    for node in "${NODES[@]}"; do
        pid=$(running_pid "$node")
        if [ -z "$pid" ]; then
            info "$node is not running"
            continue
        fi
        info "$node: shutting down (pid $pid)"
        "$ADMIN" --no-defaults --protocol=socket --socket="$(socket_of "$node")" \
            --user="$OS_USER" --connect-timeout=5 --shutdown-timeout="$STOP_WAIT" shutdown \
            2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$waited" -ge $((STOP_WAIT * 10)) ]; then
                info "$node: still running after ${STOP_WAIT}s, killing it"
                kill -9 "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        rm -f "$(pid_file "$node")"
        info "$node stopped"
    done
}

status() {
    local node pid rc=0
    find_program mariadb >/dev/null || { info "mariadb is not installed"; return 3; }
    find_tools
    for node in "${NODES[@]}"; do
        pid=$(running_pid "$node")
        if [ -z "$pid" ] || ! answers "$node"; then
            echo "$node  127.0.0.1:$(port_of "$node")  down"
            rc=3
            continue
        fi
        echo "$node  127.0.0.1:$(port_of "$node")  up (pid $pid)  server_id $(sql "$node" -e 'SELECT @@server_id')" \
            " read_only $(sql "$node" -e 'SELECT @@read_only')  gtid_current_pos '$(sql "$node" -e 'SELECT @@gtid_current_pos')'"
        echo "     replicates from port $(slave_field "$node" Master_Port):" \
            "io=$(slave_field "$node" Slave_IO_Running) sql=$(slave_field "$node" Slave_SQL_Running)" \
            "behind=$(slave_field "$node" Seconds_Behind_Master)s" \
            "last_io_error='$(slave_field "$node" Last_IO_Error)' last_sql_error='$(slave_field "$node" Last_SQL_Error)'"
    done
    return "$rc"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status   (ports: CN1_PORT=$CN1_PORT CN2_PORT=$CN2_PORT)" >&2
    exit 2
    ;;
esac
