//! Errors of the HTTP balancer. [`HttpError`] is what `bind`/`run` return;
//! [`GatewayError`] is one request's failure, classified by source (client,
//! worker, balancer), and [`GatewayError::into_response`] is the single place
//! that turns it into what the client sees: a status and a small HTML page.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::pool::ConnectError;
use super::upstream::PickError;
use crate::config::HttpConfigError;

pub use super::body::RespBody;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Config(#[from] HttpConfigError),
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot start http event loop {shard}: {source}")]
    EventLoop { shard: usize, source: io::Error },
    /// A `[http.tls]` file or setting that cannot be used; names the key.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Who is to blame for a failed request (logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    Client,
    Worker,
    Balancer,
}

/// Why one request could not be answered by a worker.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    NoWorker(PickError),
    #[error("worker {worker}: {source}")]
    Connect {
        worker: String,
        source: ConnectError,
    },
    #[error("worker {worker}: no response within {secs:.1}s")]
    Timeout { worker: String, secs: f64 },
    #[error("worker {worker}: invalid response: {source}")]
    InvalidResponse {
        worker: String,
        source: hyper::Error,
    },
    #[error("worker {worker}: connection lost before the response: {source}")]
    ConnectionLost {
        worker: String,
        source: hyper::Error,
    },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// `timeouts.request_body` passed before the client sent its whole body.
    #[error("request body not complete within {secs:.1}s")]
    RequestBodyTimeout { secs: f64 },
    #[error("client request body failed: {0}")]
    ClientBody(hyper::Error),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoWorker(_) | GatewayError::Connect { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::InvalidResponse { .. } | GatewayError::ConnectionLost { .. } => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RequestBodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::ClientBody(_) | GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn source_kind(&self) -> ErrorSource {
        match self {
            GatewayError::NoWorker(_) => ErrorSource::Balancer,
            GatewayError::Connect { .. }
            | GatewayError::Timeout { .. }
            | GatewayError::InvalidResponse { .. }
            | GatewayError::ConnectionLost { .. } => ErrorSource::Worker,
            GatewayError::BodyTooLarge { .. }
            | GatewayError::RequestBodyTimeout { .. }
            | GatewayError::ClientBody(_)
            | GatewayError::BadRequest(_) => ErrorSource::Client,
        }
    }

    /// The response the client gets for this error.
    pub fn into_response(self) -> Response<RespBody> {
        let status = self.status();
        let message = match &self {
            GatewayError::NoWorker(_) | GatewayError::Connect { .. } => {
                "No server is available to handle this request."
            }
            GatewayError::Timeout { .. } => "The server didn't respond in time.",
            GatewayError::InvalidResponse { .. } | GatewayError::ConnectionLost { .. } => {
                "The server returned an invalid or incomplete response."
            }
            GatewayError::BodyTooLarge { .. } => "The request body is too large.",
            GatewayError::RequestBodyTimeout { .. } => "The request body did not arrive in time.",
            GatewayError::ClientBody(_) | GatewayError::BadRequest(_) => {
                "Your browser sent an invalid request."
            }
        };
        error_page(status, message)
    }
}

/// A small HTML page, the way HAProxy's built-in error pages look.
pub fn error_page(status: StatusCode, message: &str) -> Response<RespBody> {
    let reason = status.canonical_reason().unwrap_or("");
    let html = format!(
        "<html><body><h1>{} {reason}</h1>\n{message}\n</body></html>\n",
        status.as_u16()
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A complete in-memory body.
pub fn full(data: impl Into<Bytes>) -> RespBody {
    RespBody::Page(Full::new(data.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            GatewayError::NoWorker(PickError::QueueFull).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            GatewayError::Timeout {
                worker: "wa1".into(),
                secs: 1.0
            }
            .status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            GatewayError::BodyTooLarge { limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let slow = GatewayError::RequestBodyTimeout { secs: 60.0 };
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(slow.source_kind(), ErrorSource::Client);
        let r = GatewayError::NoWorker(PickError::NoneHealthy).into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    }
}
