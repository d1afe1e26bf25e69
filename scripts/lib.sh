# Shared by scripts/cluster.sh and scripts/test.sh (sourced, not run).
# Logging and installing Debian packages when a program is missing.

# A step header on stderr, so it shows between the tools' own output.
step() {
    printf '\n==> %s\n' "$*" >&2
}

info() {
    printf '%s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root (CI), else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Finds a program in PATH or in the sbin directories a non-login PATH lacks
# (mariadbd lives in /usr/sbin). Prints its path; fails if it is nowhere.
find_program() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in /usr/sbin /usr/local/sbin /sbin; do
        if [ -x "$dir/$name" ]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

# apt_install_missing PROGRAM:PACKAGE...: installs each PACKAGE whose PROGRAM
# is not found, in one apt_install run.
apt_install_missing() {
    local pair missing=()
    for pair in "$@"; do
        if ! find_program "${pair%%:*}" >/dev/null; then
            missing+=("${pair#*:}")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# install_build_deps: what building sqlproxy needs beyond Rust. The
# etcd-client crate compiles etcd's protocol with protoc, which needs the
# well-known types (google/protobuf/*.proto) from libprotobuf-dev, only a
# recommendation of protobuf-compiler and so left out by --no-install-recommends.
install_build_deps() {
    local missing=()
    find_program protoc >/dev/null || missing+=(protobuf-compiler)
    [ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# apt_install PACKAGE...: apt-get update + install, non-interactive, without
# letting the packages start services (mariadb-server would take port 3306):
# a policy-rc.d that says "no" is in place while we install, unless one exists.
apt_install() {
    step "installing $* (apt-get)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    local policy=/usr/sbin/policy-rc.d added=0 status=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        added=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || status=$?
    if [ "$status" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "$@" || status=$?
    fi
    if [ "$added" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$status" -eq 0 ] || die "apt-get failed (exit $status) installing $*"
}
