//! Read selection behind a trait, as pingora's `BackendSelection`: a
//! [`ReadSelector`] picks one node from a snapshot for a caller-supplied
//! random number, among the nodes the caller's `accept` allows (lag limits
//! and read-your-writes filter there). [`Weighted`] is HAProxy's `weight`;
//! least-lag can be another implementation. Pure: no I/O, no clock, no RNG.

use super::snapshot::{NodeStatus, TopologySnapshot};
use super::{AdminState, NodeId, NodeState};

/// Chooses the node a read goes to.
pub trait ReadSelector {
    /// A node for random `r` among those `accept` allows, or `None`.
    fn select(
        &self,
        snapshot: &TopologySnapshot,
        r: u64,
        accept: &dyn Fn(&NodeStatus) -> bool,
    ) -> Option<NodeId>;
}

/// Weighted random choice: candidates are Up, admin-Online nodes with
/// weight > 0; a node of weight 3 gets three times the reads of a node of
/// weight 1. With no candidate, the master if it is Up (and accepted),
/// whatever its admin state: it takes the writes anyway.
#[derive(Debug, Clone, Copy, Default)]
pub struct Weighted;

impl ReadSelector for Weighted {
    fn select(
        &self,
        snapshot: &TopologySnapshot,
        r: u64,
        accept: &dyn Fn(&NodeStatus) -> bool,
    ) -> Option<NodeId> {
        let candidate = |n: &&NodeStatus| {
            n.state == NodeState::Up && n.admin == AdminState::Online && n.weight > 0 && accept(n)
        };
        // Two passes over a handful of nodes: no allocation on the hot path.
        let total: u64 = snapshot
            .nodes
            .iter()
            .filter(candidate)
            .map(|n| u64::from(n.weight))
            .sum();
        if total > 0 {
            let mut point = r % total;
            for node in snapshot.nodes.iter().filter(candidate) {
                let weight = u64::from(node.weight);
                if point < weight {
                    return Some(node.id);
                }
                point -= weight;
            }
        }
        snapshot
            .master()
            .filter(|m| m.state == NodeState::Up && accept(m))
            .map(|m| m.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Role;

    /// Nodes as (weight, up); node 0 is the master.
    fn snapshot(nodes: &[(u32, bool)]) -> TopologySnapshot {
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(id, &(weight, up))| {
                let role = if id == 0 { Role::Master } else { Role::Replica };
                let mut n = NodeStatus::new(id, &format!("n{id}"), "127.0.0.1:1", weight, role);
                if up {
                    n.state = NodeState::Up;
                }
                n
            })
            .collect();
        TopologySnapshot {
            nodes,
            master: Some(0),
            generation: 1,
        }
    }

    /// SplitMix64: well-spread test values for `r`, deterministic.
    fn randoms(n: usize) -> impl Iterator<Item = u64> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n).map(move |_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }

    fn counts(s: &TopologySnapshot, rs: impl Iterator<Item = u64>) -> Vec<usize> {
        let mut counts = vec![0; s.nodes.len()];
        for r in rs {
            if let Some(id) = s.pick_read(r) {
                counts[id] += 1;
            }
        }
        counts
    }

    #[test]
    fn weights_one_and_three_split_a_quarter_and_three_quarters() {
        let s = snapshot(&[(1, true), (3, true)]);
        for (label, c) in [
            ("sequential", counts(&s, 0..10_000)),
            ("random", counts(&s, randoms(10_000))),
        ] {
            assert_eq!(c[0] + c[1], 10_000, "{label}");
            // 25% ± 3 points of 10,000.
            assert!((2_200..=2_800).contains(&c[0]), "{label}: {c:?}");
            assert!((7_200..=7_800).contains(&c[1]), "{label}: {c:?}");
        }
    }

    #[test]
    fn down_nodes_are_never_picked() {
        let s = snapshot(&[(1, true), (5, false), (2, true)]);
        let c = counts(&s, randoms(10_000));
        assert_eq!(c[1], 0, "{c:?}");
        assert_eq!(c[0] + c[2], 10_000);
    }

    #[test]
    fn weight_zero_is_out_of_rotation_unless_it_is_the_up_master_alone() {
        // Master weight 0, a replica Up: all reads to the replica.
        let s = snapshot(&[(0, true), (1, true)]);
        assert_eq!(counts(&s, randoms(1_000)), vec![0, 1_000]);
        // Replica Down: the weight-0 master takes the reads.
        let s = snapshot(&[(0, true), (1, false)]);
        assert_eq!(counts(&s, randoms(1_000)), vec![1_000, 0]);
        // A weight-0 replica is never a fallback.
        let s = snapshot(&[(0, false), (0, true)]);
        assert_eq!(s.pick_read(7), None);
        // Nothing Up at all.
        let s = snapshot(&[(1, false), (1, false)]);
        assert_eq!(s.pick_read(7), None);
    }

    #[test]
    fn offline_and_draining_nodes_leave_rotation_but_the_master_stays_the_fallback() {
        let mut s = snapshot(&[(1, true), (1, true), (1, true)]);
        s.nodes[1].admin = AdminState::Offline;
        s.nodes[2].admin = AdminState::Drain;
        assert_eq!(counts(&s, randoms(1_000)), vec![1_000, 0, 0]);
        // The master drained too: no candidate left, so the master (Up) still reads.
        s.nodes[0].admin = AdminState::Drain;
        assert_eq!(counts(&s, randoms(1_000)), vec![1_000, 0, 0]);
        // Back online: the replica takes its share again.
        s.nodes[0].admin = AdminState::Online;
        s.nodes[2].admin = AdminState::Online;
        let c = counts(&s, randoms(1_000));
        assert!(c[2] > 0 && c[1] == 0, "{c:?}");
    }

    #[test]
    fn accept_filters_candidates_and_the_fallback() {
        let s = snapshot(&[(1, true), (1, true), (1, true)]);
        let not_one = |n: &NodeStatus| n.id != 1;
        for r in randoms(1_000) {
            assert_ne!(Weighted.select(&s, r, &not_one), Some(1));
        }
        let none = |_: &NodeStatus| false;
        assert_eq!(Weighted.select(&s, 3, &none), None);
    }

    #[test]
    fn extreme_values_of_r_stay_in_range() {
        let s = snapshot(&[(u32::MAX, true), (u32::MAX, true)]);
        for r in [0, 1, u64::MAX, u64::MAX - 1, u64::from(u32::MAX)] {
            assert!(s.pick_read(r).is_some());
        }
    }
}
