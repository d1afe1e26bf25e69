//! What the MySQL and HTTP mappings share: a proxy section seen with its
//! `defaults`, the record of which lines were used (every other line ends in
//! the "not imported" list with a reason), and HAProxy's value syntaxes
//! (times, addresses) turned into sqlproxy's.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::parse::{Directive, HaproxyConfig, Section, SectionKind};
use super::write::{Output, Table, Unmapped};
use super::ImportError;

/// A frontend, backend or listen section with the `defaults` above it.
#[derive(Debug, Clone, Copy)]
pub struct Proxy<'a> {
    pub section: &'a Section,
    pub defaults: Option<&'a Section>,
}

impl<'a> Proxy<'a> {
    pub fn at(cfg: &'a HaproxyConfig, index: usize) -> Proxy<'a> {
        Proxy {
            section: &cfg.sections[index],
            defaults: cfg.defaults_for(index),
        }
    }

    pub fn name(&self) -> &'a str {
        self.section.name.as_deref().unwrap_or("")
    }

    /// The proxy's own directive, else the one of its defaults.
    pub fn lookup(&self, words: &[&str]) -> Option<&'a Directive> {
        self.section
            .find(words)
            .or_else(|| self.defaults.and_then(|d| d.find(words)))
    }

    /// `mode` in force: `tcp` unless the proxy or its defaults say otherwise.
    pub fn mode(&self) -> String {
        self.lookup(&["mode"])
            .and_then(|d| d.word(1))
            .unwrap_or("tcp")
            .to_ascii_lowercase()
    }
}

/// Tracks which lines the mappings used.
pub struct Mapper<'a> {
    pub cfg: &'a HaproxyConfig,
    used: HashSet<usize>,
    /// Parts of used lines that were not mapped (a server option, a bind option).
    pub partial: Vec<Unmapped>,
}

