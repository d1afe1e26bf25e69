//! Who may change the master: the seam between the failover controller and
//! whatever decides that (alone, or with other sqlproxy instances through
//! etcd: `coordination/`). The controller asks before it acts and records
//! the new writer through it before it makes a node writable, so an
//! instance that does not hold the right, or cannot record the change,
//! never promotes anything. `topology` knows no etcd: the other side
//! implements [`Authority`].

use std::future::Future;
use std::pin::Pin;

/// What this instance may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No coordination: this instance decides alone (discovery, failover,
    /// fencing, rejoin, switchover), as a single sqlproxy always did.
    Alone,
    /// Holds the election and etcd answers: it decides for every instance.
    /// `writer_recorded` says whether a writer record exists (if not, the
    /// holder discovers the master from the nodes and records it).
    /// `previous` is the node the record says lost the role last (checked
    /// for divergence before it may rejoin).
    Holder {
        writer_recorded: bool,
        previous: Option<String>,
    },
    /// Another instance decides, or nobody can (etcd unreachable): follow
    /// the record, change nothing on the nodes. `holder` names the holder
    /// when known.
    Follower { holder: Option<String> },
}

/// The other instances' say about the master being gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Every other live instance sees it down (or there is none).
    Agreed,
    /// `instance` still sees `node` up: it is not gone, only cut off from us.
    Disputed { instance: String, node: String },
}

/// A recorded writer change: the epoch it got.
pub type Epoch = u64;

/// Boxed future of [`Authority::record_writer`].
pub type Recording<'a> = Pin<Box<dyn Future<Output = Result<Epoch, String>> + Send + 'a>>;

/// The controller's counterpart. `Solo` when the instance runs alone.
pub trait Authority: Send + Sync {
    fn standing(&self) -> Standing;
    /// Do the other live instances agree that `node` is unreachable?
    fn others_agree_down(&self, node: &str) -> Agreement;
    /// Records `node` (at GTID position `gtid`, the node it replaces
    /// `previous`) as the writer, before it is made writable. An error means
    /// the change must not happen: the node stays fenced.
    fn record_writer<'a>(
        &'a self,
        node: &'a str,
        gtid: &'a str,
        previous: Option<&'a str>,
    ) -> Recording<'a>;
    /// The controller refused to fail over because another instance still
    /// sees the master (`SHOW COORDINATION`, metrics).
    fn vetoed(&self, _agreement: &Agreement) {}
}

/// A single instance: it may always act, agrees with itself, records nothing.
#[derive(Debug, Default)]
pub struct Solo;

impl Authority for Solo {
    fn standing(&self) -> Standing {
        Standing::Alone
    }

    fn others_agree_down(&self, _node: &str) -> Agreement {
        Agreement::Agreed
    }

    fn record_writer<'a>(
        &'a self,
        _node: &'a str,
        _gtid: &'a str,
        _previous: Option<&'a str>,
    ) -> Recording<'a> {
        Box::pin(std::future::ready(Ok(0)))
    }
}
