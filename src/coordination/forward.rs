//! `SWITCHOVER TO` / `FAILOVER TO` asked on an instance that does not hold
//! the election: the request goes through etcd to the holder, which runs it
//! with its own failover controller and writes the answer back, so the
//! result is the same whichever instance the operator used. The request
//! lives under the requester's lease (it goes if the requester dies), the
//! answer under the holder's; the requester watches for the answer before
//! it asks, so it cannot miss it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, PutOptions};

use super::keys::{self, ForwardReply, Forwarded};
use super::{bounded, Coordinator};
use crate::topology::FailoverHandle;

/// Why a forwarded command has no result; every variant names the holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("this instance cannot reach etcd, so it cannot ask the holder ({holder}); run the command on the holder")]
    Unreachable { holder: String },
    #[error("no instance holds the election now; try again shortly")]
    NoHolder,
    #[error("instance '{holder}' (the holder) refused: {message}")]
    Refused { holder: String, message: String },
    #[error("forwarded to instance '{holder}' (the holder), which gave no answer within {after:?}; SHOW COORDINATION there says what happened")]
    NoAnswer { holder: String, after: Duration },
    #[error("forwarding to instance '{holder}' (the holder) failed: {error}")]
    Etcd { holder: String, error: String },
}

/// Makes request ids unique within this process.
static NEXT: AtomicU64 = AtomicU64::new(1);

impl Coordinator {
    /// Has the holder run `SWITCHOVER TO 'to'` (`force`: `FAILOVER TO`) and
    /// returns its answer, waiting at most `limit`.
    pub async fn forward(
        &self,
        to: &str,
        force: bool,
        limit: Duration,
    ) -> Result<String, ForwardError> {
        let (client, lease, holder) = {
            let s = self.state();
            let holder = s.holder.as_ref().map(|(n, _)| n.clone());
            match (s.client.clone().filter(|_| s.etcd_up), s.lease, holder) {
                (_, _, None) => return Err(ForwardError::NoHolder),
                (Some(c), Some(l), Some(h)) => (c, l, h),
                (_, _, Some(h)) => return Err(ForwardError::Unreachable { holder: h }),
            }
        };
        let etcd = |e: super::CoordinationError| ForwardError::Etcd {
            holder: holder.clone(),
            error: e.to_string(),
        };
        let id = format!(
            "{}-{}-{}",
            self.instance,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let t = self.config.timeout;
        let reply_key = self.keys.reply(&id);
        let mut watcher = client.clone();
        let mut answers = bounded(
            "watch for the answer",
            t,
            watcher.watch(reply_key.clone(), None),
        )
        .await
        .map_err(etcd)?;
        let request = Forwarded {
            to: to.to_string(),
            force,
            from: self.instance.clone(),
        };
        let mut kv = client.kv_client();
        bounded(
            "forward the request",
            t,
            kv.put(
                self.keys.request(&id),
                keys::encode(&request),
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await
        .map_err(etcd)?;
        tracing::info!(%holder, to, force, "master change forwarded to the holder");
        let wait = async {
            loop {
                let Ok(Some(resp)) = answers.message().await else {
                    return None;
                };
                for ev in resp.events() {
                    if ev.event_type() != EventType::Put {
                        continue;
                    }
                    if let Some(r) = ev
                        .kv()
                        .and_then(|kv| keys::decode::<ForwardReply>(kv.value()))
                    {
                        return Some(r);
                    }
                }
            }
        };
        let answer = tokio::time::timeout(limit, wait).await;
        for key in [self.keys.request(&id), reply_key] {
            if let Err(e) = bounded("clean up", t, kv.delete(key, None)).await {
                tracing::debug!(error = %e, "forwarded request not cleaned up; its lease will");
            }
        }
        match answer {
            Ok(Some(r)) if r.ok => Ok(r.message),
            Ok(Some(r)) => Err(ForwardError::Refused {
                holder: r.by,
                message: r.message,
            }),
            Ok(None) => Err(ForwardError::Etcd {
                holder,
                error: "the watch for the answer ended".into(),
            }),
            Err(_) => Err(ForwardError::NoAnswer {
                holder,
                after: limit,
            }),
        }
    }
}

/// The holder runs a forwarded request on its own controller (which
/// refuses it if this instance lost the election meanwhile) and answers.
pub(super) fn serve(coord: Arc<Coordinator>, failover: FailoverHandle, id: String, req: Forwarded) {
    tokio::spawn(async move {
        tracing::info!(from = %req.from, to = %req.to, force = req.force, "running a master change forwarded by another instance");
        let result = failover.switchover(&req.to, req.force).await;
        let reply = ForwardReply {
            ok: result.is_ok(),
            message: result.unwrap_or_else(|e| e.to_string()),
            by: coord.instance.clone(),
        };
        let (client, lease) = {
            let s = coord.state();
            (s.client.clone(), s.lease)
        };
        let Some(client) = client else {
            tracing::error!(%id, "no etcd session to answer a forwarded request");
            return;
        };
        let mut kv = client.kv_client();
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let put = kv.put(coord.keys.reply(&id), keys::encode(&reply), options);
        if let Err(e) = bounded("answer a forwarded request", coord.config.timeout, put).await {
            tracing::error!(error = %e, %id, "could not answer a forwarded request");
        }
    });
}
