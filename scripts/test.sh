#!/usr/bin/env bash
# scripts/test.sh — everything CI checks, in order, stopping at the first failure:
#   1. install what the tests need if it is missing (Debian packages):
#      mariadb-server, mariadb-client, sysbench, php-cli, php-mysql,
#      prometheus (promtool), systemd (systemd-analyze), adduser and binutils
#      (the package test installs the .deb and strips its binary), iproute2
#      and nftables (the fault suite cuts links between network namespaces); and
#      cargo-deb from crates.io
#   2. cargo fmt --all -- --check
#   3. cargo clippy --all-targets -- -D warnings
#   4. cargo test --all-targets
# Starts no database itself: each integration test binary starts its own
# two-node cluster on free loopback ports (tests/common). CI runs this as
# root in a clean clone, through .ci/run, with CI=true.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

began=$(date +%s)
run() {
    step "$*"
    local t0=$SECONDS
    "$@"
    info "ok ($((SECONDS - t0))s): $*"
}

step "test dependencies"
apt_install_missing \
    mariadbd:mariadb-server \
    mariadb:mariadb-client \
    mariadb-install-db:mariadb-server \
    sysbench:sysbench \
    php:php-cli \
    promtool:prometheus \
    systemd-analyze:systemd \
    adduser:adduser \
    strip:binutils \
    ip:iproute2 \
    nft:nftables
# php-mysql is a PHP extension, not a program: ask PHP.
if ! php -m 2>/dev/null | grep -qi '^pdo_mysql$'; then
    apt_install php-mysql
fi
info "mariadbd: $("$(find_program mariadbd)" --version)"
info "php: $(php -r 'echo PHP_VERSION;') with $(php -m | grep -i -c mysql) mysql extension(s)"
info "sysbench: $(sysbench --version)"
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
info "$(cargo --version), $(rustc --version)"
# tests/packaging.rs builds the Debian package with cargo-deb (pinned: its
# options and its unit/maintainer-script handling are what the test checks).
if ! cargo deb --version >/dev/null 2>&1; then
    step "installing cargo-deb (cargo install, crates.io)"
    cargo install cargo-deb --locked --version 3.8.0
fi
info "$(cargo deb --version), $(promtool --version 2>&1 | head -n 1)"

run cargo fmt --all -- --check
run cargo clippy --all-targets -- -D warnings
run cargo test --all-targets

step "all checks passed in $(($(date +%s) - began))s"
