//! The `[cache]` section: on/off, the byte budget, TTLs and the ordered rules
//! that override what is cached and for how long. Checked by [`CacheConfig::validate`],
//! which `Config::validate` calls, so a bad rule never starts the proxy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one rule looks at; matched against each statement shape once (cached per digest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// A table the statement reads: `db.table`, or `table` in any schema (case-insensitive).
    #[serde(default)]
    pub table: Option<String>,
    /// The statement's digest exactly (literals as `?`, keywords upper-cased).
    #[serde(default)]
    pub digest: Option<String>,
    /// A regular expression searched in the digest.
    #[serde(default)]
    pub regex: Option<String>,
    /// Cache matching statements for this long (also allows system schemas).
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// Never cache matching statements.
    #[serde(default)]
    pub never: bool,
}

/// `[cache]`: results of hot SELECTs, invalidated by writes through the proxy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Off unless asked for: a cache changes what a client may observe (see docs/cache.md).
    #[serde(default)]
    pub enabled: bool,
    /// Total bytes of stored results (moka weigher: reply bytes + key).
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
    /// Lifetime of an entry no rule gives a TTL. Bounds staleness from writes that
    /// bypass the proxy.
    #[serde(default = "defaults::default_ttl", with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Larger results are relayed and not stored.
    #[serde(default = "defaults::max_entry_bytes")]
    pub max_entry_bytes: u64,
    /// Matched in order; the first match decides.
    #[serde(default)]
    pub rules: Vec<CacheRule>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            max_bytes: defaults::max_bytes(),
            default_ttl: defaults::default_ttl(),
            max_entry_bytes: defaults::max_entry_bytes(),
            rules: Vec::new(),
        }
    }
}

/// Why a `[cache]` section is refused; `key` is the config path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}`: {reason}")]
pub struct CacheConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> CacheConfigError {
    CacheConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), CacheConfigError> {
        if self.max_bytes == 0 {
            return Err(invalid("cache.max_bytes", "must be at least 1"));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            return Err(invalid(
                "cache.max_entry_bytes",
                "must be between 1 and cache.max_bytes",
            ));
        }
        // The weigher speaks u32.
        if self.max_entry_bytes > u64::from(u32::MAX / 2) {
            return Err(invalid("cache.max_entry_bytes", "must be below 2 GiB"));
        }
        if self.default_ttl.is_zero() {
            return Err(invalid("cache.default_ttl", "must be positive"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("cache.rules[{i}]");
            let matchers =
                r.table.is_some() as u8 + r.digest.is_some() as u8 + r.regex.is_some() as u8;
            if matchers != 1 {
                return Err(invalid(key, "give exactly one of table, digest, regex"));
            }
            if r.never == r.ttl.is_some() {
                return Err(invalid(key, "give exactly one of ttl, never = true"));
            }
            if r.ttl.is_some_and(|t| t.is_zero()) {
                return Err(invalid(format!("{key}.ttl"), "must be positive"));
            }
            if let Some(re) = &r.regex {
                regex::Regex::new(re)
                    .map_err(|e| invalid(format!("{key}.regex"), e.to_string()))?;
            }
        }
        Ok(())
    }
}

mod defaults {
    use std::time::Duration;
    /// Enough for every hot result of a shop, small beside the nodes' buffer pools.
    pub fn max_bytes() -> u64 {
        256 * 1024 * 1024
    }
    /// A minute: a write that bypasses the proxy is visible at worst this late.
    pub fn default_ttl() -> Duration {
        Duration::from_secs(60)
    }
    /// 1 MiB: product listings fit; a result this large is cheap to fetch relative to its size.
    pub fn max_entry_bytes() -> u64 {
        1024 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CacheRule {
        CacheRule {
            table: Some("t".into()),
            digest: None,
            regex: None,
            ttl: Some(Duration::from_secs(1)),
            never: false,
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(CacheConfig::default().validate(), Ok(()));
        let mut c = CacheConfig {
            max_entry_bytes: 10,
            max_bytes: 5,
            ..CacheConfig::default()
        };
        assert_eq!(
            c.validate().map_err(|e| e.key),
            Err("cache.max_entry_bytes".into())
        );
        c = CacheConfig::default();
        c.rules.push(rule());
        assert_eq!(c.validate(), Ok(()));
        c.rules.push(CacheRule {
            never: true,
            ..rule()
        });
        assert_eq!(
            c.validate().map_err(|e| e.key),
            Err("cache.rules[1]".into())
        );
        c.rules[1] = CacheRule {
            table: None,
            regex: Some("(".into()),
            ..rule()
        };
        assert_eq!(
            c.validate().map_err(|e| e.key),
            Err("cache.rules[1].regex".into())
        );
    }
}
