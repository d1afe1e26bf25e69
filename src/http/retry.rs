//! Whether a failed attempt moves to another worker: the rule that keeps an
//! order from being placed twice, as one pure function of the failure, the
//! request and `http.retry_on` (HAProxy's `retry-on`), checked row by row
//! in the tests below. The `retries` budget is the caller's.
//!
//! | failure | request | moved on when `retry_on` lists |
//! |---|---|---|
//! | connect failed, or hyper handed the request back unsent | any method | `conn-failure` (default) |
//! | sent, then the connection closed without one response byte | GET, HEAD, OPTIONS, TRACE, PUT, DELETE without a body | `empty-response` |
//! | sent, then the connection closed without one response byte | POST, PATCH, or any request with a body | never |
//! | no response head within `timeouts.server`, invalid response, cut body | any | never (504 / 502) |
//!
//! A connection that closed on a sent request may mean the worker died
//! while running it, so even an idempotent method is replayed only when
//! the operator asks: PrestaShop has GET links with side effects. Without
//! `empty-response`, a worker closing a pooled keep-alive connection just
//! as a request leaves on it costs that request a 502; pooled connections
//! idle longer than `timeouts.upstream_idle` are not reused, to keep that
//! rare.

use std::fmt;

use crate::config::http::RetryOn;

/// How an attempt failed, among the failures that can be retried at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No worker saw the request: the connect failed, or hyper gave the
    /// request back unsent.
    NotSent,
    /// The request was sent, and the connection closed (or was reset)
    /// before one response byte arrived.
    EmptyResponse,
}

impl Failure {
    /// The `retry_on` keyword that covers it.
    fn keyword(self) -> RetryOn {
        match self {
            Failure::NotSent => RetryOn::ConnFailure,
            Failure::EmptyResponse => RetryOn::EmptyResponse,
        }
    }
}

/// What to do after a failed attempt, with the reason when it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Retry,
    /// `http.retry_on` does not list this failure.
    NotListed(RetryOn),
    /// The worker may have acted on a request that is not safe to send
    /// twice (a POST, or any request with a body).
    NotReplayable,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Retry => f.write_str("retry"),
            Verdict::NotListed(RetryOn::ConnFailure) => {
                f.write_str("http.retry_on lacks conn-failure")
            }
            Verdict::NotListed(RetryOn::EmptyResponse) => {
                f.write_str("http.retry_on lacks empty-response")
            }
            Verdict::NotReplayable => f.write_str("not idempotent or has a body"),
        }
    }
}

/// `http.retry_on`, as flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    conn_failure: bool,
    empty_response: bool,
}

impl RetryPolicy {
    pub fn new(retry_on: &[RetryOn]) -> Self {
        RetryPolicy {
            conn_failure: retry_on.contains(&RetryOn::ConnFailure),
            empty_response: retry_on.contains(&RetryOn::EmptyResponse),
        }
    }

    pub fn lists(self, keyword: RetryOn) -> bool {
        match keyword {
            RetryOn::ConnFailure => self.conn_failure,
            RetryOn::EmptyResponse => self.empty_response,
        }
    }
}

/// `replayable`: the method is idempotent and the request has no body.
pub fn verdict(failure: Failure, replayable: bool, policy: RetryPolicy) -> Verdict {
    if !policy.lists(failure.keyword()) {
        return Verdict::NotListed(failure.keyword());
    }
    match failure {
        Failure::NotSent => Verdict::Retry,
        Failure::EmptyResponse if replayable => Verdict::Retry,
        Failure::EmptyResponse => Verdict::NotReplayable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Failure::{EmptyResponse as Empty, NotSent};

    const CONN: RetryOn = RetryOn::ConnFailure;
    const EMPTY: RetryOn = RetryOn::EmptyResponse;

    fn check(failure: Failure, replayable: bool, retry_on: &[RetryOn], want: Verdict) {
        assert_eq!(
            verdict(failure, replayable, RetryPolicy::new(retry_on)),
            want,
            "{failure:?}, replayable {replayable}, retry_on {retry_on:?}"
        );
    }

    #[test]
    fn the_retry_table() {
        let both = &[CONN, EMPTY];
        // Nothing reached a worker: any method, when conn-failure is listed.
        check(NotSent, true, &[CONN], Verdict::Retry);
        check(NotSent, false, &[CONN], Verdict::Retry);
        check(NotSent, false, both, Verdict::Retry);
        check(NotSent, true, &[], Verdict::NotListed(CONN));
        check(NotSent, true, &[EMPTY], Verdict::NotListed(CONN));
        // A worker got it and said nothing: only when asked, and only a
        // body-less idempotent request.
        check(Empty, true, &[CONN], Verdict::NotListed(EMPTY));
        check(Empty, true, both, Verdict::Retry);
        check(Empty, true, &[EMPTY], Verdict::Retry);
        check(Empty, false, both, Verdict::NotReplayable);
        check(Empty, false, &[CONN], Verdict::NotListed(EMPTY));
    }

    #[test]
    fn the_default_moves_only_unsent_requests() {
        let policy = RetryPolicy::new(crate::config::http::DEFAULT_RETRY_ON);
        assert_eq!(verdict(NotSent, false, policy), Verdict::Retry);
        assert_eq!(verdict(Empty, true, policy), Verdict::NotListed(EMPTY));
    }
}
