#!/usr/bin/env bash
# benches/http.sh over HTTPS: HAProxy and sqlproxy's balancer each terminate
# TLS with the same throwaway certificate (wrk speaks HTTP/1.1 over TLS and
# keeps its connections, so this measures the record layer more than the
# handshakes). Same knobs: DUR, CONNS, THREADS, ROUNDS, WORKERS.
set -euo pipefail
cd "$(dirname "$0")/.."
TLS=1 exec benches/http.sh "$@"
