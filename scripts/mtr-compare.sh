#!/usr/bin/env bash
# scripts/mtr-compare.sh HOST:DIRECT_PORT HOST:PROXY_PORT [TEST...]
#
# Runs a subset of MariaDB's own regression suite (Debian's mariadb-test,
# `main`) with `mariadb-test-run --extern` twice: straight against a node and
# through sqlproxy, and prints, per test, both outcomes, how many lines of the
# test's output log differ, and whether the failure message (mysqltest's
# "At line N: ..." line) differs. The proxy is judged by that difference:
# nodes not started with mtr's own settings fail many tests directly too, but
# the output up to the failure, and the failure, must be the same through the
# proxy. Every connection a test opens goes over TCP to the port under test
# (`--extern protocol=tcp`), never to a local socket that would bypass the
# proxy.
# Needs: apt-get install mariadb-test.
#
#   MTR_USER / MTR_PASSWORD   login (default prestashop/prestashop); the user
#                             needs ALL on `test` (tests that need more fail
#                             the same way both times)
#   MTR_PS=1                  run mysqltest with --ps-protocol (binary protocol)
#   MTR_CURSOR=1              run mysqltest with --cursor-protocol (binary
#                             protocol, SELECTs through a read-only cursor)
#   MTR_LIST=FILE             tests from FILE (one a line, `main.x` or `x`,
#                             `#` comments), instead of the arguments
#   MTR_GREP=REGEX            tests of `main` whose .test matches REGEX
#                             (grep -iE), instead of the arguments
#   MTR_OUT=DIR               where results go (default /tmp): mtr's output in
#                             DIR/mtr-MODE-direct.log and DIR/mtr-MODE-proxy.log,
#                             outcomes in .results, failure lines in .failures,
#                             each test's own output (NAME.log, NAME.reject,
#                             main.NAME/) under DIR/mtr-MODE-{direct,proxy}/log/,
#                             and the table printed here in DIR/mtr-MODE.summary;
#                             MODE is text, ps or cursor
#   MTR_RESET=1               scratch clusters only: run the tests one at a
#                             time, direct then proxy, and before each run,
#                             through DIRECT, drop the databases and accounts
#                             that did not exist at the first reset (recorded
#                             in DIR/mtr-start.*; delete those to record anew),
#                             recreate `test` empty and the `mtr` schema with
#                             mtr.add_suppression(), and set back global
#                             variables the tests changed, so every test starts
#                             from the same state (mtr's --extern cleans
#                             nothing up; one failed test otherwise breaks the
#                             ones after it). The user then needs ALL ON *.*.
#                             Without it, both runs are one mtr invocation
#                             each: run on a fresh `test` database (leftovers
#                             of the first run change the second).
#   MTR_RESET_CMD=COMMAND     with MTR_RESET=1, run by sh when DROP DATABASE
#                             test fails because tests left files the server
#                             does not know in its directory (SELECT ... INTO
#                             OUTFILE), e.g. `rm -f DATADIR/test/*`; then the
#                             drop is tried again
#   MTR_PROXY_RESET_CMD=COMMAND  with MTR_RESET=1, run by sh after the reset
#                             before each proxy run, e.g. a restart of sqlproxy:
#                             its idle node connections keep the session
#                             defaults of the globals at their last reset, so
#                             without it a test's SET GLOBAL reaches later tests
#                             (docs/compatibility.md)
#   MTR_TIMEOUT=MINUTES       per-test timeout (default 5)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

[ $# -ge 2 ] || die "usage: $0 HOST:DIRECT_PORT HOST:PROXY_PORT [TEST...]"
direct=$1 proxy=$2
shift 2
MTR_DIR=/usr/share/mysql/mysql-test
[ -x "$MTR_DIR/mariadb-test-run.pl" ] || apt_install mariadb-test
user=${MTR_USER:-prestashop} password=${MTR_PASSWORD:-prestashop}
out_base=${MTR_OUT:-/tmp}
mode=text protocol_args=()
if [ "${MTR_CURSOR:-0}" = 1 ]; then
    mode=cursor protocol_args=(--cursor-protocol)
elif [ "${MTR_PS:-0}" = 1 ]; then
    mode=ps protocol_args=(--ps-protocol)
fi

tests=("$@")
if [ -n "${MTR_LIST:-}" ]; then
    [ -r "$MTR_LIST" ] || die "MTR_LIST: cannot read $MTR_LIST"
    mapfile -t tests < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$MTR_LIST" | grep -v '^$' |
        sed -e '/\./!s/^/main./')
