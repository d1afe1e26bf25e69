-- Accounts of one cluster node. Run as root over the node's unix socket on
-- EACH node, BEFORE replication starts, by scripts/cluster.sh and by the test
-- fixture (tests/common/mod.rs). Nothing here is binlogged: each node creates
-- its own accounts, so replicating them would only collide.
-- Safe to run twice (IF NOT EXISTS + GRANT).
SET SESSION sql_log_bin = 0;

-- root logs in through the unix socket only (no password at all).
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket;

-- The peer's replication thread.
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';

-- sqlproxy's health checks and failover: SHOW SLAVE STATUS, @@gtid_*,
-- MASTER_GTID_WAIT, STOP/START SLAVE, and SET GLOBAL read_only (in 10.11
-- SUPER no longer includes READ_ONLY ADMIN, so it is granted by name).
CREATE USER IF NOT EXISTS 'sqlproxy_monitor'@'%' IDENTIFIED BY 'monitor';
GRANT PROCESS, REPLICATION CLIENT, SUPER, REPLICATION SLAVE ADMIN, SLAVE MONITOR,
      READ_ONLY ADMIN ON *.* TO 'sqlproxy_monitor'@'%';

-- The shop's application user, as PrestaShop installs it. NB: ALL includes
-- READ_ONLY ADMIN, so read_only=1 does not stop this user's writes.
CREATE USER IF NOT EXISTS 'prestashop'@'%' IDENTIFIED BY 'prestashop';
GRANT ALL PRIVILEGES ON *.* TO 'prestashop'@'%';
