//! The HTTP side: the `frontend` in HTTP mode and its `default_backend` (or
//! a `listen` in HTTP mode with servers) become `[http]` with its timeouts,
//! health check (`option httpchk`, `http-check`, `inter/rise/fall`), stats
//! page (`stats uri/auth`), stickiness (`cookie`) and `[[http.backends]]`.

use super::map::{bind, duration_at, human, number_at, server_addr, Mapper, Proxy};
use super::parse::{Directive, SectionKind};
use super::server::{clean_name, servers};
use super::write::{Output, Table};
use super::ImportError;

/// HTTP's port, for workers written without one.
const HTTP_PORT: u16 = 80;

/// Server options the HTTP mapping reads.
const MAPPED: &[&str] = &[
    "weight", "inter", "rise", "fall", "check", "no-check", "maxconn", "disabled", "enabled",
];

fn find<'a>(m: &Mapper<'a>) -> Option<(Proxy<'a>, Proxy<'a>)> {
    for p in m.proxies() {
        if p.mode() != "http" {
            continue;
        }
        match p.section.kind {
            SectionKind::Listen if p.section.find(&["server"]).is_some() => return Some((p, p)),
            SectionKind::Frontend => {
                let backend = p
                    .lookup(&["default_backend"])
                    .and_then(|d| d.word(1))
                    .and_then(|name| m.cfg.backend(name))
                    .map(|(i, _)| Proxy::at(m.cfg, i))
                    .filter(|b| b.section.find(&["server"]).is_some());
                if let Some(b) = backend {
                    return Some((p, b));
                }
            }
            _ => {}
        }
    }
    None
}

/// `(key, the directive that set it)` for a timeout found on `proxy`.
fn timeout<'a>(
    m: &mut Mapper<'a>,
    proxy: &Proxy<'a>,
    haproxy: &str,
) -> Result<Option<(String, &'a Directive)>, ImportError> {
    match m.take(proxy, &["timeout", haproxy]) {
        Some(d) => Ok(Some((human(duration_at(d, 2)?), d))),
        None => Ok(None),
    }
}

pub fn map(m: &mut Mapper<'_>, out: &mut Output) -> Result<(), ImportError> {
    let Some((front, back)) = find(m) else {
        return Ok(());
    };
    m.use_line(front.section.line);
    m.use_line(back.section.line);
    m.take(&front, &["mode"]);
    m.take(&back, &["mode"]);
    if let Some(d) = front.section.find(&["default_backend"]) {
        m.use_line(d.line);
    }

    let mut http = Table::new("http");
    http.comment(format!(
        "From HAProxy `{}` (line {}) and `{}` (line {}).",
        front.section.title(),
        front.section.line,
        back.section.title(),
        back.section.line
    ));
    match bind(m, &front) {
        Some((Some(addr), text, line)) => http.set(
            "listen",
            addr.to_string(),
            format!("`{text}` (line {line})"),
        ),
        Some((None, text, line)) => http.set(
            "listen",
            "0.0.0.0:80",
            format!("`{text}` (line {line}) is not an address sqlproxy can listen on: set it"),
        ),
        None => http.set(
            "listen",
            "0.0.0.0:80",
            "HAProxy had no bind line here: set the address",
        ),
    };
    if let Some(d) = m.take(&back, &["balance"]) {
        let (value, note) = match d.word(1).map(str::to_ascii_lowercase).as_deref() {
            Some("roundrobin" | "static-rr") => ("roundrobin", String::new()),
            Some("leastconn") => ("leastconn", String::new()),
            Some(r) if r.starts_with("random") => ("random2", String::new()),
            other => (
                "roundrobin",
                format!(" (`{}` has no sqlproxy equivalent)", other.unwrap_or("")),
            ),
        };
        http.set(
            "balance",
            value,
            format!("`{}` (line {}){note}", d.text(), d.line),
        );
    }
    if let Some(d) = m.take(&back, &["retries"]) {
        let n: u32 = number_at(d, 1)?;
        http.set(
            "retries",
            n,
            format!(
                "`{}` (line {}): spent on the failures http.retry_on lists (conn-failure by default, as `retry-on`)",
                d.text(),
                d.line
            ),
        );
    }
    if let Some(d) = m.take(&back, &["retry-on"]) {
        let (kept, dropped) = retry_on(&d.words[1..]);
        let note = if dropped.is_empty() {
            String::new()
        } else {
            format!(" (no sqlproxy equivalent: {})", dropped.join(" "))
        };
        http.set(
            "retry_on",
            kept,
            format!("`{}` (line {}){note}", d.text(), d.line),
        );
    }
    if let Some(d) = m.take(&back, &["option", "redispatch"]) {
        http.comment(format!(
            "`{}` (line {}): retries always go to another worker.",
            d.text(),
            d.line
        ));
    }
    for p in [&front, &back] {
        if let Some(d) = m.take(p, &["option", "forwardfor"]) {
            http.comment(format!(
                "`{}` (line {}): the balancer always adds X-Forwarded-For/-Proto/-Host.",
                d.text(),
                d.line
            ));
            break;
        }
    }
    let maxconn = match m.take(&front, &["maxconn"]) {
        Some(d) => Some(d),
        None => m
            .cfg
            .global()
            .and_then(|g| g.find(&["maxconn"]))
            .inspect(|d| m.use_line(d.line)),
    };
    if let Some(d) = maxconn {
        let n: u32 = number_at(d, 1)?;
        http.set("maxconn", n, format!("`{}` (line {})", d.text(), d.line));
    }
    out.tables.push(http);

    let mut t = Table::new("http.timeouts");
    for (key, p, haproxy) in [
        ("connect", &back, "connect"),
        ("server", &back, "server"),
        ("client", &front, "client"),
        ("request_header", &front, "http-request"),
        ("queue", &back, "queue"),
    ] {
        if let Some((value, d)) = timeout(m, p, haproxy)? {
            t.set(key, value, format!("`{}` (line {})", d.text(), d.line));
        }
    }
    if !t.entries.is_empty() {
        out.tables.push(t);
    }

    let list = servers(m, &back, MAPPED)?;
    health(m, &back, &list, out)?;
    stats(m, &front, &back, out);
    if let Some(d) = m.take(&back, &["cookie"]) {
        let mut sticky = Table::new("http.sticky");
        sticky.set(
            "cookie",
            d.word(1).unwrap_or("SERVERID"),
            format!(
                "`{}` (line {}); the value is the worker's name",
                d.text(),
                d.line
            ),
        );
        out.tables.push(sticky);
    }
    for (i, s) in list.iter().enumerate() {
        let mut b = Table::element("http.backends");
        b.comment(format!(
            "HAProxy `server {} {}` (line {}).",
            s.name, s.addr, s.line
        ));
        b.set("name", clean_name(&s.name, &format!("wa{}", i + 1)), "");
        match server_addr(&s.addr, HTTP_PORT) {
            Some(a) => b.set("address", a, ""),
            None => b.set(
                "address",
                format!("worker{}.invalid:{HTTP_PORT}", i + 1),
                format!("`{}` is not a host:port: set the worker's address", s.addr),
            ),
        };
        let weight = if s.disabled { 0 } else { s.weight.unwrap_or(1) };
        b.set("weight", weight, "");
        if let Some(n) = s.maxconn {
            b.set("maxconn", u32::try_from(n).unwrap_or(u32::MAX), "");
        }
        out.tables.push(b);
    }
    Ok(())
}

