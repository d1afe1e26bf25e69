-- Makes a node replicate from its peer. Run as root on EACH node after
-- scripts/cluster-init.sql, with @PEER_HOST@ and @PEER_PORT@ replaced by the
-- other node's address (scripts/cluster.sh and tests/common/mod.rs do the
-- replacing).
-- slave_pos: start from what this node has applied from the peer.
-- MASTER_CONNECT_RETRY=1: after the peer restarts, reconnect within a second
-- instead of MariaDB's default minute.
CHANGE MASTER TO
    MASTER_HOST = '@PEER_HOST@',
    MASTER_PORT = @PEER_PORT@,
    MASTER_USER = 'repl',
    MASTER_PASSWORD = 'repl',
    MASTER_USE_GTID = slave_pos,
    MASTER_CONNECT_RETRY = 1;
START SLAVE;
