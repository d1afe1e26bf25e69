#!/usr/bin/env bash
# scripts/demo.sh [up|down]
#
# The main job in miniature: starts the local two-node MariaDB cluster
# (scripts/cluster.sh, installing MariaDB if missing), builds sqlproxy, and
# runs it in front of the cluster with config/ha.toml, the node addresses
# overridden from the environment the way an operator would. Then it shows
# where reads and writes land and prints how to connect.
#
#   PROXY_PORT (default 13300)   where clients connect
#   CN1_PORT / CN2_PORT          node ports (defaults of cluster.sh)
#
# `down` stops the proxy and the cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

PROXY_PORT=${PROXY_PORT:-13300}
export CN1_PORT=${CN1_PORT:-13306} CN2_PORT=${CN2_PORT:-13307}
RUN_DIR=$ROOT/.cluster
PID_FILE=$RUN_DIR/sqlproxy.pid
LOG_FILE=$RUN_DIR/sqlproxy.log

stop_proxy() {
    if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        kill -TERM "$(cat "$PID_FILE")"
        info "sqlproxy stopped"
    fi
    rm -f "$PID_FILE"
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
step "starting sqlproxy on 127.0.0.1:$PROXY_PORT"
export SQLPROXY_MYSQL__LISTEN=127.0.0.1:$PROXY_PORT
export SQLPROXY_NODES__CN1__ADDRESS=127.0.0.1:$CN1_PORT
export SQLPROXY_NODES__CN2__ADDRESS=127.0.0.1:$CN2_PORT
"$BIN" --check --config config/ha.toml
mkdir -p "$RUN_DIR"
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

cat <<TXT

sqlproxy is running (pid $(cat "$PID_FILE"), log $LOG_FILE).
  connect:    mariadb -h127.0.0.1 -P$PROXY_PORT -uprestashop -pprestashop
  PHP PDO:    new PDO('mysql:host=127.0.0.1;port=$PROXY_PORT;dbname=demo', 'prestashop', 'prestashop')
  nodes:      cn1 127.0.0.1:$CN1_PORT (master), cn2 127.0.0.1:$CN2_PORT
  stop:       scripts/demo.sh down
TXT
