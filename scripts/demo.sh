#!/usr/bin/env bash
# scripts/demo.sh [up|down]
#
# The seed in miniature: starts the local two-node MariaDB cluster
# (scripts/cluster.sh, installing MariaDB if missing), two PHP web workers
# (`php -S`, serving scripts/http-worker.php, which reads a row through the
# SQL proxy with PDO), builds sqlproxy and runs it with config/ha.toml: the
# SQL proxy in front of the nodes and the HTTP balancer in front of the
# workers, node addresses overridden from the environment the way an
# operator would. Then it shows where reads and writes land and which worker
# served each page, and prints how to connect.
#
#   PROXY_PORT (default 13300)   where MySQL clients connect
#   HTTP_PORT (default 8080)     where browsers connect (the balancer)
#   CN1_PORT / CN2_PORT          node ports (defaults of cluster.sh)
#
# `down` stops the proxy, the workers and the cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

PROXY_PORT=${PROXY_PORT:-13300}
HTTP_PORT=${HTTP_PORT:-8080}
WORKER_PORTS=(8081 8082)
export CN1_PORT=${CN1_PORT:-13306} CN2_PORT=${CN2_PORT:-13307}
RUN_DIR=$ROOT/.cluster
PID_FILE=$RUN_DIR/sqlproxy.pid
LOG_FILE=$RUN_DIR/sqlproxy.log

stop_proxy() {
    local f
    for f in "$PID_FILE" "$RUN_DIR"/worker-*.pid; do
        if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
            kill -TERM "$(cat "$f")"
        fi
        rm -f "$f"
    done
}

case "${1:-up}" in
down)
    stop_proxy
    "$ROOT/scripts/cluster.sh" down
    exit 0
    ;;
up) ;;
*) die "usage: $0 [up|down]" ;;
esac

"$ROOT/scripts/cluster.sh" up

step "building sqlproxy (release)"
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
cargo build --release --quiet
BIN=$ROOT/target/release/sqlproxy

stop_proxy
mkdir -p "$RUN_DIR"
command -v php >/dev/null 2>&1 || apt_install php-cli php-mysql
command -v curl >/dev/null 2>&1 || apt_install curl
php -m | grep -qi '^pdo_mysql$' || apt_install php-mysql
step "starting web workers wa1, wa2 (php -S) on ports ${WORKER_PORTS[*]}"
for i in 0 1; do
    WORKER_NAME=wa$((i + 1)) SQLPROXY_DSN="mysql:host=127.0.0.1;port=$PROXY_PORT" \
        SQLPROXY_USER=prestashop SQLPROXY_PASSWORD=prestashop \
        nohup php -S "127.0.0.1:${WORKER_PORTS[$i]}" scripts/http-worker.php \
        >"$RUN_DIR/worker-wa$((i + 1)).log" 2>&1 &
    echo $! >"$RUN_DIR/worker-wa$((i + 1)).pid"
done

step "starting sqlproxy: MySQL on 127.0.0.1:$PROXY_PORT, HTTP on 127.0.0.1:$HTTP_PORT"
export SQLPROXY_MYSQL__LISTEN=127.0.0.1:$PROXY_PORT
export SQLPROXY_HTTP__LISTEN=127.0.0.1:$HTTP_PORT
export SQLPROXY_NODES__CN1__ADDRESS=127.0.0.1:$CN1_PORT
export SQLPROXY_NODES__CN2__ADDRESS=127.0.0.1:$CN2_PORT
"$BIN" --check --config config/ha.toml
nohup "$BIN" --config config/ha.toml >"$LOG_FILE" 2>&1 &
echo $! >"$PID_FILE"
for _ in $(seq 1 50); do
    if mariadb -h127.0.0.1 -P"$PROXY_PORT" -uprestashop -pprestashop -e 'SELECT 1' >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
sleep 1 # let the health checks see both nodes up

mysql_proxy() { mariadb -h127.0.0.1 -P"$PROXY_PORT" -uprestashop -pprestashop "$@"; }
step "where statements land (server_id 1 = cn1, the master; 2 = cn2)"
mysql_proxy -e "CREATE DATABASE IF NOT EXISTS demo;
  CREATE TABLE IF NOT EXISTS demo.orders (id INT AUTO_INCREMENT PRIMARY KEY, written_on INT, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
for _ in 1 2 3; do mysql_proxy -e "INSERT INTO demo.orders (written_on) VALUES (@@server_id)"; done
mysql_proxy -N -e "SELECT CONCAT('writes landed on server_id ', GROUP_CONCAT(DISTINCT written_on)) FROM demo.orders"
reads=$(for _ in $(seq 1 20); do mysql_proxy -N -e "SELECT @@server_id"; done | sort | uniq -c | awk '{printf "server_id %s: %s reads  ", $2, $1}')
info "20 reads: $reads"

step "pages through the HTTP balancer (each names its worker and reads a row via the SQL proxy)"
sleep 1
for _ in 1 2 3 4; do
    curl -s "http://127.0.0.1:$HTTP_PORT/" | sed -n 's/.*<h1>\(.*\)<\/h1>.*/\1/p;s/.*class="server_id">\([0-9]*\)<.*/  row read from server_id \1/p' | tr '\n' ' '
    echo
done

cat <<TXT

sqlproxy is running (pid $(cat "$PID_FILE"), log $LOG_FILE).
  connect:    mariadb -h127.0.0.1 -P$PROXY_PORT -uprestashop -pprestashop
  PHP PDO:    new PDO('mysql:host=127.0.0.1;port=$PROXY_PORT;dbname=demo', 'prestashop', 'prestashop')
  shop page:  http://127.0.0.1:$HTTP_PORT/   (balanced over wa1, wa2)
  stats:      http://127.0.0.1:8404/stats   (admin / change-me)
  admin SQL:  mariadb -h127.0.0.1 -P6032 -uadmin -pchange-me -e 'SHOW BACKENDS'
  metrics:    http://127.0.0.1:9104/metrics
  nodes:      cn1 127.0.0.1:$CN1_PORT (master), cn2 127.0.0.1:$CN2_PORT
  stop:       scripts/demo.sh down
TXT
