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
-- The rewind of a returning master's unacknowledged tail
-- (failover.rewind_unacknowledged) also reads its binlog (REPLICATION SLAVE),
-- undoes row changes on a fenced node (SELECT, INSERT, UPDATE, DELETE; READ_ONLY
-- ADMIN lets them through read_only) and resets its binlog (RELOAD for RESET
-- MASTER). Without those the node is only reported diverged.
CREATE USER IF NOT EXISTS 'sqlproxy_monitor'@'%' IDENTIFIED BY 'monitor';
GRANT PROCESS, REPLICATION CLIENT, SUPER, REPLICATION SLAVE ADMIN, SLAVE MONITOR,
      READ_ONLY ADMIN, REPLICATION SLAVE, RELOAD, SELECT, INSERT, UPDATE, DELETE
      ON *.* TO 'sqlproxy_monitor'@'%';

-- The shop's application user, as PrestaShop installs it, minus what would
-- let it write on a fenced node: READ_ONLY ADMIN (and SUPER, which implied
-- it before 10.11). With those, read_only=ON stops nothing.
CREATE USER IF NOT EXISTS 'prestashop'@'%' IDENTIFIED BY 'prestashop';
GRANT ALL PRIVILEGES ON *.* TO 'prestashop'@'%';
REVOKE READ_ONLY ADMIN, SUPER ON *.* FROM 'prestashop'@'%';

-- Self-fencing: a node on which no client connection over the network has
-- run anything for 4 seconds sets read_only=ON by itself (the event runs
-- every second). Every sqlproxy checks its nodes every `monitor.interval`
-- (2 s), so only a node cut off from every proxy (a network partition, dead
-- proxy hosts) goes quiet like that: it stops taking writes before any proxy
-- promotes another node. sqlproxy waits failover.fence_lease (6 s) after the
-- last good check of a master it can no longer reach, and only then unfences
-- the new one; when a proxy is back it unfences the node it names master.
-- Replication connections and local (unix socket) sessions do not count.
-- Needs event_scheduler=ON (scripts/cluster.cnf).
CREATE DATABASE IF NOT EXISTS sqlproxy;
DELIMITER //
CREATE OR REPLACE EVENT sqlproxy.self_fence ON SCHEDULE EVERY 1 SECOND
  COMMENT 'sqlproxy: fence this node when no client over the network was active for 4 s'
  DO IF @@GLOBAL.read_only = 0 AND NOT EXISTS (
       SELECT 1 FROM information_schema.PROCESSLIST
       WHERE ID <> CONNECTION_ID() AND HOST NOT IN ('localhost', '')
         AND USER NOT IN ('system user', 'event_scheduler')
         AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Killed')
         AND TIME < 4)
     THEN SET GLOBAL read_only = ON; END IF //
DELIMITER ;
