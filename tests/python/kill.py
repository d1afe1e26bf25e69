"""PyMySQL against a server (the proxy or a node): connection ids and KILL,
as PyMySQL's own test_issue_36 checks them. Prints one `key=value` per fact
for tests/fidelity.rs to compare.

usage: kill.py HOST PORT USER PASSWORD [OTHER_USER OTHER_PASSWORD]
"""
import sys
import threading

import pymysql

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
other = sys.argv[5:7]


def connect(u=user, p=password):
    return pymysql.connect(host=host, port=port, user=u, password=p)


def scalar(conn, sql):
    with conn.cursor() as c:
        c.execute(sql)
        return c.fetchone()[0]


def error_of(fn):
    try:
        fn()
        return "none"
    except pymysql.err.MySQLError as e:
        return "%s:%s" % (e.args[0], e.args[1] if len(e.args) > 1 else "")


def out(key, value):
    print("%s=%s" % (key, value), flush=True)


conn1, conn2 = connect(), connect()
tid = conn1.thread_id()
out("handshake_is_connection_id", tid == scalar(conn1, "SELECT CONNECTION_ID()"))
out("ids_differ", tid != conn2.thread_id())

# KILL QUERY while conn1 runs a long statement: sent until it lands (a KILL
# QUERY of an idle connection does nothing), so no timing is assumed.
victim = {}


def sleeper():
    # A KILL QUERY that lands while SLEEP waits makes it return 1 without an
    # error; one that lands a moment earlier or later gives 1317. Both mean
    # the statement was interrupted, on a node as through the proxy.
    result = {}

    def run():
        result["value"] = scalar(conn1, "SELECT SLEEP(60)")

    error = error_of(run)
    if error == "none" and result.get("value") == 1:
        error = "interrupted"
    elif error.startswith("1317:"):
        error = "interrupted"
    victim["error"] = error


t = threading.Thread(target=sleeper)
t.start()
kills = 0
while t.is_alive():
    conn2.cursor().execute("KILL QUERY %d" % tid)
    kills += 1
    t.join(0.1)
out("kill_query_victim", victim["error"])
out("after_kill_query", scalar(conn1, "SELECT 7"))

out("unknown_id", error_of(lambda: conn2.cursor().execute("KILL 4000000000")))
out("unknown_query_id", error_of(lambda: conn2.cursor().execute("KILL QUERY 3999999999")))

if other:
    intruder = connect(*other)
    out("other_user_kill", error_of(lambda: intruder.cursor().execute("KILL %d" % tid)))
    out("other_user_alive", scalar(conn1, "SELECT 8"))

# test_issue_36: SHOW PROCESSLIST shows the session under the handshake id...
with conn1.cursor() as c:
    c.execute("show processlist")
    own = [row[0] for row in c.fetchall() if row[7] == "show processlist"]
out("processlist_shows_handshake_id", own == [tid])
with conn1.cursor() as c:
    c.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT ID FROM%'")
    out("information_schema_shows_handshake_id", [r[0] for r in c.fetchall()] == [tid])

# ...and conn2.kill(id) (COM_PROCESS_KILL) breaks conn1.
conn2.kill(tid)
out("after_kill", error_of(lambda: conn1.cursor().execute("SHOW TABLES")))

# KILL CONNECTION of a running statement.
conn3 = connect()
tid3 = conn3.thread_id()
got = {}


def sleeper3():
    got["error"] = error_of(lambda: scalar(conn3, "SELECT SLEEP(60)"))


t = threading.Thread(target=sleeper3)
t.start()
conn2.cursor().execute("KILL CONNECTION %d" % tid3)
t.join(90)
out("kill_connection_victim", got.get("error", "still running"))

# One's own id.
out("self_kill_query", error_of(lambda: conn2.cursor().execute("KILL QUERY %d" % conn2.thread_id())))
out("self_kill", error_of(lambda: conn2.cursor().execute("KILL %d" % conn2.thread_id())))
