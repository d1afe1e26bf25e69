//! One `server` line (`server cn1 10.0.0.1:3306 weight 256 check inter 2s
//! rise 3 fall 2`) with the `default-server` line of its proxy applied. The
//! options sqlproxy has a word for are read; every other option is reported
//! as not mapped, naming the server.

use std::time::Duration;

use super::map::{duration_at, number_at, Mapper, Proxy};
use super::parse::Directive;
use super::ImportError;

/// Server options that take one value (HAProxy 2.x, section 5.2); anything
/// else is a flag. Needed to skip a value we do not map without reading it
/// as the next option.
const WITH_VALUE: &[&str] = &[
    "weight",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "port",
    "maxconn",
    "minconn",
    "maxqueue",
    "cookie",
    "addr",
    "id",
    "slowstart",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "error-limit",
    "observe",
    "agent-port",
    "agent-inter",
    "agent-send",
    "agent-addr",
    "verify",
    "ca-file",
    "crt",
    "sni",
    "source",
    "track",
    "resolvers",
    "resolve-prefer",
    "resolve-net",
    "init-addr",
    "proto",
    "alpn",
    "check-sni",
    "check-proto",
    "check-alpn",
    "pool-max-conn",
    "pool-purge-delay",
    "pool-low-conn",
    "max-reuse",
    "namespace",
    "redir",
    "tcp-ut",
    "ws",
    "log-proto",
    "crl-file",
    "ciphers",
    "ciphersuites",
    "ssl-min-ver",
    "ssl-max-ver",
    "curves",
    "sigalgs",
    "shard",
    "hash-key",
    "set-proxy-v2-tlv-fmt",
];

/// What a server line (plus `default-server`) says.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub line: usize,
    pub name: String,
    /// As written (may hold `${VAR}`).
    pub addr: String,
    pub weight: Option<u32>,
    pub backup: bool,
    pub disabled: bool,
    pub check: bool,
    pub inter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub maxconn: Option<usize>,
}

/// Reads options from `words[from..]` into `s`; options not in `mapped`
/// are reported through `m` (they had no sqlproxy word).
fn options(
    m: &mut Mapper<'_>,
    d: &Directive,
    from: usize,
    s: &mut Server,
    mapped: &[&str],
    who: &str,
) -> Result<(), ImportError> {
    let mut i = from;
    while let Some(opt) = d.word(i) {
        let opt_l = opt.to_ascii_lowercase();
        let takes_value = WITH_VALUE.contains(&opt_l.as_str());
        let value_at = i + 1;
        match opt_l.as_str() {
            "weight" => s.weight = Some(number_at(d, value_at)?),
            "inter" => s.inter = Some(duration_at(d, value_at)?),
            "rise" => s.rise = Some(number_at(d, value_at)?),
            "fall" => s.fall = Some(number_at(d, value_at)?),
            "maxconn" => s.maxconn = Some(number_at(d, value_at)?),
            "check" => s.check = true,
            "no-check" => s.check = false,
            "backup" => s.backup = true,
            "disabled" => s.disabled = true,
            "enabled" => s.disabled = false,
            _ => {}
        }
        if !mapped.contains(&opt_l.as_str()) {
            let text = match (takes_value, d.word(value_at)) {
                (true, Some(v)) => format!("{who}: {opt} {v}"),
                _ => format!("{who}: {opt}"),
            };
            m.not_mapped(d.line, text, option_reason(&opt_l));
        }
        i += if takes_value { 2 } else { 1 };
    }
    Ok(())
}

fn option_reason(opt: &str) -> &'static str {
    match opt {
        "port" | "addr" => "sqlproxy checks the node on its own address and port",
        "fastinter" | "downinter" => "sqlproxy checks every node at one interval",
        "on-marked-down" | "on-marked-up" => {
            "sqlproxy closes sessions pinned to a failed master itself"
        }
        "slowstart" => "a node back up takes its full weight at once",
        "cookie" => "[http.sticky] uses the worker's name as the cookie value",
        "maxconn" => "no per-node connection limit for MySQL: mysql.max_connections bounds clients",
        "ssl" | "check-ssl" | "verify" | "ca-file" | "crt" | "sni" => {
            "sqlproxy does not speak TLS to nodes or workers"
        }
        "send-proxy" | "send-proxy-v2" => "no PROXY protocol towards nodes or workers",
        _ => "no sqlproxy equivalent",
    }
}

/// Every `server` of `proxy`, `default-server` applied. `mapped` names the
/// options this service maps (the others are reported).
pub fn servers<'a>(
    m: &mut Mapper<'a>,
    proxy: &Proxy<'a>,
    mapped: &[&str],
) -> Result<Vec<Server>, ImportError> {
    let mut defaults = Server {
        line: 0,
        name: String::new(),
        addr: String::new(),
        weight: None,
        backup: false,
        disabled: false,
        check: false,
        inter: None,
        rise: None,
        fall: None,
        maxconn: None,
    };
    if let Some(d) = m.take(proxy, &["default-server"]) {
        options(m, d, 1, &mut defaults, mapped, "default-server")?;
    }
    let mut out = Vec::new();
    for d in proxy.section.all(&["server"]) {
        m.use_line(d.line);
        let name = d.word(1).unwrap_or("").to_string();
        let mut s = Server {
            line: d.line,
            name: name.clone(),
            addr: d.word(2).unwrap_or("").to_string(),
            ..defaults.clone()
        };
        options(m, d, 3, &mut s, mapped, &format!("server {name}"))?;
        out.push(s);
    }
    Ok(out)
}

/// A name sqlproxy accepts for a node or worker: lower-case letters,
/// digits, `-` and `_`; anything else becomes `-`.
pub fn clean_name(name: &str, fallback: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import_haproxy::parse::parse;

    #[test]
    fn options_and_default_server() {
        let cfg = parse(
            "backend b\n default-server inter 3s rise 2\n server a 1.2.3.4:80 weight 5 check fall 4 port 81 backup\n server b 1.2.3.5:80\n",
        )
        .unwrap();
        let mut m = Mapper::new(&cfg);
        let p = Proxy::at(&cfg, 0);
        let s = servers(
            &mut m,
            &p,
            &["weight", "inter", "rise", "fall", "check", "backup"],
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].weight, s[0].check, s[0].backup),
            (Some(5), true, true)
        );
        assert_eq!(
            (s[0].inter, s[0].rise, s[0].fall),
            (Some(Duration::from_secs(3)), Some(2), Some(4))
        );
        assert_eq!(
            (s[1].weight, s[1].inter),
            (None, Some(Duration::from_secs(3)))
        );
        m.use_line(1);
        let left = m.finish();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].text, "server a: port 81");
    }

    #[test]
    fn a_bad_weight_names_the_line() {
        let cfg = parse("backend b\n server a 1.2.3.4:80 weight lots\n").unwrap();
        let mut m = Mapper::new(&cfg);
        let e = servers(&mut m, &Proxy::at(&cfg, 0), &[]).unwrap_err();
        assert!(matches!(e, ImportError::BadValue { line: 2, .. }), "{e}");
    }

    #[test]
    fn names_become_config_keys() {
        assert_eq!(clean_name("CN1", "n"), "cn1");
        assert_eq!(clean_name("web.1", "n"), "web-1");
        assert_eq!(clean_name("", "node1"), "node1");
    }
}
