//! Whether a statement may switch off the node's report of the GTID each
//! commit wrote (`session_track_system_variables` without `last_gtid`). The
//! proxy learns which commits it acknowledged from that report only; a
//! session that stops it makes the mark of acknowledged commits incomplete.
//!
//! Conservative: any statement of a kind that can assign the variable
//! (directly, in a multi-statement, in a stored program or a PREPARE text)
//! and names it counts, a mention in a string literal too. Plain reads and
//! row writes are never looked at, so the common path costs nothing.

use super::classify::{Statement, StmtKind};

const VARIABLE: &[u8] = b"session_track_system_variables";

pub fn may_stop_gtid_tracking(stmt: &Statement, sql: &[u8]) -> bool {
    let can_assign = stmt.multi
        || matches!(
            stmt.kind,
            StmtKind::SetSession
                | StmtKind::SetUserVar
                | StmtKind::Ddl
                | StmtKind::Prepare
                | StmtKind::Other
        );
    can_assign
        && sql
            .windows(VARIABLE.len())
            .any(|w| w.eq_ignore_ascii_case(VARIABLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::classify;

    #[test]
    fn statements_that_can_assign_the_variable_are_caught() {
        let cases: &[(&str, bool)] = &[
            ("SET session_track_system_variables = ''", true),
            (
                "SET @@SESSION.Session_Track_System_Variables='autocommit'",
                true,
            ),
            ("SET @a = 1, session_track_system_variables = ''", true),
            ("SELECT 1; SET session_track_system_variables = ''", true),
            (
                "CREATE PROCEDURE p() SET session_track_system_variables = ''",
                true,
            ),
            (
                "PREPARE s FROM 'SET session_track_system_variables = \\'\\''",
                true,
            ),
            ("SET NAMES utf8mb4", false),
            ("SELECT @@session_track_system_variables", false),
            (
                "INSERT INTO t VALUES ('session_track_system_variables')",
                false,
            ),
            ("UPDATE t SET a = 1", false),
        ];
        for &(sql, want) in cases {
            let stmt = classify(sql.as_bytes());
            assert_eq!(may_stop_gtid_tracking(&stmt, sql.as_bytes()), want, "{sql}");
        }
    }
}
