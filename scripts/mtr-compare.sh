#!/usr/bin/env bash
# scripts/mtr-compare.sh HOST:DIRECT_PORT HOST:PROXY_PORT [TEST...]
#
# Runs a subset of MariaDB's own regression suite (Debian's mariadb-test,
# `main`) with `mariadb-test-run --extern` twice: straight against a node and
# through sqlproxy, and prints, per test, both outcomes and how many lines of
# the test's output log differ. The proxy is judged by that difference: nodes
# not started with mtr's own settings fail many tests directly too, but the
# output up to the failure must be the same through the proxy. Run it on a
# fresh `test` database (leftovers of the first run change the second).
# Needs: apt-get install mariadb-test.
# User/password: MTR_USER / MTR_PASSWORD (default prestashop/prestashop); the
# user needs a `test` database and ALL on it.
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
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(main.select main.insert main.update main.delete main.join main.union main.subselect
        main.group_by main.order_by main.having main.distinct main.func_str main.func_math
        main.func_time main.func_group main.type_decimal main.type_datetime main.type_blob
        main.type_enum main.ps main.ps_1general main.sp main.trigger main.view main.variables
        main.user_var main.temp_table main.commit main.flush main.create main.alter_table
        main.null main.count_distinct main.case main.truncate main.limit
        main.auto_increment main.multi_update main.bulk_replace main.lock main.xa
        main.information_schema main.show_check main.charset main.ctype_utf8mb4 main.mysql_client_test)
fi
run() { # run LABEL PORT HOST
    local out=/tmp/mtr-$1
    rm -rf "$out"
    (cd "$MTR_DIR" && perl mariadb-test-run.pl --vardir="$out" --extern host="$3" --extern port="$2" \
        --extern user="$user" --extern password="$password" --force --max-test-fail=0 \
        --testcase-timeout=5 --parallel=1 "${tests[@]}" >"$out.log" 2>&1) || true
    grep -E '^\S+\s+\[ (pass|fail|skipped|disabled) \]' "$out.log" | awk '{print $1, $3}' | sort >"$out.results"
}
run direct "${direct#*:}" "${direct%%:*}"
run proxy "${proxy#*:}" "${proxy%%:*}"
echo "test outcome: direct vs through sqlproxy"
join /tmp/mtr-direct.results /tmp/mtr-proxy.results | while read -r t d p; do
    name=${t#main.}
    lines="-"
    if [ -f "/tmp/mtr-direct/log/$name.log" ] && [ -f "/tmp/mtr-proxy/log/$name.log" ]; then
        lines=$(diff "/tmp/mtr-direct/log/$name.log" "/tmp/mtr-proxy/log/$name.log" | grep -c '^[<>]' || true)
    fi
    printf '%-32s %-8s %-8s output lines differing: %s%s\n' "$t" "$d" "$p" "$lines" "$([ "$d" = "$p" ] || echo '  << outcome differs')"
done
echo
echo "passed directly: $(grep -c ' pass' /tmp/mtr-direct.results || true), through sqlproxy: $(grep -c ' pass' /tmp/mtr-proxy.results || true) of ${#tests[@]}"
echo "logs: /tmp/mtr-direct.log /tmp/mtr-proxy.log, per test under /tmp/mtr-*/log/"
