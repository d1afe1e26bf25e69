//! What lives in etcd, and where: every key under `/sqlproxy/<cluster>/`,
//! every value a small JSON document. Pure: no etcd here, so the layout and
//! the documents are tested on their own.
//!
//! | key | value | lease |
//! |---|---|---|
//! | `holder` | the holding instance's name | the holder's |
//! | `writer` | [`WriterRecord`] | none: it outlives every instance |
//! | `instances/<name>` | [`InstanceView`] | that instance's |
//! | `operator/<node>` | [`OperatorRecord`] | none: survives restarts |
//! | `requests/<id>` | [`Forwarded`] | the requester's |
//! | `replies/<id>` | [`ForwardReply`] | the holder's |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The key names of one proxy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Holder,
    Writer,
    Instance(&'a str),
    Operator(&'a str),
    Request(&'a str),
    Reply(&'a str),
    Other,
}

impl Keys {
    pub fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("/sqlproxy/{cluster}/"),
        }
    }

    /// Every key of this cluster starts with it (the watch covers it all).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn holder(&self) -> String {
        format!("{}holder", self.prefix)
    }

    pub fn writer(&self) -> String {
        format!("{}writer", self.prefix)
    }

    pub fn instance(&self, name: &str) -> String {
        format!("{}instances/{name}", self.prefix)
    }

    pub fn operator(&self, node: &str) -> String {
        format!("{}operator/{node}", self.prefix)
    }

    pub fn request(&self, id: &str) -> String {
        format!("{}requests/{id}", self.prefix)
    }

    pub fn reply(&self, id: &str) -> String {
        format!("{}replies/{id}", self.prefix)
    }

    /// Which key `key` is; `Other` for anything outside this layout.
    pub fn kind<'a>(&self, key: &'a str) -> KeyKind<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return KeyKind::Other;
        };
        match rest.split_once('/') {
            None if rest == "holder" => KeyKind::Holder,
            None if rest == "writer" => KeyKind::Writer,
            Some(("instances", name)) if !name.is_empty() => KeyKind::Instance(name),
            Some(("operator", node)) if !node.is_empty() => KeyKind::Operator(node),
            Some(("requests", id)) if !id.is_empty() => KeyKind::Request(id),
            Some(("replies", id)) if !id.is_empty() => KeyKind::Reply(id),
            _ => KeyKind::Other,
        }
    }
}

/// The writer: the one node every instance sends writes to. Changed only by
/// the election's holder, with a transaction that compares the record's
/// revision, so `epoch` only grows, by one per change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterRecord {
    pub node: String,
    pub epoch: u64,
    /// The node's `gtid_current_pos` when it was promoted.
    pub gtid: String,
    /// The node that lost the role (checked for divergence before it rejoins).
    #[serde(default)]
    pub previous: Option<String>,
    /// The instance that recorded it.
    pub by: String,
}

/// How one instance sees one node, as published for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeView {
    Up,
    Down,
    /// Not checked yet: no say either way.
    Unchecked,
}

impl std::fmt::Display for NodeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeView::Up => "up",
            NodeView::Down => "down",
            NodeView::Unchecked => "unchecked",
        })
    }
}

/// One instance's published view: under its lease, so it disappears with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub instance: String,
    /// The writer epoch it follows.
    #[serde(default)]
    pub epoch: Option<u64>,
    pub nodes: BTreeMap<String, NodeView>,
}

/// The operator's say over one node's read rotation (`SET BACKEND`), shared
/// by every instance and kept across restarts. A field not set leaves the
/// config's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// A master change asked on an instance that does not hold the election,
/// for the holder to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    pub to: String,
    /// FAILOVER TO rather than SWITCHOVER TO.
    pub force: bool,
    pub from: String,
}

/// The holder's answer to a [`Forwarded`] request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardReply {
    pub ok: bool,
    pub message: String,
    pub by: String,
}

/// A document from its JSON bytes; `None` for anything else (logged by the caller).
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// A document as JSON bytes.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, numbers and maps with string keys: serde_json
    // cannot fail on them; an empty value would be refused by every reader.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("shop");
        assert_eq!(k.holder(), "/sqlproxy/shop/holder");
        assert_eq!(k.kind(&k.holder()), KeyKind::Holder);
        assert_eq!(k.kind(&k.writer()), KeyKind::Writer);
        assert_eq!(k.kind(&k.instance("a:1")), KeyKind::Instance("a:1"));
        assert_eq!(k.kind(&k.operator("cn2")), KeyKind::Operator("cn2"));
        assert_eq!(k.kind(&k.request("x-1")), KeyKind::Request("x-1"));
        assert_eq!(k.kind(&k.reply("x-1")), KeyKind::Reply("x-1"));
        assert_eq!(k.kind("/sqlproxy/other/writer"), KeyKind::Other);
        assert_eq!(k.kind("/sqlproxy/shop/instances/"), KeyKind::Other);
        assert_eq!(k.kind("/sqlproxy/shop/writerx"), KeyKind::Other);
    }

    #[test]
    fn documents_round_trip_and_garbage_is_none() {
        let w = WriterRecord {
            node: "cn2".into(),
            epoch: 7,
            gtid: "1-1-5".into(),
            previous: Some("cn1".into()),
            by: "a".into(),
        };
        assert_eq!(decode::<WriterRecord>(&encode(&w)), Some(w));
        let v: InstanceView =
            decode(br#"{"instance":"b","nodes":{"cn1":"down","cn2":"up"}}"#).unwrap();
        assert_eq!(v.nodes["cn1"], NodeView::Down);
        assert_eq!(v.epoch, None);
        assert_eq!(decode::<WriterRecord>(b"not json"), None);
        assert_eq!(decode::<WriterRecord>(br#"{"node":"x"}"#), None);
        let o: OperatorRecord = decode(br#"{"admin":"offline"}"#).unwrap();
        assert_eq!(o.weight, None);
    }
}
