//! The failover vote: the holder replaces the master only when every other
//! live instance (one whose view is in etcd under a living lease) also sees
//! it down. One instance cut off from the master alone therefore never
//! causes a promotion, whichever instance it is. Pure, tested by table.

use std::collections::BTreeMap;

use super::keys::{InstanceView, NodeView};
use crate::topology::Agreement;

/// Do the instances other than `me` agree that `node` is down? An instance
/// that has not checked the node yet, or does not list it, has not agreed.
pub fn agreement(me: &str, node: &str, views: &BTreeMap<String, InstanceView>) -> Agreement {
    for (name, view) in views.iter().filter(|(name, _)| name.as_str() != me) {
        if view.nodes.get(node) != Some(&NodeView::Down) {
            return Agreement::Disputed {
                instance: name.clone(),
                node: node.to_string(),
            };
        }
    }
    Agreement::Agreed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance and its view: (name, [(node, view)]).
    type Row<'a> = (&'a str, &'a [(&'a str, NodeView)]);

    fn views(rows: &[Row]) -> BTreeMap<String, InstanceView> {
        rows.iter()
            .map(|(name, nodes)| {
                (
                    name.to_string(),
                    InstanceView {
                        instance: name.to_string(),
                        epoch: Some(1),
                        nodes: nodes.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn agreement_by_table() {
        use NodeView::{Down, Unchecked, Up};
        let disputed = |i: &str| Agreement::Disputed {
            instance: i.into(),
            node: "cn1".into(),
        };
        let rows: &[(&[Row], Agreement)] = &[
            // Alone in etcd: nobody to ask.
            (&[("a", &[("cn1", Down)])], Agreement::Agreed),
            (&[], Agreement::Agreed),
            // Everyone sees it down.
            (
                &[
                    ("a", &[("cn1", Down)]),
                    ("b", &[("cn1", Down)]),
                    ("c", &[("cn1", Down)]),
                ],
                Agreement::Agreed,
            ),
            // One other still reaches it: the holder is the one cut off.
            (
                &[
                    ("a", &[("cn1", Down)]),
                    ("b", &[("cn1", Up)]),
                    ("c", &[("cn1", Down)]),
                ],
                disputed("b"),
            ),
            // Not checked yet, or not listed: no agreement.
            (
                &[("a", &[("cn1", Down)]), ("b", &[("cn1", Unchecked)])],
                disputed("b"),
            ),
            (
                &[("a", &[("cn1", Down)]), ("c", &[("cn2", Down)])],
                disputed("c"),
            ),
            // Our own view is not a vote (the controller has it already).
            (
                &[("a", &[("cn1", Up)]), ("b", &[("cn1", Down)])],
                Agreement::Agreed,
            ),
        ];
        for (v, want) in rows {
            assert_eq!(agreement("a", "cn1", &views(v)), *want, "{v:?}");
        }
    }
}
