#!/usr/bin/env python3
"""Holds N logged-in, idle MySQL client connections open (benches/sysbench.sh
and benches/multiplex.sh measure the proxy meanwhile).

    idle_clients.py HOST PORT USER PASSWORD N READY_FILE [HOLD_SECONDS [STATEMENT]]

Each connection logs in (pymysql's own `SET AUTOCOMMIT` is turned off) and,
given a STATEMENT, runs it once. When all N are open, writes N to
READY_FILE, then holds them until killed or HOLD_SECONDS (default 120) pass,
so it never outlives the harness by much. On SIGUSR1 every connection runs
STATEMENT again and READY_FILE.check gets "ok failed" counts; errors go to
stderr.
"""

import signal
import sys
import time

import pymysql

CHECK = False


def on_usr1(_sig, _frame):
    global CHECK
    CHECK = True


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()


def main() -> int:
    global CHECK
    host, port, user, password, n, ready = sys.argv[1:7]
    hold = float(sys.argv[7]) if len(sys.argv) > 7 else 120.0
    statement = sys.argv[8] if len(sys.argv) > 8 else None
    signal.signal(signal.SIGUSR1, on_usr1)
    conns = []
    for i in range(int(n)):
        try:
            conn = pymysql.connect(host=host, port=int(port), user=user,
                                   password=password, connect_timeout=30,
                                   # None: pymysql sends no SET AUTOCOMMIT.
                                   autocommit=None)
            if statement:
                run(conn, statement)
            conns.append(conn)
        except pymysql.MySQLError as e:
            print(f"idle_clients: connection {i + 1} failed: {e}", file=sys.stderr)
            return 1
    with open(ready, "w") as f:
        f.write(f"{len(conns)}\n")
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        if CHECK and statement:
            CHECK = False
            ok = failed = 0
            for i, conn in enumerate(conns):
                try:
                    run(conn, statement)
                    ok += 1
                except pymysql.MySQLError as e:
                    failed += 1
                    print(f"idle_clients: connection {i + 1}: {e}", file=sys.stderr)
            with open(ready + ".check", "w") as f:
                f.write(f"{ok} {failed}\n")
        time.sleep(0.2)
    for c in conns:
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
