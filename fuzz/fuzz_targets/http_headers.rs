//! The HTTP balancer's header rewriting (`http::headers`) on request and
//! response heads built from the input with the `http` crate (names and
//! values `http` refuses are left out, as hyper would refuse them).
//!
//! The result is checked header by header against what the module doc
//! promises: hop-by-hop headers and those `Connection` names are gone
//! (`Upgrade` kept, its WebSocket protocols only, and `Connection: upgrade`
//! set when upgrading), one `X-Forwarded-For` and one `Via` line with
//! every earlier item in order and ours last, `X-Forwarded-Proto/-Host`
//! ours unless trusted, `Host` kept or taken from the URI, the sticky
//! cookie gone and every other cookie kept, an origin-form URI, and no
//! other header touched.
//!
//! Input: `flags ip(16)` then lines: the URI, the sticky cookie's name, then
//! `name:value` headers. A one-byte name stands for one of `NAMES`.
#![no_main]

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use libfuzzer_sys::fuzz_target;
use sqlproxy::http::headers::{
    cookie_value, forwarded_for, is_upgrade_request, prepare_request, prepare_response,
    sticky_set_cookie, strip_hop_by_hop, ClientInfo,
};

/// The headers the rewriting treats specially, easy for the fuzzer to reach.
const NAMES: &[&str] = &[
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "via",
    "cookie",
    "set-cookie",
    "content-type",
    "x-secret",
];

const FIXED_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

type Lines = Vec<(HeaderName, HeaderValue)>;

fn values<'a>(lines: &'a Lines, name: &str) -> Vec<&'a HeaderValue> {
    lines
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .collect()
}

fn got(h: &HeaderMap, name: &str) -> Vec<HeaderValue> {
    h.get_all(name).iter().cloned().collect()
}

/// What `strip_hop_by_hop` must leave of `lines`.
fn without_hop_by_hop(lines: &Lines, keep_upgrade: bool) -> Lines {
    let named: Vec<HeaderName> = values(lines, "connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    lines
        .iter()
        .filter(|(n, _)| {
            let upgrade_kept = keep_upgrade && n == "upgrade";
            upgrade_kept || !(FIXED_HOP.contains(&n.as_str()) || named.contains(n))
        })
        .cloned()
        .collect()
}

/// A list header: the earlier non-empty items, then `ours`, on one line.
fn merged(before: &[&HeaderValue], ours: &HeaderValue) -> Vec<HeaderValue> {
    let mut joined: Vec<u8> = Vec::new();
    for v in before.iter().filter(|v| !v.is_empty()) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(ours.as_bytes());
    vec![HeaderValue::from_bytes(&joined).expect("valid values joined")]
}

/// The `name=value` pieces of the `Cookie` lines that are text, in order.
fn cookie_pieces<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> Vec<String> {
    lines
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn via(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_10 => "1.0 sqlproxy",
        Version::HTTP_2 => "2 sqlproxy",
        _ => "1.1 sqlproxy",
    })
}

