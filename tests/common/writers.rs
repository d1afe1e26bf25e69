//! Who is writable, read straight from the nodes over their unix sockets,
//! for the tests that assert one writer whatever fails.
//!
//! Two nodes cannot be read at the same instant. A switchover fences the old
//! master and unfences the new one a few milliseconds later; two reads taken
//! one after the other can straddle that gap and see both writable although
//! they never were at once. So "both writable" counts only when proven: node
//! A writable, then node B writable, then A still writable. A was writable
//! on both sides of the moment B was, which an orderly handover cannot
//! produce (it never makes the fenced node writable again).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::{Cluster, MONITOR_PASSWORD, MONITOR_USER};

/// What one read of a node gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeReading {
    pub writable: bool,
    /// `Rpl_semi_sync_master_no_tx`: grows when the node commits without a
    /// replica's acknowledgement; restarts with the node.
    pub unacked_commits: Option<u64>,
}

/// One sample of both nodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub readings: [Option<NodeReading>; 2],
    /// Both writable at one moment, proven as the module explains.
    pub two_writers: bool,
}

impl Sample {
    /// Both nodes answered.
    pub fn complete(&self) -> bool {
        self.readings.iter().all(Option::is_some)
    }
}

/// Keeps one monitor connection per node (reconnected when lost), so a
/// sample takes a few milliseconds, not a client process start per read.
pub struct WriterProbe {
    sockets: [String; 2],
    conns: [Option<Conn>; 2],
    /// Which node is read first; alternates so neither order is favoured.
    first: usize,
}

const READ_LIMIT: Duration = Duration::from_millis(200);

impl WriterProbe {
    pub fn new(c: &Cluster) -> WriterProbe {
        WriterProbe {
            sockets: [0, 1].map(|i| c.nodes[i].socket().to_string_lossy().into_owned()),
            conns: [None, None],
            first: 0,
        }
    }

    pub async fn sample(&mut self) -> Sample {
        let a = self.first;
        let b = 1 - a;
        self.first = b;
        let mut sample = Sample::default();
        sample.readings[a] = self.read(a).await;
        sample.readings[b] = self.read(b).await;
        let writable = |r: Option<NodeReading>| r.is_some_and(|r| r.writable);
        if writable(sample.readings[a]) && writable(sample.readings[b]) {
            sample.two_writers = writable(self.read(a).await);
        }
        sample
    }

    async fn read(&mut self, i: usize) -> Option<NodeReading> {
        if self.conns[i].is_none() {
            let opts = OptsBuilder::default()
                .socket(Some(self.sockets[i].clone()))
                .user(Some(MONITOR_USER))
                .pass(Some(MONITOR_PASSWORD))
                .prefer_socket(true);
            let connect = tokio::time::timeout(READ_LIMIT, Conn::new(opts));
            self.conns[i] = connect.await.ok().and_then(Result::ok);
        }
        let conn = self.conns[i].as_mut()?;
        let read = tokio::time::timeout(
            READ_LIMIT,
            conn.query_first::<(u8, Option<u64>), _>(
                "SELECT @@GLOBAL.read_only, (SELECT VARIABLE_VALUE FROM \
                 information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_NO_TX')",
            ),
        )
        .await;
        match read {
            Ok(Ok(Some((read_only, unacked_commits)))) => Some(NodeReading {
                writable: read_only == 0,
                unacked_commits,
            }),
            _ => {
                self.conns[i] = None;
                None
            }
        }
    }
}
