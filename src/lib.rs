#![forbid(unsafe_code)]
//! sqlproxy: a MySQL-protocol proxy that pins writes to one master, balances
//! reads, and an HTTP balancer for the PHP workers, in one binary.
//!
//! # Layout
//! * `config`: figment TOML + `SQLPROXY_` env → [`config::Config`], validated; errors name the key.
//! * `protocol`: the MySQL wire as pure functions over bytes (framing, handshake, OK/ERR/EOF); no sockets.
//! * `router`: the lexer, classifier and routing decision (`Route`); no I/O, never awaits.
//! * `cache`: results of hot SELECTs (moka), replayed byte for byte, invalidated by writes.
//! * `backend`: connections to the nodes (on mysql_common), pools, relaying replies to the client.
//! * `frontend`: the client listener and the per-session command loop that glues the others.
//! * `topology`: the cluster as the proxy sees it: health checks, roles, snapshots, read selection.
//! * `rise_fall`: HAProxy's rise/fall counting, shared by the SQL and HTTP health checks.
//! * `http`: the HTTP balancer for the web workers (hyper).
//! * `admin`: the operators' SQL port (SHOW BACKENDS, SET BACKEND, RELOAD CONFIG...).
//! * `metrics`: the counters admin SHOW and the Prometheus `/metrics` endpoint read.
//! * `server`: binds the listeners and runs every service until shutdown.

pub mod admin;
pub mod backend;
pub mod cache;
pub mod config;
pub mod frontend;
pub mod http;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod rise_fall;
pub mod router;
pub mod server;
pub mod topology;
