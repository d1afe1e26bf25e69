//! `sqlproxy import-haproxy haproxy.cfg > ha.toml`: turns the HAProxy
//! configuration a shop runs today (a TCP `listen` with `option mysql-check`
//! and weighted `server` lines, an HTTP `frontend`/`backend`) into the
//! equivalent sqlproxy config, commented line by line with where each value
//! came from. The weight-256/1 "hack" becomes what it meant: the heaviest
//! server is the master (priority 1) and reads are split. Every HAProxy
//! setting that has no sqlproxy equivalent is listed at the end as a comment
//! with its line and the reason, so nothing is dropped silently.
//!
//! `parse.rs` splits the file into sections of directives (no meaning),
//! `map.rs` holds what both services share (proxies with their defaults,
//! addresses, durations, the list of what was used), `server.rs` reads
//! `server` lines, `mysql.rs` and `http.rs` map the two services, `write.rs` renders the commented TOML.

mod http;
mod map;
mod mysql;
mod parse;
mod server;
mod write;

pub use parse::{parse, Directive, HaproxyConfig, Section, SectionKind};

/// Why a file could not be imported; every variant names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: unterminated quote")]
    UnterminatedQuote { line: usize },
    #[error(
        "line {line}: `{keyword}` before any section (global, defaults, frontend, backend, listen)"
    )]
    OutsideSection { line: usize, keyword: String },
    #[error("line {line}: `{section}` needs a name")]
    MissingName { line: usize, section: String },
    #[error("line {line}: `{keyword}` expects {expected}, found `{value}`")]
    BadValue {
        line: usize,
        keyword: String,
        expected: &'static str,
        value: String,
    },
}

/// The sqlproxy config (TOML with comments) equivalent to the HAProxy
/// configuration `text`; `source` names the file in the header comment.
pub fn translate(text: &str, source: &str) -> Result<String, ImportError> {
    let config = parse(text)?;
    let out = map::map(&config, source)?;
    Ok(write::render(&out))
}
