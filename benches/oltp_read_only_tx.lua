#!/usr/bin/sysbench
-- sysbench's oltp_read_only, each transaction opened with
-- START TRANSACTION READ ONLY instead of BEGIN (benches/readonly_tx.sh):
-- a proxy may run such a transaction on a replica.
require("oltp_read_only")

function prepare_begin()
   stmt.begin = con:prepare("START TRANSACTION READ ONLY")
end
