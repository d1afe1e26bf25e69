//! HTTP balancer (stub, filled by the HTTP work).

use std::net::SocketAddr;

/// `[http]` section of the config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {}

#[derive(Debug, thiserror::Error)]
#[error("http stub")]
pub struct HttpError;

pub struct HttpService;

impl HttpService {
    pub async fn bind(_cfg: HttpConfig) -> Result<HttpService, HttpError> {
        Err(HttpError)
    }
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
    pub async fn run(
        self,
        _shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), HttpError> {
        Ok(())
    }
}
