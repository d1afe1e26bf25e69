//! The cleartext listener of `[http.tls] redirect_from`: every request gets
//! a redirect to the same host, path and query over HTTPS, on the
//! balancer's port (left out when it is 443). Nothing reaches a worker.
//! HAProxy's `http-request redirect scheme https`, with the status chosen
//! so that a form's POST is not turned into a GET on the way.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::error::{full, RespBody};

/// The port browsers assume for `https://`.
const HTTPS_DEFAULT_PORT: u16 = 443;

/// The redirect for `req`: 301 for GET and HEAD (understood and cached by
/// every client), 308 for the rest (a client must repeat the same method
/// and body, which 301 allows it to turn into a GET). 400 without a host.
pub fn respond<B>(req: &Request<B>, https_port: u16) -> Response<RespBody> {
    let Some(location) = location(req, https_port) else {
        let mut r = Response::new(full(
            "a request without a valid Host cannot be redirected\n",
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::LOCATION, location);
    r
}

/// `https://host[:port]/path?query` from the request's `Host` (or an
/// HTTP/2 request's authority); the port the client used is dropped.
fn location<B>(req: &Request<B>, https_port: u16) -> Option<HeaderValue> {
    let authority = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?.parse::<http::uri::Authority>().ok()?,
        None => req.uri().authority()?.clone(),
    };
    // `Authority` refuses user info and anything but a host and a port, so
    // the host cannot smuggle a path or another scheme into the location.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    let url = match https_port {
        HTTPS_DEFAULT_PORT => format!("https://{}{path}", authority.host()),
        p => format!("https://{}:{p}{path}", authority.host()),
    };
    HeaderValue::from_str(&url).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(method: Method, uri: &str, host: Option<&str>, port: u16) -> (u16, String) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        let r = respond(&b.body(()).unwrap(), port);
        let loc = r
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status().as_u16(), loc)
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        use Method as M;
        for (method, uri, host, port, want) in [
            (
                M::GET,
                "/a?b=1",
                Some("shop.example"),
                443,
                (301, "https://shop.example/a?b=1"),
            ),
            (
                M::GET,
                "/",
                Some("shop.example:8080"),
                443,
                (301, "https://shop.example/"),
            ),
            (
                M::HEAD,
                "/x",
                Some("shop.example"),
                8443,
                (301, "https://shop.example:8443/x"),
            ),
            (
                M::POST,
                "/cart",
                Some("shop.example"),
                443,
                (308, "https://shop.example/cart"),
            ),
            (
                M::GET,
                "/v6",
                Some("[::1]:8080"),
                8443,
                (301, "https://[::1]:8443/v6"),
            ),
            (
                M::GET,
                "http://h2.example/p",
                None,
                443,
                (301, "https://h2.example/p"),
            ),
            (M::GET, "/", None, 443, (400, "")),
            (M::GET, "/", Some("evil.example/x"), 443, (400, "")),
            (M::GET, "/", Some("user@evil.example"), 443, (400, "")),
            (M::GET, "/", Some(""), 443, (400, "")),
        ] {
            let (status, loc) = redirect(method.clone(), uri, host, port);
            assert_eq!((status, loc.as_str()), want, "{method} {uri} {host:?}");
        }
    }
}
