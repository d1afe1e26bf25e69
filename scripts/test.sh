#!/usr/bin/env bash
# scripts/test.sh — everything CI checks, in order, stopping at the first failure:
#   1. install what the tests need if it is missing (Debian packages):
#      mariadb-server, mariadb-client, sysbench, php-cli, php-mysql,
#      prometheus (promtool), systemd (systemd-analyze), adduser and binutils
#      (the package test installs the .deb and strips its binary), iproute2
#      and nftables (the fault suite cuts links between network namespaces),
#      etcd-server and etcd-client (tests/coordination.rs runs a real etcd),
#      protobuf-compiler and libprotobuf-dev (the etcd-client crate's build
#      compiles etcd's protocol), curl and openssl (HTTP and TLS tests), python3-pymysql
#      (PyMySQL against a node and the proxy); and cargo-deb from crates.io
#   2. cargo fmt --all -- --check
#   3. cargo clippy --all-targets -- -D warnings
#   4. cargo test --all-targets
#   5. a short run of every fuzz target from its committed seeds
#      (FUZZ_SECONDS each, 4 by default; FUZZ_SECONDS=0 skips the step);
#      their build runs at the lowest CPU priority beside step 4, whose
#      integration tests mostly wait on the nodes
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
    nft:nftables \
    g++:g++ \
    etcd:etcd-server \
    etcdctl:etcd-client \
    curl:curl \
    openssl:openssl
install_build_deps
# php-mysql is a PHP extension, not a program: ask PHP.
if ! php -m 2>/dev/null | grep -qi '^pdo_mysql$'; then
    apt_install php-mysql
fi
# PyMySQL for Debian's own python3 (the tests run /usr/bin/python3).
if ! /usr/bin/python3 -c 'import pymysql' 2>/dev/null; then
    apt_install python3-pymysql
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

# The fuzz targets' build (a second copy of every dependency, with
# AddressSanitizer) takes minutes of CPU that the integration tests leave
# idle while they wait on the nodes: it runs beside them at nice 19, so the
# tests keep the CPU they ask for. The development profile compiles several
# times faster than the release one and is enough for a few seconds per
# target; the long runs in docs/FUZZING.md use the release build.
FUZZ_SECONDS=${FUZZ_SECONDS:-4}
fuzz_build_pid=
fuzz_build_log=$(mktemp)
stop_fuzz_build() {
    [ -n "$fuzz_build_pid" ] && kill -- "-$fuzz_build_pid" 2>/dev/null || true
    rm -f "$fuzz_build_log"
}
trap stop_fuzz_build EXIT
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    step "fuzz targets' build, in the background at nice 19 (log: $fuzz_build_log)"
    # setsid: its own process group, so a failing step 4 can stop all of it.
    setsid nice -n 19 bash -c '
        set -e
        command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
        RUSTC_BOOTSTRAP=1 cargo fuzz build --dev
    ' >"$fuzz_build_log" 2>&1 &
    fuzz_build_pid=$!
fi

run cargo test --all-targets

# The fuzz targets (fuzz/, docs/FUZZING.md). cargo-fuzz wants nightly flags;
# RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain, and libfuzzer-sys
# builds libFuzzer with g++. Here each target runs its development build
# (overflow checks and AddressSanitizer, built above) from a scratch copy of
# its seeds, so the clone stays clean. A crash fails the suite and leaves
# its input in fuzz/artifacts/<target>/.
if [ "$FUZZ_SECONDS" -gt 0 ]; then
    step "fuzz targets, ${FUZZ_SECONDS}s each"
    fuzz_began=$SECONDS
    if ! wait "$fuzz_build_pid"; then
        fuzz_build_pid=
        tail -n 40 "$fuzz_build_log" >&2
        die "the fuzz targets' build failed (its log above)"
    fi
    fuzz_build_pid=
    info "fuzz build done; waited $((SECONDS - fuzz_began))s for it after the tests"
    corpus=$(mktemp -d)
    trap 'stop_fuzz_build; rm -rf "$corpus"' EXIT
    for target in $(cargo fuzz list); do
        [ -d "fuzz/seeds/$target" ] || die "fuzz target $target has no fuzz/seeds/$target"
        cp -r "fuzz/seeds/$target" "$corpus/$target"
        run env RUSTC_BOOTSTRAP=1 cargo fuzz run --dev "$target" "$corpus/$target" -- \
            -max_total_time="$FUZZ_SECONDS"
    done
    info "fuzz targets: $((SECONDS - fuzz_began))s in all"
fi

step "all checks passed in $(($(date +%s) - began))s"