/// `[http.health]` from `option httpchk`, `http-check`, `timeout check` and
/// the servers' `inter/rise/fall`.
fn health<'a>(
    m: &mut Mapper<'a>,
    back: &Proxy<'a>,
    list: &[super::server::Server],
    out: &mut Output,
) -> Result<(), ImportError> {
    let mut t = Table::new("http.health");
    let (mut method, mut path, mut host) = ("GET".to_string(), "/".to_string(), None::<String>);
    if let Some(d) = m.take(back, &["option", "httpchk"]) {
        let args = &d.words[2..];
        match args {
            [] => method = "OPTIONS".into(),
            [uri] => (method, path) = ("OPTIONS".into(), uri.clone()),
            [meth, uri, version @ ..] => {
                (method, path) = (meth.to_ascii_uppercase(), uri.clone());
                host = version
                    .join(" ")
                    .split("\r\n")
                    .find_map(|h| h.strip_prefix("Host:").map(|v| v.trim().to_string()));
            }
        }
        t.comment(format!("HAProxy `{}` (line {}).", d.text(), d.line));
    } else {
        t.comment("HAProxy checked TCP connects only; sqlproxy checks over HTTP: set a path the");
        t.comment("workers answer with expect_status.");
    }
    for d in back.section.all(&["http-check"]) {
        m.use_line(d.line);
        let w: Vec<&str> = d.words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["http-check", "expect", "status", code] => match code.parse::<u16>() {
                Ok(c) => {
                    t.set(
                        "expect_status",
                        u32::from(c),
                        format!("`{}` (line {})", d.text(), d.line),
                    );
                }
                Err(_) => m.not_mapped(d.line, d.text(), "sqlproxy expects one status code"),
            },
            ["http-check", "send", rest @ ..] => {
                let mut i = 0;
                while i + 1 < rest.len() {
                    match rest[i] {
                        "meth" => method = rest[i + 1].to_ascii_uppercase(),
                        "uri" => path = rest[i + 1].to_string(),
                        "hdr" if rest[i + 1].eq_ignore_ascii_case("host") && i + 2 < rest.len() => {
                            host = Some(rest[i + 2].to_string());
                            i += 1;
                        }
                        other => {
                            m.not_mapped(d.line, format!("http-check send {other}"), "not mapped")
                        }
                    }
                    i += 2;
                }
            }
            _ => m.not_mapped(
                d.line,
                d.text(),
                "sqlproxy checks one request and one status",
            ),
        }
    }
    t.set("method", method, "").set("path", path, "");
    if let Some(h) = host {
        t.set("host", h, "");
    }
    if let Some(s) = list.iter().find(|s| s.check).or_else(|| list.first()) {
        let from = format!("server {} (line {})", s.name, s.line);
        if let Some(i) = s.inter {
            t.set("interval", human(i), format!("`inter` of {from}"));
        }
        if let Some(r) = s.rise {
            t.set("rise", r, format!("`rise` of {from}"));
        }
        if let Some(f) = s.fall {
            t.set("fall", f, format!("`fall` of {from}"));
        }
    }
    if let Some((value, d)) = timeout(m, back, "check")? {
        t.set(
            "timeout",
            value,
            format!("`{}` (line {})", d.text(), d.line),
        );
    }
    out.tables.push(t);
    Ok(())
}

