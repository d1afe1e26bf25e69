#!/usr/bin/env python3
"""Holds N logged-in, idle MySQL client connections open (benches/sysbench.sh
measures the proxy's RSS meanwhile).

    idle_clients.py HOST PORT USER PASSWORD N READY_FILE [HOLD_SECONDS]

Each connection only logs in and sends no statement (pymysql's own
`SET AUTOCOMMIT` is turned off): after a statement the proxy keeps a node
connection for the session, and N such sessions would run into the nodes'
max_connections. When all N are
open, writes N to READY_FILE, then holds them until killed or HOLD_SECONDS
(default 120) pass, so it never outlives the harness by much.
"""

import sys
import time

import pymysql


def main() -> int:
    host, port, user, password, n, ready = sys.argv[1:7]
    hold = float(sys.argv[7]) if len(sys.argv) > 7 else 120.0
    conns = []
    for i in range(int(n)):
        try:
            conns.append(
                # autocommit=None: pymysql sends no SET AUTOCOMMIT after login.
                pymysql.connect(host=host, port=int(port), user=user,
                                password=password, connect_timeout=10,
                                autocommit=None)
            )
        except pymysql.MySQLError as e:
            print(f"idle_clients: connection {i + 1} failed: {e}", file=sys.stderr)
            return 1
    with open(ready, "w") as f:
        f.write(f"{len(conns)}\n")
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        time.sleep(0.5)
    for c in conns:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
