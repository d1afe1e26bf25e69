#![forbid(unsafe_code)]
//! sqlproxy: a MySQL-protocol proxy that pins writes to one master, balances
//! reads, and an HTTP balancer for the PHP workers, in one binary.
//!
//! # Layout
//! Lowest first; a module imports only modules above it in this list.
//! * `protocol`: the MySQL wire as pure functions over bytes (framing, handshake, OK/ERR/EOF); no sockets.
//! * `rise_fall`: HAProxy's rise/fall counting, shared by the SQL and HTTP health checks.
//! * `config`: figment TOML + `SQLPROXY_` env → [`config::Config`], validated; errors name the key.
//! * `tls`: certificates and keys from the config → rustls configurations, reloadable.
//! * `command_memory`: the one budget for large client commands buffered at once.
//! * `net`: buffered packet I/O over one TCP stream, cleartext or TLS.
//! * `topology`: the cluster as the proxy sees it: health checks, roles, snapshots, failover.
//! * `coordination`: several instances, one writer: the election, the writer record and views in etcd.
//! * `router`: the lexer, classifier and the one decider of where a command runs; no I/O.
//! * `backend`: a session's node connections (on mysql_common), pools, the relay to the client.
//! * `cache`: results of hot SELECTs (moka), replayed byte for byte, invalidated by writes.
//! * `metrics`: the counters admin SHOW and the Prometheus endpoint read.
//! * `context`: what every session shares ([`context::ProxyContext`]), users, live sessions.
//! * `listener`: the one accept loop of the TCP listeners.
//! * `frontend`: the MySQL listener and the per-session command loop.
//! * `admin`: the operators' SQL port (SHOW BACKENDS, SET BACKEND, RELOAD CONFIG...).
//! * `prometheus`: the `/metrics` endpoint.
//! * `http`: the HTTP balancer for the web workers (hyper).
//! * `server`: binds the listeners and runs every service until shutdown.
//! * `cli`: the command line (`--config`, `--check`, `import-haproxy`), shared with the man page.
//! * `systemd`: READY/RELOADING/STOPPING and watchdog pings for `Type=notify`.
//! * `import_haproxy`: an HAProxy configuration → the equivalent commented sqlproxy config.

pub mod admin;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod command_memory;
pub mod config;
pub mod context;
pub mod coordination;
pub mod frontend;
pub mod http;
pub mod import_haproxy;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod prometheus;
pub mod protocol;
pub mod rise_fall;
pub mod router;
pub mod server;
pub mod systemd;
pub mod tls;
pub mod topology;
