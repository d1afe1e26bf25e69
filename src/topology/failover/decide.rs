//! The controller's pure decisions, tested by table: which node is the
//! master at start, which node may replace a failed master, and whether a
//! returning node holds transactions the master lacks. Positions are
//! compared per GTID domain: sequence numbers of different domains say
//! nothing about each other.

use crate::topology::gtid::{self, GtidPos};
use crate::topology::snapshot::{NodeStatus, TopologySnapshot};
use crate::topology::{CheckErrorKind, NodeId, NodeState};

/// The master at start, read back from the nodes: the one writable node.
/// If several are writable (the seed's setup) or none is (nodes restart
/// fenced), the most advanced of them by GTID; config priority breaks a tie
/// and decides when positions cannot be compared (each ahead in a domain).
pub fn discover_master(snap: &TopologySnapshot, priority: &[NodeId]) -> Option<NodeId> {
    let up: Vec<&NodeStatus> = snap
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Up)
        .collect();
    let writable: Vec<&NodeStatus> = up
        .iter()
        .copied()
        .filter(|n| n.read_only == Some(false))
        .collect();
    if let [only] = writable.as_slice() {
        return Some(only.id);
    }
    let pool = if writable.is_empty() { up } else { writable };
    most_advanced(&pool, priority).or_else(|| {
        // Positions cross or are unknown: someone must take writes.
        priority
            .iter()
            .copied()
            .find(|id| pool.iter().any(|n| n.id == *id))
    })
}

/// The node that may replace the failed master `old`: up, not diverged,
/// answering the monitor, and not behind any other such node in any GTID
/// domain. None when no node qualifies, or when two candidates are each
/// ahead in some domain (promoting either would drop the other's
/// transactions: an operator decides).
pub fn best_candidate(snap: &TopologySnapshot, old: NodeId, priority: &[NodeId]) -> Option<NodeId> {
    let candidates: Vec<&NodeStatus> = snap
        .nodes
        .iter()
        .filter(|n| {
            n.id != old
                && n.state == NodeState::Up
                && n.diverged.is_none()
                && n.last_error_kind != Some(CheckErrorKind::Denied)
        })
        .collect();
    most_advanced(&candidates, priority)
}

/// Among `nodes`, the one whose position includes every other's, by
/// priority among equals; None if positions cross or are unknown.
fn most_advanced(nodes: &[&NodeStatus], priority: &[NodeId]) -> Option<NodeId> {
    let known = |n: &NodeStatus| n.gtid_current.clone();
    let ahead: Vec<&NodeStatus> = nodes
        .iter()
        .copied()
        .filter(|n| {
            let Some(mine) = known(n) else {
                return false;
            };
            nodes
                .iter()
                .all(|o| known(o).is_some_and(|theirs| gtid::includes_all(&mine, &theirs)))
        })
        .collect();
    if nodes.len() == 1 {
        // A lone node with an unknown position is still the only choice.
        return nodes.first().map(|n| n.id);
    }
    priority
        .iter()
        .copied()
        .find(|id| ahead.iter().any(|n| n.id == *id))
        .or_else(|| ahead.first().map(|n| n.id))
}

/// True if `node_binlog` holds a transaction that `master` has not applied.
pub fn has_diverged(node_binlog: &GtidPos, master: &GtidPos) -> bool {
    !gtid::includes_all(master, node_binlog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Role;

    /// A node as (up, read_only, gtid_current_pos).
    type Node = (bool, Option<bool>, &'static str);

    fn snap(nodes: &[Node]) -> TopologySnapshot {
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(id, &(up, ro, gtid))| {
                let mut n = NodeStatus::new(id, &format!("n{id}"), "127.0.0.1:1", 1, Role::Replica);
                if up {
                    n.state = NodeState::Up;
                }
                n.read_only = ro;
                n.gtid_current = gtid.parse().ok();
                n
            })
            .collect();
        TopologySnapshot {
            nodes,
            master: Some(0),
            generation: 0,
        }
    }

    #[test]
    fn discovery_by_table() {
        let rows: &[(&[Node], &[NodeId], Option<NodeId>)] = &[
            // The one writable node.
            (
                &[(true, Some(true), "0-1-5"), (true, Some(false), "0-1-1")],
                &[0, 1],
                Some(1),
            ),
            // Both writable (the seed's setup): the more advanced.
            (
                &[(true, Some(false), "0-1-5"), (true, Some(false), "0-1-9")],
                &[0, 1],
                Some(1),
            ),
            // Both fenced after a restart: the more advanced, not priority.
            (
                &[(true, Some(true), "0-1-9"), (true, Some(true), "0-1-5")],
                &[1, 0],
                Some(0),
            ),
            // Equal positions: priority.
            (
                &[(true, Some(true), "0-1-9"), (true, Some(true), "0-1-9")],
                &[1, 0],
                Some(1),
            ),
            // Each ahead in a domain: priority decides.
            (
                &[
                    (true, Some(true), "0-1-9,1-2-1"),
                    (true, Some(true), "0-1-5,1-2-4"),
                ],
                &[1, 0],
                Some(1),
            ),
            // One up: that one.
            (
                &[(false, None, ""), (true, Some(true), "0-1-3")],
                &[0, 1],
                Some(1),
            ),
            (&[(false, None, ""), (false, None, "")], &[0, 1], None),
        ];
        for (nodes, priority, want) in rows {
            assert_eq!(discover_master(&snap(nodes), priority), *want, "{nodes:?}");
        }
    }

    #[test]
    fn candidate_is_ahead_in_every_domain() {
        let rows: &[(&[Node], Option<NodeId>)] = &[
            (
                &[
                    (false, None, "1-1-100"),
                    (true, Some(true), "1-1-90,2-2-5"),
                    (true, Some(true), "1-1-99,2-2-5"),
                ],
                Some(2),
            ),
            // A larger sum of sequence numbers is not "ahead": each leads a domain.
            (
                &[
                    (false, None, "1-1-100"),
                    (true, Some(true), "1-1-90,2-2-50"),
                    (true, Some(true), "1-1-99,2-2-5"),
                ],
                None,
            ),
            (&[(false, None, ""), (false, None, "")], None),
            (
                &[(false, None, "0-1-5"), (true, Some(true), "0-1-5")],
                Some(1),
            ),
        ];
        for (nodes, want) in rows {
            assert_eq!(
                best_candidate(&snap(nodes), 0, &[0, 1, 2]),
                *want,
                "{nodes:?}"
            );
        }
    }

    #[test]
    fn a_node_that_refuses_the_monitor_is_no_candidate() {
        let mut s = snap(&[(false, None, "0-1-5"), (true, Some(true), "0-1-5")]);
        s.nodes[1].last_error_kind = Some(CheckErrorKind::Denied);
        assert_eq!(best_candidate(&s, 0, &[0, 1]), None);
    }

    #[test]
    fn divergence_is_a_transaction_the_master_lacks() {
        let master: GtidPos = "1-1-100,2-2-7".parse().expect("pos");
        let rows = [
            ("1-1-100", false),
            ("1-1-90,2-2-7", false),
            ("1-1-101", true),
            ("3-3-1", true),
        ];
        for (binlog, diverged) in rows {
            let pos: GtidPos = binlog.parse().expect("pos");
            assert_eq!(has_diverged(&pos, &master), diverged, "{binlog}");
        }
    }
}