/// `[http.stats]` from `stats enable/uri/auth` of the frontend or backend.
fn stats<'a>(m: &mut Mapper<'a>, front: &Proxy<'a>, back: &Proxy<'a>, out: &mut Output) {
    let owner = [front, back]
        .into_iter()
        .find(|p| p.section.find(&["stats"]).is_some());
    let Some(p) = owner else { return };
    let mut t = Table::new("http.stats");
    t.comment(format!(
        "HAProxy's stats page of `{}`, served on the balancer's listener.",
        p.section.title()
    ));
    let mut uri = "/haproxy".to_string();
    let mut auth: Option<(String, String, usize)> = None;
    for d in p.section.all(&["stats"]) {
        m.use_line(d.line);
        match d.word(1).map(str::to_ascii_lowercase).as_deref() {
            Some("enable") => {}
            Some("uri") => {
                let full = d.word(2).unwrap_or("/haproxy?stats");
                uri = full.split('?').next().unwrap_or(full).to_string();
                if uri != full {
                    t.comment(format!(
                        "`{}` (line {}): sqlproxy serves the path {uri}, any query string.",
                        d.text(),
                        d.line
                    ));
                }
            }
            Some("auth") if auth.is_none() => {
                let pair = d.word(2).unwrap_or("");
                if let Some((user, password)) = pair.split_once(':') {
                    auth = Some((user.to_string(), password.to_string(), d.line));
                }
            }
            Some("auth") => m.not_mapped(
                d.line,
                "stats auth (another user)",
                "sqlproxy's stats page has one user",
            ),
            _ => m.not_mapped(
                d.line,
                d.text(),
                "not mapped: the stats page has a fixed look and its own controls",
            ),
        }
    }
    let Some((user, password, line)) = auth else {
        // A page without a password would be open on the balancer's port.
        m.not_mapped(
            p.section.line,
            format!(
                "the stats page of `{}` (no `stats auth`)",
                p.section.title()
            ),
            "sqlproxy's stats page needs a user and password: add [http.stats] uri, user, password",
        );
        return;
    };
    t.set("uri", uri, "");
    t.set("user", user, format!("`stats auth` (line {line})"));
    t.set("password", password, "");
    out.tables.push(t);
}

/// HAProxy's `retry-on` keywords as `http.retry_on` values, and those with
/// no equivalent (response codes, junk or timed-out responses: the balancer
/// never replays a request a worker may have answered).
fn retry_on(words: &[String]) -> (Vec<String>, Vec<String>) {
    let mut kept: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    let mut keep = |k: &str| {
        if !kept.iter().any(|x| x == k) {
            kept.push(k.to_string());
        }
    };
    for w in words {
        match w.to_ascii_lowercase().as_str() {
            "none" => {}
            "conn-failure" => keep("conn-failure"),
            "empty-response" => keep("empty-response"),
            "all-retryable-errors" => {
                keep("conn-failure");
                keep("empty-response");
                dropped.push(format!("{w} beyond conn-failure and empty-response"));
            }
            _ => dropped.push(w.clone()),
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod retry_on_tests {
    use super::retry_on;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn keywords_map_to_what_the_balancer_replays() {
        assert_eq!(
            retry_on(&words("conn-failure empty-response 503")),
            (words("conn-failure empty-response"), words("503"))
        );
        assert_eq!(retry_on(&words("none")), (Vec::new(), Vec::new()));
        let (kept, dropped) = retry_on(&words("all-retryable-errors"));
        assert_eq!(kept, words("conn-failure empty-response"));
        assert_eq!(dropped.len(), 1);
    }
}
