//! HTTP balancer (stub, filled by the HTTP work).

/// `[http]` section of the config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {}
