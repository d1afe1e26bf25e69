//! Header rewriting between client and worker: hop-by-hop headers removed
//! per RFC 9110 §7.6.1 (plus `Keep-Alive`, `Proxy-Connection`, `TE`,
//! `Transfer-Encoding`, `Upgrade` unless the request upgrades to WebSocket,
//! the only protocol tunnelled), the
//! `X-Forwarded-For/-Proto/-Host` headers PrestaShop builds URLs from, `Via`
//! on both directions, and the sticky cookie (read, stripped, inserted).
//! Pure functions over `http` types, no I/O. In the usual case (no list
//! header to extend) nothing here allocates: `Via` values are static and
//! the client's `X-Forwarded-For` item is made once per connection.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::{request, response, Method, Uri, Version};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Methods RFC 9110 §9.2.2 calls idempotent; only these may be replayed.
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// An HTTP/1.1 request asking to switch to WebSocket, the one protocol the
/// balancer tunnels (as HAProxy does): `Connection: upgrade` and a
/// `websocket` token in `Upgrade`, in any case. Any other protocol (`h2c`,
/// a TLS upgrade, ...) is not asked of the worker: its `Upgrade` goes with
/// the other hop-by-hop headers and the request is served as a plain one,
/// which RFC 9110 §7.8 lets a server do. A worker that switched to h2c
/// would otherwise leave a tunnel the balancer cannot see into.
pub fn is_upgrade_request(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && connection_has(headers, "upgrade")
        && upgrade_tokens(headers).any(is_websocket)
}

/// The protocols `Upgrade` lists (`name[/version]`), in order.
fn upgrade_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn is_websocket(token: &str) -> bool {
    let name = token.split_once('/').map_or(token, |(n, _)| n);
    name.trim().eq_ignore_ascii_case("websocket")
}

/// Keeps only the WebSocket protocols in `Upgrade` (`websocket, h2c` →
/// `websocket`): the worker must not pick a protocol we do not tunnel.
fn keep_websocket_only(headers: &mut HeaderMap) {
    if upgrade_tokens(headers).all(is_websocket) {
        return;
    }
    let kept: Vec<&str> = upgrade_tokens(headers)
        .filter(|t| is_websocket(t))
        .collect();
    // Tokens of a valid value joined by ", ": cannot fail.
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        headers.insert(header::UPGRADE, v);
    }
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token))
}

/// A header of the fixed hop-by-hop set (the ones `Connection` names come
/// on top, and only with a `Connection` header).
fn is_hop_by_hop(n: &HeaderName) -> bool {
    *n == header::CONNECTION
        || *n == header::TE
        || *n == header::TRANSFER_ENCODING
        || *n == header::UPGRADE
        || *n == KEEP_ALIVE
        || *n == PROXY_CONNECTION
}

/// Removes `Connection`, the headers it names and the fixed hop-by-hop set.
/// With `keep_upgrade`, `Upgrade` survives and `Connection: upgrade` is set.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the few headers a message has, instead of a hashed
    // removal per hop-by-hop name: most responses have none of them.
    if headers.keys().any(is_hop_by_hop) {
        remove_hop_by_hop(headers, keep_upgrade);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(n);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

fn via_value(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_10 => "1.0 sqlproxy",
        Version::HTTP_2 => "2 sqlproxy",
        _ => "1.1 sqlproxy",
    })
}

/// `ip` as an `X-Forwarded-For` item, made once per client connection; its
/// bytes are shared, so each request's copy is a reference count.
pub fn forwarded_for(ip: IpAddr) -> HeaderValue {
    let v = HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()));
    // An address's text is always a valid header value.
    v.unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Appends `item` to the list header `name`; several lines of it are
/// merged into one, in order. One hash of the name (`entry`), and no
/// allocation in the usual case of a header the client did not send.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: &HeaderValue) {
    let mut prev = match headers.try_entry(name) {
        Ok(Entry::Occupied(o)) => o,
        Ok(Entry::Vacant(v)) => {
            // Fails only past the map's maximum size; the header is then
            // left out, as it would be by any other insert.
            v.try_insert(item.clone()).ok();
            return;
        }
        Err(_) => return,
    };
    let mut joined: Vec<u8> = Vec::new();
    for v in prev.iter().filter(|v| !v.is_empty()) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    let value = if joined.is_empty() {
        item.clone()
    } else {
        joined.extend_from_slice(item.as_bytes());
        // Made of valid values and ", ": cannot fail; keep ours if it does.
        HeaderValue::from_maybe_shared(Bytes::from(joined)).unwrap_or_else(|_| item.clone())
    };
    prev.insert(value);
}