/// Every header name of the input, the output and the managed set.
fn all_names(lines: &Lines, out: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = lines.iter().map(|(n, _)| n.clone()).collect();
    names.extend(out.keys().cloned());
    names.extend(NAMES.iter().map(|n| HeaderName::from_static(n)));
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

fn check_request(
    lines: &Lines,
    uri: Uri,
    flags: u8,
    version: Version,
    ip: IpAddr,
    cookie: Option<&str>,
) {
    let upgrade = flags & 2 != 0;
    let trust = flags & 4 != 0;
    let mut req = Request::builder()
        .method(if flags & 0x80 != 0 {
            Method::POST
        } else {
            Method::GET
        })
        .uri(uri.clone())
        .version(version)
        .body(())
        .expect("request from valid parts");
    for (n, v) in lines {
        req.headers_mut().append(n.clone(), v.clone());
    }
    let is_upgrade = is_upgrade_request(version, req.headers());
    let conn_upgrade = values(lines, "connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    assert_eq!(
        is_upgrade,
        version == Version::HTTP_11
            && conn_upgrade
            && upgrade_tokens(lines).iter().any(|t| websocket(t))
    );
    let (mut parts, ()) = req.into_parts();
    let xff = forwarded_for(ip);
    let client = ClientInfo {
        forwarded_for: &xff,
        proto: "http",
        trust_forwarded: trust,
        sticky_cookie: cookie,
    };
    prepare_request(&mut parts, &client, upgrade);
    let h = &parts.headers;

    let kept = without_hop_by_hop(lines, upgrade);
    let host: Vec<HeaderValue> = match values(&kept, "host") {
        v if !v.is_empty() => v.into_iter().cloned().collect(),
        _ => uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .into_iter()
            .collect(),
    };
    for name in all_names(lines, h) {
        let before = values(&kept, name.as_str());
        let was: Vec<HeaderValue> = before.iter().map(|v| (*v).clone()).collect();
        let want: Vec<HeaderValue> = match name.as_str() {
            "connection" if upgrade => vec![HeaderValue::from_static("upgrade")],
            // Only WebSocket is tunnelled: other protocols are dropped.
            "upgrade" if upgrade && !upgrade_tokens(lines).iter().all(|t| websocket(t)) => {
                let kept: Vec<&str> = upgrade_tokens(lines)
                    .into_iter()
                    .filter(|t| websocket(t))
                    .collect();
                vec![HeaderValue::from_str(&kept.join(", ")).expect("tokens of valid values")]
            }
            "host" => host.clone(),
            // A trusted proxy's list is extended; anyone else's replaced.
            "x-forwarded-for" if trust => merged(&before, &xff),
            "x-forwarded-for" => vec![xff.clone()],
            "x-forwarded-proto" if !(trust && !before.is_empty()) => {
                vec![HeaderValue::from_static("http")]
            }
            "x-forwarded-host" if !(trust && !before.is_empty()) => {
                host.first().cloned().into_iter().collect()
            }
            "via" => merged(&before, &via(version)),
            "cookie" => {
                let Some(c) = cookie.filter(|c| cookie_value_in(&before, c)) else {
                    assert_eq!(got(h, "cookie"), was, "cookies untouched");
                    continue;
                };
                assert_eq!(cookie_value(h, c), None, "sticky cookie stripped");
                let others: Vec<String> = cookie_pieces(before.iter().copied())
                    .into_iter()
                    .filter(|p| p.split_once('=').is_none_or(|(k, _)| k != c))
                    .collect();
                assert_eq!(cookie_pieces(h.get_all("cookie").iter()), others);
                continue;
            }
            _ => was,
        };
        assert_eq!(got(h, name.as_str()), want, "{name}");
    }
    assert_eq!(parts.version, Version::HTTP_11);
    if uri.scheme().is_some() || uri.authority().is_some() {
        assert!(
            parts.uri.scheme().is_none() && parts.uri.authority().is_none(),
            "{}",
            parts.uri
        );
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        assert_eq!(parts.uri.path(), path);
        assert_eq!(parts.uri.query(), uri.query());
    } else {
        assert_eq!(parts.uri, uri);
    }
}

/// The protocols the client's `Upgrade` lines list, in order.
fn upgrade_tokens(lines: &Lines) -> Vec<&str> {
    values(lines, "upgrade")
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// `websocket` or `websocket/<version>`, in any case.
fn websocket(token: &str) -> bool {
    let name = token.split('/').next().unwrap_or_default();
    name.trim().eq_ignore_ascii_case("websocket")
}

fn cookie_value_in(lines: &[&HeaderValue], name: &str) -> bool {
    let mut h = HeaderMap::new();
    for v in lines {
        h.append(http::header::COOKIE, (*v).clone());
    }
    cookie_value(&h, name).is_some()
}

fn check_response(lines: &Lines, flags: u8, version: Version, cookie: Option<&str>) {
    let upgraded = flags & 2 != 0;
    let mut resp = Response::builder()
        .version(version)
        .body(())
        .expect("response from valid parts");
    for (n, v) in lines {
        resp.headers_mut().append(n.clone(), v.clone());
    }
    let (mut parts, ()) = resp.into_parts();
    let set_cookie = cookie.and_then(|c| sticky_set_cookie(c, "w1"));
    prepare_response(&mut parts, upgraded, set_cookie.clone());
    let h = &parts.headers;
    let kept = without_hop_by_hop(lines, upgraded);
    for name in all_names(lines, h) {
        let before = values(&kept, name.as_str());
        let mut was: Vec<HeaderValue> = before.iter().map(|v| (*v).clone()).collect();
        let want = match name.as_str() {
            "connection" if upgraded => vec![HeaderValue::from_static("upgrade")],
            "via" => merged(&before, &via(version)),
            "set-cookie" => {
                was.extend(set_cookie.clone());
                was
            }
            _ => was,
        };
        assert_eq!(got(h, name.as_str()), want, "{name}");
    }
    // Stripping twice changes nothing more.
    let mut again = h.clone();
    strip_hop_by_hop(&mut again, upgraded);
    assert_eq!(&again, h);
}

fn check_cookie_helpers(name: &str) {
    let Some(v) = sticky_set_cookie(name, "w1") else {
        return;
    };
    assert!(v.as_bytes().starts_with(format!("{name}=w1;").as_bytes()));
    // What a browser sends back finds the worker again, for the names the
    // config accepts (`http.sticky.cookie` is a token of letters, digits,
    // `-`, `_`, `.`). Others need not: `cookie_value` reads only ASCII
    // lines, and `;`, `=` or blanks would split the pair.
    let token = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if name.is_empty() || !name.bytes().all(token) {
        return;
    }
    let sent = HeaderValue::from_str(&format!("{name}=w1")).expect("a token and w1");
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, sent);
    assert_eq!(cookie_value(&h, name), Some("w1"));
}

fuzz_target!(|data: &[u8]| {
    let Some((head, text)) = data.split_first_chunk::<17>() else {
        return;
    };
    let flags = head[0];
    let ip = if flags & 0x40 != 0 {
        IpAddr::from(<[u8; 16]>::try_from(&head[1..17]).expect("16 bytes"))
    } else {
        IpAddr::from(<[u8; 4]>::try_from(&head[1..5]).expect("4 bytes"))
    };
    let xff = forwarded_for(ip);
    assert_eq!(
        xff.to_str().ok().and_then(|s| s.parse::<IpAddr>().ok()),
        Some(ip)
    );

    let mut split = text.split(|&b| b == b'\n');
    let uri = split
        .next()
        .and_then(|u| Uri::try_from(u).ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let cookie = split.next().and_then(|c| std::str::from_utf8(c).ok());
    let cookie = cookie.filter(|_| flags & 8 != 0);
    let lines: Lines = split
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            let name = match name {
                [b] => HeaderName::from_static(NAMES[*b as usize % NAMES.len()]),
                _ => HeaderName::from_bytes(name).ok()?,
            };
            Some((name, HeaderValue::from_bytes(value).ok()?))
        })
        .collect();
    let version = match (flags >> 4) & 3 {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        2 => Version::HTTP_2,
        _ => Version::HTTP_09,
    };
    if let Some(c) = cookie {
        check_cookie_helpers(c);
    }
    if flags & 1 != 0 {
        check_response(&lines, flags, version, cookie);
    } else {
        check_request(&lines, uri, flags, version, ip, cookie);
    }
});
