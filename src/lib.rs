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
//! * `http`: the HTTP balancer for the web workers (hyper).
//! * `admin`: the operators' SQL port (SHOW BACKENDS, SET BACKEND, RELOAD CONFIG...).
//! * `metrics`: the counters admin SHOW and the Prometheus `/metrics` endpoint read.
//! * `server`: binds the listeners and runs every service until shutdown.
//! * `cli`: the command line (`--config`, `--check`, `import-haproxy`), shared with the man page.
//! * `systemd`: READY/RELOADING/STOPPING and watchdog pings for `Type=notify`.
//! * `import_haproxy`: an HAProxy configuration → the equivalent commented sqlproxy config.

pub mod admin;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod config;
pub mod frontend;
pub mod http;
pub mod import_haproxy;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod router;
pub mod server;
pub mod systemd;
pub mod topology;