/// What the request rewriting needs to know about the client connection.
pub struct ClientInfo<'a> {
    /// The client's address, from [`forwarded_for`].
    pub forwarded_for: &'a HeaderValue,
    /// `http` or `https`: the client's connection to the balancer.
    pub proto: &'static str,
    /// The client is a trusted proxy: its `X-Forwarded-*` headers are kept
    /// (and `X-Forwarded-For` extended); otherwise they are replaced.
    pub trust_forwarded: bool,
    pub sticky_cookie: Option<&'a str>,
}

/// Turns a client request head into the head sent to a worker (HTTP/1.1,
/// origin-form URI, `Host` kept). `upgrade`: [`is_upgrade_request`].
pub fn prepare_request(parts: &mut request::Parts, client: &ClientInfo<'_>, upgrade: bool) {
    let h = &mut parts.headers;
    strip_hop_by_hop(h, upgrade);
    if upgrade {
        keep_websocket_only(h);
    }
    // Room for the four headers added below at once: the map hyper parsed
    // is sized for the client's headers, and would otherwise grow twice.
    h.try_reserve(4).ok();
    // HTTP/2 carries the host in :authority; workers speak HTTP/1.1.
    if !h.contains_key(header::HOST) {
        if let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            h.insert(header::HOST, v);
        }
    }
    if client.trust_forwarded {
        append_list(h, X_FORWARDED_FOR, client.forwarded_for);
    } else {
        // A client could otherwise choose the first entry, the one
        // PrestaShop takes as the visitor's address.
        h.insert(X_FORWARDED_FOR, client.forwarded_for.clone());
    }
    if !(client.trust_forwarded && h.contains_key(&X_FORWARDED_PROTO)) {
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    }
    if !(client.trust_forwarded && h.contains_key(&X_FORWARDED_HOST)) {
        match h.get(header::HOST).cloned() {
            Some(host) => {
                h.insert(X_FORWARDED_HOST, host);
            }
            None => {
                h.remove(&X_FORWARDED_HOST);
            }
        }
    }
    append_list(h, header::VIA, &via_value(parts.version));
    if let Some(name) = client.sticky_cookie {
        strip_cookie(h, name);
    }
    // HTTP/1 clients send the origin form already; HTTP/2 ones (and
    // absolute-form HTTP/1 requests) are cut down to it.
    // Rebuilt from `path()` and `query()`: `http://host?q` has `?q` as its
    // path-and-query, which does not parse alone. The authority form
    // (`host:port`) has no path at all.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = match parts.uri.path() {
            "" => "/",
            p => p,
        };
        let origin = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        if let Ok(u) = origin.parse::<Uri>() {
            parts.uri = u;
        }
    }
    parts.version = Version::HTTP_11;
}

/// Rewrites a worker's response head for the client.
pub fn prepare_response(
    parts: &mut response::Parts,
    upgraded: bool,
    set_cookie: Option<HeaderValue>,
) {
    strip_hop_by_hop(&mut parts.headers, upgraded);
    append_list(&mut parts.headers, header::VIA, &via_value(parts.version));
    if let Some(c) = set_cookie {
        parts.headers.append(header::SET_COOKIE, c);
    }
}

/// Value of cookie `name` in the request, if present.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Removes cookie `name` from every `Cookie` header (HAProxy's `indirect`:
/// the worker never sees the balancer's cookie).
fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    if cookie_value(headers, name).is_none() {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|p| p.split_once('=').is_none_or(|(k, _)| k != name))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.append(header::COOKIE, v);
        }
    }
}

