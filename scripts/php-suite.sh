#!/usr/bin/env bash
# scripts/php-suite.sh HOST PORT [USER PASSWORD]
#
# Runs PHP's own mysqli and PDO_mysql regression tests (the .phpt files of
# ext/mysqli/tests and ext/pdo_mysql/tests, driven by the source's
# run-tests.php) against HOST:PORT, a sqlproxy or a node, so the two runs can
# be compared (docs/compatibility.md lists what differs and why).
#
# Needs php-cli with mysqli and pdo_mysql (Debian: php8.2-cli, php8.2-mysql),
# and for the first run apt-get with a deb-src line for Debian's archive plus
# dpkg-dev: the source of the installed php (that version if a mirror still
# serves it, else the newest one that downloads, said on stderr) is unpacked
# once into target/php-suite/. USER (default phptest) needs ALL on the database DB
# (default phptest, env PHP_SUITE_DB) and PROCESS; the database is dropped
# and created again through HOST:PORT before each of the two directories, so
# each starts empty. A proxy must list USER in its [users].
#
#   scripts/cluster.sh up; sqlproxy --config ...;  # then
#   scripts/php-suite.sh 127.0.0.1 3307 > proxy.txt
#   scripts/php-suite.sh 127.0.0.1 13306 > node.txt
#
# The tests run one at a time (they share table names). Per directory, the
# status of every test goes to target/php-suite/results-HOST-PORT/NAME.status
# and the .out/.diff of each failure next to it; stdout gets run-tests.php's
# own report, summary included.
set -euo pipefail

HOST=$1
PORT=$2
USER=${3:-phptest}
PASSWORD=${4:-phptest}
DB=${PHP_SUITE_DB:-phptest}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/target/php-suite
PHP=$(command -v php)
BRANCH=$("$PHP" -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')
RESULTS=$DIR/results-$HOST-$PORT

# The unpacked source, fetched on the first run.
SRC=
if [ -d "$DIR" ]; then
    SRC=$(find "$DIR" -maxdepth 1 -type d -name "php$BRANCH-*" | sort | tail -n 1)
fi
if [ -z "$SRC" ]; then
    mkdir -p "$DIR"
    installed=$(dpkg-query -W -f '${Version}' "php$BRANCH-cli")
    (
        cd "$DIR"
        # The installed version first, then what apt lists, newest first (a
        # mirror may list a version whose files it no longer serves).
        for v in "$installed" $(apt-cache showsrc "php$BRANCH" | awk '/^Version:/ { print $2 }' | sort -rV); do
            rm -f ./*.dsc ./*.tar.* ./*.asc
            if apt-get source --download-only "php$BRANCH=$v" >&2; then
                [ "$v" = "$installed" ] || echo "php-suite: php$BRANCH $installed source not available; using $v" >&2
                break
            fi
        done
        dsc=$(ls ./*.dsc) || { echo "php-suite: no php$BRANCH source could be downloaded (deb-src line?)" >&2; exit 1; }
        version=${dsc#./php"$BRANCH"_}
        version=${version%%-*}
        dpkg-source --no-check -x "$dsc" "php$BRANCH-$version" >&2
    )
    SRC=$(find "$DIR" -maxdepth 1 -type d -name "php$BRANCH-*" | sort | tail -n 1)
fi
echo "php-suite: tests of $(basename "$SRC"), run by $PHP ($("$PHP" -r 'echo PHP_VERSION;')) against $HOST:$PORT as $USER" >&2

export MYSQL_TEST_HOST=$HOST MYSQL_TEST_PORT=$PORT MYSQL_TEST_USER=$USER
export MYSQL_TEST_PASSWD=$PASSWORD MYSQL_TEST_DB=$DB MYSQL_TEST_ENGINE=InnoDB
export PDO_MYSQL_TEST_DSN="mysql:host=$HOST;port=$PORT;dbname=$DB"
export PDO_MYSQL_TEST_USER=$USER PDO_MYSQL_TEST_PASS=$PASSWORD
export PDO_MYSQL_TEST_HOST=$HOST PDO_MYSQL_TEST_PORT=$PORT PDO_MYSQL_TEST_DB=$DB
export PDO_MYSQL_TEST_ENGINE=InnoDB NO_INTERACTION=1

# Drops and creates the test database through HOST:PORT.
fresh_db() {
    "$PHP" -r '
        [, $h, $p, $u, $pw, $db] = $argv;
        mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
        $c = new mysqli($h, $u, $pw, "", (int)$p);
        $c->query("DROP DATABASE IF EXISTS `$db`");
        $c->query("CREATE DATABASE `$db`");
    ' "$HOST" "$PORT" "$USER" "$PASSWORD" "$DB"
}

mkdir -p "$RESULTS"
cd "$SRC"
for ext in mysqli pdo_mysql; do
    fresh_db
    rm -f "$RESULTS/$ext".* "$RESULTS/$ext"-*
    # run-tests.php exits non-zero when a test fails; the report says which.
    "$PHP" run-tests.php -q --no-color -p "$PHP" -W "$RESULTS/$ext.status" \
        "ext/$ext/tests" 2>&1 || true
    # Keep what a failure left behind; the next run writes in the same place.
    find "ext/$ext/tests" \( -name '*.diff' -o -name '*.out' \) -print0 |
        while IFS= read -r -d '' f; do
            mv "$f" "$RESULTS/$ext-$(basename "$f")"
        done
done
