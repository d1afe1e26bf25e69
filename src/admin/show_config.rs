//! `SHOW CONFIG`: the config in force (as last loaded from the file), one
//! row per key in `section.key` form, passwords masked.

use figment::value::Value;

use super::{exact, AdminCommand, AdminContext, AdminError, Exec, Reply};
use super::{ResultSet, Words};
use crate::config::Config;

/// What a secret shows as.
pub const MASK: &str = "********";

pub struct ShowConfig;

impl AdminCommand for ShowConfig {
    fn parse(w: &Words) -> Option<Result<Self, AdminError>> {
        exact(w, &["SHOW", "CONFIG"], "SHOW CONFIG", ShowConfig)
    }

    fn name(&self) -> &'static str {
        "show config"
    }

    fn execute<'a>(&'a self, admin: &'a AdminContext) -> Exec<'a> {
        let rows = flatten_config(&admin.running());
        let rs = ResultSet::pairs(("key", "value"), rows);
        super::ready(Ok(Reply::Rows(rs)))
    }
}

/// `(dotted key, value)` pairs of `config`, secrets masked.
pub fn flatten_config(config: &Config) -> Vec<(String, String)> {
    flatten_with(config, true)
}

/// `(dotted key, value)` pairs of `config`, secrets in clear (for comparing).
pub fn flatten_config_raw(config: &Config) -> Vec<(String, String)> {
    flatten_with(config, false)
}

fn flatten_with(config: &Config, mask: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match Value::serialize(config) {
        Ok(v) => flatten("", &v, mask, &mut out),
        Err(e) => out.push(("error".into(), e.to_string())),
    }
    if let Some(path) = &config.source {
        out.insert(0, ("source".into(), path.display().to_string()));
    }
    out
}

fn is_secret(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.contains("password")
}

fn flatten(prefix: &str, v: &Value, mask: bool, out: &mut Vec<(String, String)>) {
    let text = match v {
        Value::Dict(_, d) => {
            for (k, v) in d {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, mask, out);
            }
            return;
        }
        Value::Array(_, a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, mask, out);
            }
            return;
        }
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|u| u.to_string())
            .or_else(|| n.to_i128().map(|i| i.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => return,
    };
    let text = if mask && is_secret(prefix) && !text.is_empty() {
        MASK.to_string()
    } else {
        text
    };
    out.push((prefix.to_string(), text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_keys_dotted() {
        let c = Config::from_toml_str(
            r#"
[mysql]
listen = "127.0.0.1:0"
[nodes.cn1]
address = "127.0.0.1:3306"
[users.shop]
password = "s3cret"
[monitor]
password = "m0n"
[admin]
password = "adm1n"
"#,
            Vec::new(),
        )
        .unwrap();
        let rows = flatten_config(&c);
        let get = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("nodes.cn1.address"), Some("127.0.0.1:3306"));
        assert_eq!(get("nodes.cn1.weight"), Some("1"));
        assert_eq!(get("monitor.interval"), Some("2s"));
        assert_eq!(get("users.shop.password"), Some(MASK));
        assert_eq!(get("monitor.password"), Some(MASK));
        assert_eq!(get("admin.password"), Some(MASK));
        assert!(rows
            .iter()
            .all(|(_, v)| !v.contains("s3cret") && !v.contains("adm1n")));
    }
}
