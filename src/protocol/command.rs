//! Client commands: the first byte of a command packet, plus the few fields the
//! proxy needs. Anything unknown becomes [`Command::Unknown`], which the session
//! answers with an error and carries on.

use super::com;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Quit,
    InitDb(&'a [u8]),
    Query(&'a [u8]),
    FieldList,
    Statistics,
    Ping,
    ProcessKill(u32),
    ChangeUser,
    StmtPrepare(&'a [u8]),
    StmtExecute {
        id: u32,
        flags: u8,
    },
    StmtSendLongData {
        id: u32,
    },
    StmtClose {
        id: u32,
    },
    StmtReset {
        id: u32,
    },
    SetOption(u16),
    StmtFetch {
        id: u32,
    },
    ResetConnection,
    Unknown(u8),
    /// A known command whose packet is too short to hold its fields.
    Malformed(u8),
}

fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Command<'a> {
    pub fn parse(payload: &'a [u8]) -> Command<'a> {
        let Some(&cmd) = payload.first() else {
            return Command::Malformed(0);
        };
        let rest = &payload[1..];
        let parsed = match cmd {
            com::QUIT => Some(Command::Quit),
            com::INIT_DB => Some(Command::InitDb(rest)),
            com::QUERY => Some(Command::Query(rest)),
            com::FIELD_LIST => Some(Command::FieldList),
            com::STATISTICS => Some(Command::Statistics),
            com::PING => Some(Command::Ping),
            com::PROCESS_KILL => u32_at(payload, 1).map(Command::ProcessKill),
            com::CHANGE_USER => Some(Command::ChangeUser),
            com::STMT_PREPARE => Some(Command::StmtPrepare(rest)),
            com::STMT_EXECUTE => u32_at(payload, 1).and_then(|id| {
                payload
                    .get(5)
                    .map(|&flags| Command::StmtExecute { id, flags })
            }),
            com::STMT_SEND_LONG_DATA => {
                u32_at(payload, 1).map(|id| Command::StmtSendLongData { id })
            }
            com::STMT_CLOSE => u32_at(payload, 1).map(|id| Command::StmtClose { id }),
            com::STMT_RESET => u32_at(payload, 1).map(|id| Command::StmtReset { id }),
            com::SET_OPTION => payload
                .get(1..3)
                .map(|b| Command::SetOption(u16::from_le_bytes([b[0], b[1]]))),
            com::STMT_FETCH => u32_at(payload, 1).map(|id| Command::StmtFetch { id }),
            com::RESET_CONNECTION => Some(Command::ResetConnection),
            other => return Command::Unknown(other),
        };
        parsed.unwrap_or(Command::Malformed(cmd))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Command::Quit => "quit",
            Command::InitDb(_) => "init_db",
            Command::Query(_) => "query",
            Command::FieldList => "field_list",
            Command::Statistics => "statistics",
            Command::Ping => "ping",
            Command::ProcessKill(_) => "process_kill",
            Command::ChangeUser => "change_user",
            Command::StmtPrepare(_) => "stmt_prepare",
            Command::StmtExecute { .. } => "stmt_execute",
            Command::StmtSendLongData { .. } => "stmt_send_long_data",
            Command::StmtClose { .. } => "stmt_close",
            Command::StmtReset { .. } => "stmt_reset",
            Command::SetOption(_) => "set_option",
            Command::StmtFetch { .. } => "stmt_fetch",
            Command::ResetConnection => "reset_connection",
            Command::Unknown(_) => "unknown",
            Command::Malformed(_) => "malformed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(Command::parse(b"\x03SELECT 1"), Command::Query(b"SELECT 1"));
        assert_eq!(
            Command::parse(&[0x17, 5, 0, 0, 0, 1, 1, 0, 0, 0]),
            Command::StmtExecute { id: 5, flags: 1 }
        );
        assert_eq!(Command::parse(&[0x17, 5]), Command::Malformed(0x17));
        assert_eq!(
            Command::parse(&[0x19, 2, 0, 0, 0]),
            Command::StmtClose { id: 2 }
        );
        assert_eq!(Command::parse(&[0x1b, 1, 0]), Command::SetOption(1));
        assert_eq!(Command::parse(&[0x42]), Command::Unknown(0x42));
        assert_eq!(Command::parse(&[]), Command::Malformed(0));
    }
}
