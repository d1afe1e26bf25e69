"""PyMySQL sends one command larger than the server's max_allowed_packet
(the server must have a small one). Prints `key=value` facts for
tests/fidelity.rs: the ERR packet as it came off the wire, the error PyMySQL
raises, and whether the connection still works.

usage: packet.py HOST PORT USER PASSWORD BYTES
"""
import socket
import sys

import pymysql

host, port, user, password, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
sql = "SELECT '" + "x" * size + "'"


def connect():
    # The client's own limit must not stop the command first.
    return pymysql.connect(host=host, port=port, user=user, password=password,
                           max_allowed_packet=64 * 1024 * 1024)


def out(key, value):
    print("%s=%s" % (key, value), flush=True)


# The bytes the server answers with, read off the socket.
# A server that refuses the packet closes with the rest of it unread; its
# reset can reach the client while the client still writes, and the kernel
# then drops the ERR as well: reported as such.
raw = connect()
data, end = b"", "timeout"
try:
    raw._execute_command(3, sql)
    sock = raw._sock
    sock.settimeout(30)
except pymysql.err.OperationalError:
    sock, end = None, "reset_on_write"
try:
    while sock is not None:
        chunk = sock.recv(65536)
        if not chunk:
            end = "closed"
            break
        data += chunk
except ConnectionResetError:
    end = "closed"
except socket.timeout:
    pass
out("wire", data.hex())
out("wire_end", end)

# What an application sees.
conn = connect()
try:
    conn.cursor().execute(sql)
    out("error", "none")
except pymysql.err.MySQLError as e:
    out("error", "%s:%s" % (e.args[0], e.args[1]))
try:
    conn.cursor().execute("SELECT 1")
    out("then", "works")
except pymysql.err.MySQLError as e:
    out("then", "gone %s" % e.args[0])