/// `Set-Cookie` pinning the client to `worker`.
pub fn sticky_set_cookie(cookie: &str, worker: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{cookie}={worker}; Path=/; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(req: Request<()>) -> request::Parts {
        req.into_parts().0
    }

    fn info() -> ClientInfo<'static> {
        static XFF: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
        ClientInfo {
            forwarded_for: XFF.get_or_init(|| forwarded_for("192.0.2.7".parse().unwrap())),
            proto: "http",
            trust_forwarded: false,
            sticky_cookie: Some("SERVERID"),
        }
    }

    #[test]
    fn each_hop_by_hop_header_goes_even_alone() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h, false);
            assert!(!h.contains_key(name), "{name} must be stripped");
            assert_eq!(h.len(), 1, "end-to-end headers stay");
        }
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn request_rewrite() {
        let mut p = parts(
            Request::get("http://shop.example/index.php?id=3")
                .header("connection", "keep-alive, x-secret")
                .header("x-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("te", "trailers")
                .header("x-forwarded-for", "10.0.0.1")
                .header("x-forwarded-proto", "https")
                .header("cookie", "a=1; SERVERID=wa2; b=2")
                .header("upgrade", "h2c")
                .body(())
                .unwrap(),
        );
        prepare_request(&mut p, &info(), false);
        let h = &p.headers;
        for gone in ["connection", "x-secret", "keep-alive", "te", "upgrade"] {
            assert!(!h.contains_key(gone), "{gone} must be stripped");
        }
        assert_eq!(
            h["x-forwarded-for"], "192.0.2.7",
            "untrusted client value replaced"
        );
        assert_eq!(
            h["x-forwarded-proto"], "http",
            "untrusted client value overwritten"
        );
        assert_eq!(h["host"], "shop.example");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["via"], "1.1 sqlproxy");
        assert_eq!(h["cookie"], "a=1; b=2");
        assert_eq!(p.uri, "/index.php?id=3");
    }

    #[test]
    fn absolute_form_without_a_path_becomes_origin_form() {
        // Found by the http_headers fuzz target: `http` keeps the path-and-query
        // of `http://host?query` as `?query`, which is no URI on its own, and the
        // absolute form went to the worker unchanged.
        let mut p = parts(Request::get("http://shop.example?id=3").body(()).unwrap());
        prepare_request(&mut p, &info(), false);
        assert_eq!(p.uri, "/?id=3");
        assert_eq!(p.headers["host"], "shop.example");
        for target in ["http://shop.example", "shop.example:80"] {
            let mut p = parts(Request::get(target).body(()).unwrap());
            prepare_request(&mut p, &info(), false);
            assert_eq!(p.uri, "/", "{target}");
        }
    }

    #[test]
    fn list_headers_merge_every_line_in_order() {
        let mut p = parts(
            Request::get("/")
                .header("host", "shop")
                .header("x-forwarded-for", "10.0.0.1")
                .header("x-forwarded-for", "10.0.0.2, 10.0.0.3")
                .header("via", "1.1 cdn")
                .body(())
                .unwrap(),
        );
        let trusted = ClientInfo {
            trust_forwarded: true,
            ..info()
        };
        prepare_request(&mut p, &trusted, false);
        assert_eq!(
            p.headers["x-forwarded-for"],
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"
        );
        assert_eq!(p.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(p.headers["via"], "1.1 cdn, 1.1 sqlproxy");
        assert_eq!(p.uri, "/", "origin form kept as it is");
        let v6 = forwarded_for("2001:db8::1".parse().unwrap());
        assert_eq!(v6, "2001:db8::1");
    }

    #[test]
    fn trusted_forwarded_headers_are_kept() {
        let mut p = parts(
            Request::get("/")
                .header("host", "shop")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "www.shop.example")
                .body(())
                .unwrap(),
        );
        let mut i = info();
        i.trust_forwarded = true;
        prepare_request(&mut p, &i, false);
        assert_eq!(p.headers["x-forwarded-proto"], "https");
        assert_eq!(p.headers["x-forwarded-host"], "www.shop.example");
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        let check = |connection: &str, upgrade: &str, version: Version| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONNECTION,
                HeaderValue::from_str(connection).unwrap(),
            );
            h.insert(header::UPGRADE, HeaderValue::from_str(upgrade).unwrap());
            is_upgrade_request(version, &h)
        };
        let v11 = Version::HTTP_11;
        for (connection, upgrade, want) in [
            ("Upgrade", "websocket", true),
            ("keep-alive, Upgrade", "WebSocket", true),
            ("upgrade", "websocket/13", true),
            ("Upgrade", "h2c, websocket", true),
            ("Upgrade, HTTP2-Settings", "h2c", false),
            ("Upgrade", "TLS/1.2", false),
            ("Upgrade", "echo", false),
            ("keep-alive", "websocket", false),
            ("Upgrade", "websockets", false),
        ] {
            assert_eq!(
                check(connection, upgrade, v11),
                want,
                "Connection: {connection}, Upgrade: {upgrade}"
            );
        }
        assert!(!check("Upgrade", "websocket", Version::HTTP_10));
        let mut p = parts(
            Request::get("/ws")
                .header("connection", "Upgrade")
                .header("upgrade", "h2c, WebSocket/13")
                .body(())
                .unwrap(),
        );
        assert!(is_upgrade_request(p.version, &p.headers));
        prepare_request(&mut p, &info(), true);
        assert_eq!(p.headers["upgrade"], "WebSocket/13", "h2c is not offered");
    }

    #[test]
    fn upgrade_survives_when_upgrading() {
        let mut p = parts(
            Request::get("/ws")
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .body(())
                .unwrap(),
        );
        assert!(is_upgrade_request(p.version, &p.headers));
        prepare_request(&mut p, &info(), true);
        assert_eq!(p.headers["upgrade"], "websocket");
        assert_eq!(p.headers["connection"], "upgrade");
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("SERVERID=wa1"));
        h.append("cookie", HeaderValue::from_static("PHPSESSID=x"));
        assert_eq!(cookie_value(&h, "SERVERID"), Some("wa1"));
        strip_cookie(&mut h, "SERVERID");
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "PHPSESSID=x");
        assert!(!is_idempotent(&Method::POST));
        assert!(is_idempotent(&Method::GET));
    }
}