impl<'a> Mapper<'a> {
    pub fn new(cfg: &'a HaproxyConfig) -> Mapper<'a> {
        Mapper {
            cfg,
            used: HashSet::new(),
            partial: Vec::new(),
        }
    }

    /// Every proxy section (frontend, backend, listen), in file order.
    pub fn proxies(&self) -> impl Iterator<Item = Proxy<'a>> + 'a {
        let cfg = self.cfg;
        (0..cfg.sections.len())
            .filter(move |&i| cfg.sections[i].is_proxy())
            .map(move |i| Proxy::at(cfg, i))
    }

    /// Marks a line as imported.
    pub fn use_line(&mut self, line: usize) {
        self.used.insert(line);
    }

    /// [`Proxy::lookup`], marking the line found as imported.
    pub fn take(&mut self, proxy: &Proxy<'a>, words: &[&str]) -> Option<&'a Directive> {
        let d = proxy.lookup(words)?;
        self.used.insert(d.line);
        Some(d)
    }

    /// Records that part of an imported line was not mapped.
    pub fn not_mapped(&mut self, line: usize, text: impl Into<String>, why: impl Into<String>) {
        self.partial.push(Unmapped {
            line,
            text: text.into(),
            why: why.into(),
        });
    }

    /// Every line not imported, with the reason, in line order.
    pub fn finish(self) -> Vec<Unmapped> {
        let mut out = self.partial;
        for s in &self.cfg.sections {
            let container = matches!(s.kind, SectionKind::Global | SectionKind::Defaults);
            if !container && !self.used.contains(&s.line) {
                let mut text = s.title();
                for a in &s.args {
                    text.push(' ');
                    text.push_str(a);
                }
                let why = if s.is_proxy() {
                    "not imported: sqlproxy runs one MySQL service and one HTTP balancer"
                } else {
                    "no sqlproxy equivalent"
                };
                out.push(Unmapped {
                    line: s.line,
                    text,
                    why: why.into(),
                });
            }
            for d in &s.directives {
                if !self.used.contains(&d.line) {
                    out.push(Unmapped {
                        line: d.line,
                        text: d.text(),
                        why: reason(d).into(),
                    });
                }
            }
        }
        out.sort_by_key(|u| u.line);
        out
    }
}

/// Why a directive has no sqlproxy equivalent.
fn reason(d: &Directive) -> &'static str {
    let k = d.keyword().to_ascii_lowercase();
    let second = d.word(1).unwrap_or("").to_ascii_lowercase();
    match (k.as_str(), second.as_str()) {
        ("log", _) | ("option", "httplog" | "tcplog" | "dontlognull" | "logasap" | "log-health-checks") => {
            "sqlproxy logs to stdout, i.e. the journal under systemd (SQLPROXY_LOG sets the level)"
        }
        ("chroot" | "user" | "group" | "uid" | "gid" | "daemon" | "pidfile" | "nbproc" | "master-worker", _) => {
            "systemd runs sqlproxy as the sqlproxy user with its sandbox (sqlproxy.service)"
        }
        ("stats", "timeout") => "the admin SQL port has no idle timeout",
        ("nbthread", _) => "sqlproxy sizes itself: [runtime] worker_threads and [http] threads (0 = one per CPU)",
        ("ca-base" | "crt-base", _) => "sqlproxy does not terminate TLS",
        (k, _) if k.starts_with("ssl-") || k.starts_with("tune.ssl") => "sqlproxy does not terminate TLS",
        ("errorfile" | "errorfiles" | "errorloc" | "errorloc302" | "errorloc303", _) => {
            "sqlproxy's balancer makes its own error pages"
        }
        ("acl" | "http-request" | "http-response" | "tcp-request" | "tcp-response" | "use_backend", _) => {
            "sqlproxy has no rule language: one HTTP backend, one MySQL cluster"
        }
        ("compression", _) => "the balancer does not compress; let the web server do it",
        ("option", "http-server-close" | "httpclose" | "http-keep-alive" | "forceclose") => {
            "the balancer keeps worker connections alive in its own pools"
        }
        ("timeout", "http-keep-alive") => "[http.timeouts] client covers idle keep-alive connections",
        ("timeout", "client") => "MySQL clients may stay idle (pooled PHP connections); a stalled packet is cut after mysql.client_read_timeout",
        ("timeout", "tunnel") => "no tunnel timeout in sqlproxy",
        ("retries", _) => "MySQL reads are retried on the master only if no byte reached the client; writes never",
        ("balance", _) => "reads are split by node weight over the healthy nodes",
        ("timeout", _) => "no imported proxy uses it",
        ("mode", _) => "implied: sqlproxy's MySQL side is TCP, its balancer HTTP",
        _ => "no sqlproxy equivalent",
    }
}

/// An HAProxy time (`5000` = ms, `2s`, `1m`, `100us`...).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "" | "ms" => n,
        "us" => return Some(Duration::from_micros(n)),
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The word `i` of `d` as a time; an error names the line.
pub fn duration_at(d: &Directive, i: usize) -> Result<Duration, ImportError> {
    let text = d.word(i).unwrap_or("");
    parse_duration(text).ok_or_else(|| bad(d, "a time (5000, 2s, 1m)", text))
}

/// The word `i` of `d` as a number; an error names the line.
pub fn number_at<T: std::str::FromStr>(d: &Directive, i: usize) -> Result<T, ImportError> {
    let text = d.word(i).unwrap_or("");
    text.parse().map_err(|_| bad(d, "a number", text))
}

pub fn bad(d: &Directive, expected: &'static str, value: &str) -> ImportError {
    ImportError::BadValue {
        line: d.line,
        keyword: d.keyword().to_string(),
        expected,
        value: value.to_string(),
    }
}

/// A duration the way config/ha.toml writes them: the largest unit that divides it.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "1ms".into();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A `bind` address as a socket address: `:80`, `*:80`, `0.0.0.0:80`,
/// `ipv4@10.0.0.1:80`, `[::]:80`, `localhost:80`. `None` for what sqlproxy
/// cannot listen on (unix sockets, port ranges, `${VAR}`, other host names).
pub fn listen_addr(bind: &str) -> Option<SocketAddr> {
    let first = bind.split(',').next()?;
    let addr = first
        .split_once('@')
        .map_or(first, |(family, rest)| match family {
            "ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6" => rest,
            _ => "",
        });
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" | "*" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h,
    };
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// The first `bind` of `front` (or the address on a `listen` header line).
pub fn bind<'a>(
    m: &mut Mapper<'a>,
    front: &Proxy<'a>,
) -> Option<(Option<SocketAddr>, String, usize)> {
    if let Some(d) = front.section.find(&["bind"]) {
        m.use_line(d.line);
        let addr = d.word(1).unwrap_or("");
        for extra in front.section.all(&["bind"]).skip(1) {
            m.not_mapped(
                extra.line,
                extra.text(),
                "sqlproxy listens on one address per service",
            );
        }
        if d.words.len() > 2 {
            m.not_mapped(
                d.line,
                d.words[2..].join(" "),
                "bind options (TLS, interface, backlog...) are not mapped",
            );
        }
        return Some((listen_addr(addr), d.text(), d.line));
    }
    let addr = front.section.args.first()?;
    Some((
        listen_addr(addr),
        format!("listen {} {addr}", front.name()),
        front.section.line,
    ))
}

