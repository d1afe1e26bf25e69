#!/usr/bin/env bash
# scripts/pymysql-suite.sh HOST PORT [USER PASSWORD]
#
# Runs PyMySQL 0.10.1's own test suite (the last release that ships it)
# against HOST:PORT, a sqlproxy or a node, so the two runs can be compared
# (docs/compatibility.md lists what differs and why). Needs python3 and the
# PYTHON (default python3) with PyMySQL and pytest importable; the
# databases test1 and test2 are created through HOST:PORT. The source is
# downloaded once into target/pymysql-suite/.
#
#   scripts/cluster.sh up; sqlproxy --config ...;  # then
#   scripts/pymysql-suite.sh 127.0.0.1 3307 > proxy.txt
#   scripts/pymysql-suite.sh 127.0.0.1 13306 > node.txt
set -euo pipefail

HOST=$1
PORT=$2
USER=${3:-prestashop}
PASSWORD=${4:-prestashop}
VERSION=0.10.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/target/pymysql-suite
SRC=$DIR/PyMySQL-$VERSION
PY=${PYTHON:-python3}

if [ ! -d "$SRC" ]; then
    mkdir -p "$DIR"
    "$PY" -m pip download "pymysql==$VERSION" --no-binary :all: --no-deps -d "$DIR" >&2
    tar -xzf "$DIR/PyMySQL-$VERSION.tar.gz" -C "$DIR"
fi

# The suite's two connections; the first is meant to be an administrator.
cat > "$SRC/pymysql/tests/databases.json" <<JSON
[{"host": "$HOST", "port": $PORT, "user": "$USER", "passwd": "$PASSWORD",
  "db": "test1", "use_unicode": true, "local_infile": true},
 {"host": "$HOST", "port": $PORT, "user": "$USER", "passwd": "$PASSWORD", "db": "test2"}]
JSON
for db in test1 test2; do
    "$PY" - "$HOST" "$PORT" "$USER" "$PASSWORD" "$db" <<'PYTHON'
import sys
import pymysql
host, port, user, password, db = sys.argv[1:6]
c = pymysql.connect(host=host, port=int(port), user=user, password=password)
c.cursor().execute("CREATE DATABASE IF NOT EXISTS `%s`" % db)
PYTHON
done
cd "$SRC"
# One line per test: "test_name (module.Class) ... ok|FAIL|ERROR|skipped".
"$PY" -m unittest -v pymysql.tests 2>&1