elif [ -n "${MTR_GREP:-}" ]; then
    mapfile -t tests < <(cd "$MTR_DIR/main" && grep -liE -- "$MTR_GREP" -- *.test |
        sed -e 's/\.test$//' -e 's/^/main./')
fi
if [ ${#tests[@]} -eq 0 ] && [ -z "${MTR_LIST:-}${MTR_GREP:-}" ]; then
    tests=(main.select main.insert main.update main.delete main.join main.union main.subselect
        main.group_by main.order_by main.having main.distinct main.func_str main.func_math
        main.func_time main.func_group main.type_decimal main.type_datetime main.type_blob
        main.type_enum main.ps main.ps_1general main.sp main.trigger main.view main.variables
        main.user_var main.temp_table main.commit main.flush main.create main.alter_table
        main.null main.count_distinct main.case main.truncate main.limit
        main.auto_increment main.multi_update main.bulk_replace main.lock main.xa
        main.information_schema main.show_check main.charset main.ctype_utf8mb4 main.mysql_client_test)
fi
[ ${#tests[@]} -gt 0 ] || die "no tests selected"

# SQL on the node behind DIRECT, as the mtr user; batch output, no headers.
node_sql() {
    mariadb --no-defaults --protocol=tcp -h"${direct%%:*}" -P"${direct#*:}" -u"$user" -p"$password" \
        --batch --skip-column-names "$@"
}

# Global variables that change by themselves or that the cluster's operators
# (replication, sqlproxy's fencing) own: never set back.
NOT_RESTORED='^(gtid_|read_only$|rpl_semi_sync_|timestamp$|last_|wsrep_)'
# What mtr's own servers provide and many tests call: mtr.add_suppression().
MTR_SCHEMA="CREATE DATABASE mtr;
    CREATE TABLE mtr.test_suppressions (pattern VARCHAR(255)) ENGINE=MyISAM;
    CREATE PROCEDURE mtr.add_suppression(pattern VARCHAR(255))
        INSERT INTO mtr.test_suppressions VALUES (pattern);"
# Every account and role, as what follows DROP.
ACCOUNTS="SELECT IF(is_role = 'Y', CONCAT('ROLE ', QUOTE(user)),
    CONCAT('USER ', QUOTE(user), '@', QUOTE(host))) FROM mysql.user"

if [ "${MTR_RESET:-0}" = 1 ]; then
    command -v mariadb >/dev/null 2>&1 || die "MTR_RESET needs the mariadb client"
    mkdir -p "$out_base"
    if [ ! -f "$out_base/mtr-start.globals" ]; then
        node_sql -e "SHOW DATABASES" >"$out_base/mtr-start.databases"
        node_sql -e "$ACCOUNTS" >"$out_base/mtr-start.accounts"
        node_sql -e "SHOW GLOBAL VARIABLES" >"$out_base/mtr-start.globals"
    fi
fi

# Puts the node back to the state recorded at the start (MTR_RESET=1).
reset_node() {
    local db account name value current
    while read -r db; do
        grep -qxF -- "$db" "$out_base/mtr-start.databases" ||
            node_sql -e "DROP DATABASE \`$db\`" || info "reset: could not drop database $db"
    done < <(node_sql -e "SHOW DATABASES")
    if ! node_sql -e "DROP DATABASE IF EXISTS test" 2>/dev/null; then
        [ -n "${MTR_RESET_CMD:-}" ] || die "reset: cannot drop \`test\` (files left in it? see MTR_RESET_CMD)"
        sh -c "$MTR_RESET_CMD" || die "reset: MTR_RESET_CMD failed"
        node_sql -e "DROP DATABASE IF EXISTS test"
    fi
    node_sql -e "CREATE DATABASE test; DROP DATABASE IF EXISTS mtr; $MTR_SCHEMA"
    while read -r account; do
        grep -qxF -- "$account" "$out_base/mtr-start.accounts" ||
            node_sql -e "DROP $account" || info "reset: could not drop $account"
    done < <(node_sql -e "$ACCOUNTS")
    local -A start=()
    while IFS=$'\t' read -r name value; do
        start[$name]=$value
    done <"$out_base/mtr-start.globals"
    while IFS=$'\t' read -r name value; do
        [[ $name =~ $NOT_RESTORED ]] && continue
        [ -n "${start[$name]+set}" ] || continue
        current=${start[$name]}
        [ "$current" = "$value" ] && continue
        # What the variable was at the start, as a number or a quoted string.
        if [[ ! $current =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
            current="'${current//\'/\'\'}'"
        fi
        node_sql -e "SET GLOBAL $name = $current" 2>/dev/null ||
            info "reset: could not set global $name back to $current"
    done < <(node_sql -e "SHOW GLOBAL VARIABLES")
}

# One mariadb-test-run over TEST...; its output is appended to DIR/mtr-MODE-LABEL.log
# and each test's own files (NAME.log, NAME.reject, main.NAME/) are kept in its log/.
run_batch() { # run_batch LABEL HOST:PORT TEST...
    local out=$out_base/mtr-$mode-$1 host=${2%%:*} port=${2#*:} t
    shift 2
    rm -rf "$out/var"
    (cd "$MTR_DIR" && perl mariadb-test-run.pl --vardir="$out/var" --extern host="$host" --extern port="$port" \
        --extern user="$user" --extern password="$password" --extern protocol=tcp \
        "${protocol_args[@]}" --force --max-test-fail=0 --testcase-timeout="${MTR_TIMEOUT:-5}" \
        --parallel=1 "$@" >>"$out.log" 2>&1) || true
    mkdir -p "$out/log"
    for t in "$@"; do
        cp -r "$out/var/log/${t#main.}".* "$out/var/log/$t" "$out/log/" 2>/dev/null || true
    done
    rm -rf "$out/var"
}

for label in direct proxy; do
    rm -rf "$out_base/mtr-$mode-$label"
    : >"$out_base/mtr-$mode-$label.log"
done
if [ "${MTR_RESET:-0}" = 1 ]; then
    # One test at a time, each run on a reset node, so that a test failing
    # half-way cannot change the tests after it (mtr's --extern does no
    # cleanup between tests).
    i=0
    for t in "${tests[@]}"; do
        i=$((i + 1))
        info "[$i/${#tests[@]}] $t"
        reset_node
        run_batch direct "$direct" "$t"
        reset_node
        if [ -n "${MTR_PROXY_RESET_CMD:-}" ]; then
            sh -c "$MTR_PROXY_RESET_CMD" || die "MTR_PROXY_RESET_CMD failed"
        fi
        run_batch proxy "$proxy" "$t"
    done
else
    run_batch direct "$direct" "${tests[@]}"
    run_batch proxy "$proxy" "${tests[@]}"
fi
for label in direct proxy; do
    out=$out_base/mtr-$mode-$label
    grep -aE '^\S+\s+\[ (pass|fail|skipped|disabled) \]' "$out.log" | awk '{print $1, $3}' | sort >"$out.results"
    # Per failed test, the first line saying why (mysqltest's error, or mtr's timeout).
    awk '/^\S+\s+\[ fail \].*timeout after/ { print $1 "\ttimeout"; t = ""; next }
         /^\S+\s+\[ fail \]/ { t = $1; next }
         /^\S+\s+\[ |^Logging: / { t = ""; next }
         t != "" && /^mysqltest: / { print t "\t" $0; t = "" }' "$out.log" |
        sed "s#$out/var#VARDIR#g" | sort >"$out.failures"
done

d=$out_base/mtr-$mode-direct p=$out_base/mtr-$mode-proxy
{
    echo "test outcome ($mode protocol): direct vs through sqlproxy"
    join "$d.results" "$p.results" | while read -r t do po; do
        name=${t#main.}
        lines="-"
        if [ -f "$d/log/$name.log" ] && [ -f "$p/log/$name.log" ]; then
            lines=$(diff "$d/log/$name.log" "$p/log/$name.log" | grep -c '^[<>]' || true)
        fi
        why=""
        if [ "$(awk -F'\t' -v t="$t" '$1 == t' "$d.failures")" != \
            "$(awk -F'\t' -v t="$t" '$1 == t' "$p.failures")" ]; then
            why="  failure differs"
        fi
        printf '%-36s %-8s %-8s output lines differing: %s%s%s\n' "$t" "$do" "$po" "$lines" \
            "$([ "$do" = "$po" ] || echo '  << outcome differs')" "$why"
    done
    echo
    echo "passed directly: $(grep -c ' pass' "$d.results" || true)," \
        "through sqlproxy: $(grep -c ' pass' "$p.results" || true) of ${#tests[@]}"
    echo "logs: $d.log $p.log, per test under $d/log/ and $p/log/"
} | tee "$out_base/mtr-$mode.summary"