/// A `server` address as sqlproxy's `host:port`, with `default_port` when
/// HAProxy's has none. `None` when it holds `${VAR}` or a port range.
pub fn server_addr(addr: &str, default_port: u16) -> Option<String> {
    if addr.contains('$') || addr.is_empty() {
        return None;
    }
    let addr = addr.split_once('@').map_or(addr, |(_, rest)| rest);
    let bracketed = addr.starts_with('[');
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (bracketed || !host.contains(':')) => {
            let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
            Some(format!("{host}:{port}"))
        }
        _ if addr.contains(':') && !bracketed => Some(format!("[{addr}]:{default_port}")),
        _ => Some(format!("{addr}:{default_port}")),
    }
}

/// The whole mapping: MySQL tables, HTTP tables, admin and metrics, then
/// everything left over.
pub fn map(cfg: &HaproxyConfig, source: &str) -> Result<Output, ImportError> {
    let mut m = Mapper::new(cfg);
    let mut out = Output {
        source: source.to_string(),
        ..Output::default()
    };
    super::mysql::map(&mut m, &mut out)?;
    super::http::map(&mut m, &mut out)?;
    admin_and_metrics(&mut m, &mut out);
    out.unmapped = m.finish();
    Ok(out)
}

/// HAProxy's admin socket becomes the admin SQL port (loopback only, with a
/// password to set); the Prometheus endpoint is always on, on loopback.
fn admin_and_metrics(m: &mut Mapper<'_>, out: &mut Output) {
    let socket = m.cfg.global().and_then(|g| g.find(&["stats", "socket"]));
    if let Some(d) = socket {
        m.use_line(d.line);
        let mut admin = Table::new("admin");
        admin
            .comment(format!(
                "HAProxy's `{}` (line {}): the admin SQL port instead,",
                d.text(),
                d.line
            ))
            .comment("`mariadb -h127.0.0.1 -P6032 -uadmin -p`: SHOW BACKENDS, SET BACKEND, SWITCHOVER TO...")
            .set("enabled", true, "")
            .set("listen", "127.0.0.1:6032", "Loopback only.")
            .set("user", "admin", "")
            .set(
                "password",
                crate::config::EXAMPLE_PASSWORD,
                "Set a real one, better from the environment: SQLPROXY_ADMIN__PASSWORD=...",
            );
        out.tables.push(admin);
    }
    let mut metrics = Table::new("metrics");
    metrics
        .comment("Prometheus metrics (new; HAProxy had none here): the Grafana dashboard and")
        .comment("alert rules in /usr/share/sqlproxy read them.")
        .set("enabled", true, "")
        .set("listen", "127.0.0.1:9104", "");
    out.tables.push(metrics);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_haproxy() {
        assert_eq!(parse_duration("5000"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(human(Duration::from_millis(50_000)), "50s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn bind_addresses() {
        let a = |s: &str| listen_addr(s).map(|a| a.to_string());
        assert_eq!(a(":80").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(a("*:3306").as_deref(), Some("0.0.0.0:3306"));
        assert_eq!(
            a("10.0.0.5:3306,10.0.0.6:3306").as_deref(),
            Some("10.0.0.5:3306")
        );
        assert_eq!(a("ipv4@127.0.0.1:80").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(a("[::]:443").as_deref(), Some("[::]:443"));
        assert_eq!(a("127.0.0.1:${PORT}"), None);
        assert_eq!(a("unix@/run/x.sock"), None);
        assert_eq!(a("0.0.0.0:8000-8010"), None);
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            server_addr("10.0.0.1:3306", 3306).as_deref(),
            Some("10.0.0.1:3306")
        );
        assert_eq!(server_addr("db1", 3306).as_deref(), Some("db1:3306"));
        assert_eq!(
            server_addr("[fe80::1]:80", 80).as_deref(),
            Some("[fe80::1]:80")
        );
        assert_eq!(server_addr("fe80::1", 80).as_deref(), Some("[fe80::1]:80"));
        assert_eq!(server_addr("127.0.0.1:${CN1_PORT}", 3306), None);
    }
}
