#!/usr/bin/env bash
# scripts/connector-python-suite.sh HOST PORT [USER PASSWORD]
#
# Runs mysql-connector-python 8.0.23's own unit tests (the last release whose
# PyPI sdist ships tests/ and unittests.py; 8.0.29-8.0.33 and 8.1.0 do not)
# against HOST:PORT, a sqlproxy or a node, so the two runs can be compared.
# The pure-Python connector from the sdist's lib/ is used, not installed and
# without its C extension.
#
# The suite's unittests.py always bootstraps its own mysqld; this script
# drives the same test modules with a small runner instead, which points
# tests.MYSQL_SERVERS[0] at HOST:PORT (database myconnpy, created through
# HOST:PORT) and sets tests.MYSQL_VERSION from SELECT VERSION(), as
# unittests.py would from the server binary. What needs the server in the
# suite's own hands is reported as skipped, not run: stopping/restarting it
# (stop() raises SkipTest) and loading plugins (is_plugin_available() is
# False). Modules run: every tests/test_*.py and tests/issues/ except the X
# DevAPI (mysqlx_*), Django, C extension (cext) and pylint (style) ones;
# CPY_MODULES="tests.test_cursor tests.test_bugs" picks others.
#
# USER (default cpytest) should have ALL ON *.* WITH GRANT OPTION but not
# SHUTDOWN: test_bugs.BugOra17422299 sends COM_SHUTDOWN, which would stop a
# node. Through sqlproxy it must also be in [users]. Needs python3 (3.11 or
# older: the suite imports distutils and imp) and pip for the one download,
# kept in target/connector-python-suite/. Output: one line per test
# ("module.Class.test ... ok|FAIL|ERROR|skipped '...'", which a test's own
# printed traceback may split), the failures' tracebacks, then
# "RESULT ok|FAIL|ERROR|skipped <test id>" for each test, sorted (compare
# two runs with diff on those lines), and a SUMMARY line with the counts.
#
#   scripts/cluster.sh up; sqlproxy --config ...;  # then
#   scripts/connector-python-suite.sh 127.0.0.1 13306 > node.txt
#   scripts/connector-python-suite.sh 127.0.0.1 3307 > proxy.txt
set -euo pipefail

HOST=$1
PORT=$2
USER=${3:-cpytest}
PASSWORD=${4:-cpytest}
VERSION=8.0.23
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/target/connector-python-suite
SRC=$DIR/mysql-connector-python-$VERSION
PY=${PYTHON:-python3}

if [ ! -f "$SRC/unittests.py" ]; then
    mkdir -p "$DIR"
    "$PY" -m pip download "mysql-connector-python==$VERSION" --no-binary :all: \
        --no-deps -d "$DIR" >&2
    tar -xzf "$DIR/mysql-connector-python-$VERSION.tar.gz" -C "$DIR"
fi

cd "$SRC"
export CPY_MODULES=${CPY_MODULES:-}
exec "$PY" - "$HOST" "$PORT" "$USER" "$PASSWORD" <<'PYTHON'
import os
import sys
import unittest

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
src = os.getcwd()
sys.path[0:0] = [os.path.join(src, "lib"), src]

import mysql.connector  # noqa: E402  (the sdist's pure-Python connector)
import tests  # noqa: E402

assert not mysql.connector.HAVE_CEXT, "C extension found; want pure Python"

config = {"host": host, "port": port, "user": user, "password": password,
          "unix_socket": None, "connection_timeout": 60}
cnx = mysql.connector.connect(**config)
cur = cnx.cursor()
cur.execute("CREATE DATABASE IF NOT EXISTS myconnpy")
cur.execute("SELECT VERSION()")
version_text = cur.fetchone()[0]
cnx.close()
config["database"] = "myconnpy"


class ExternalServer:
    """tests.MYSQL_SERVERS[0] for a server this runner does not control."""

    name = "server1"
    _cnf = ""

    def __init__(self):
        self.client_config = dict(config)
        self.xplugin_config = {}
        self.version = tuple(int(p) for p in version_text.split("-")[0].split(".")[:3])
        self.license = "GPL"

    def stop(self):
        raise unittest.SkipTest("needs to stop the server (external server)")

    def start(self, **kwargs):
        return True

    def check_running(self):
        return True

    def wait_up(self, *args, **kwargs):
        return True

    def wait_down(self, *args, **kwargs):
        return False


server = ExternalServer()
tests.OPTIONS_INIT = True
tests.IPV6_AVAILABLE = False
tests.MYSQL_SERVERS.append(server)
tests.MYSQL_VERSION = server.version
tests.MYSQL_LICENSE = server.license
tests.MYSQL_VERSION_TXT = ".".join(str(v) for v in server.version)
tests.is_plugin_available = lambda *args, **kwargs: False

modules = os.environ.get("CPY_MODULES", "").split()
if not modules:
    skip = ("mysqlx", "django", "cext", "style")
    modules = [m for _, m, _ in tests.get_test_modules()
               if not any(s in m for s in skip)]
print("server %s:%d, %s; modules: %s" % (host, port, version_text, " ".join(modules)),
      flush=True)
suite = unittest.TestLoader().loadTestsFromNames(modules)


class Recorder(unittest.TextTestResult):
    """Also keeps one outcome per test id, printed at the end."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[test.id()] = "ok"

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = "FAIL"

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes[test.id()] = "ERROR"

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skipped"


result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, descriptions=False,
                                 resultclass=Recorder).run(suite)
for test_id, outcome in sorted(result.outcomes.items()):
    print("RESULT %s %s" % (outcome, test_id))
print("SUMMARY run=%d pass=%d fail=%d error=%d skip=%d" % (
    result.testsRun,
    result.testsRun - len(result.failures) - len(result.errors)
    - len(result.skipped) - len(result.expectedFailures)
    - len(result.unexpectedSuccesses),
    len(result.failures), len(result.errors), len(result.skipped)))
PYTHON
