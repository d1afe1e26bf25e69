//! Every ERR packet the proxy itself makes, one named constructor each, with
//! MariaDB's code, SQLSTATE and wording. A node's own errors never pass
//! through here: they are relayed byte for byte.

/// ER_NET_PACKET_TOO_LARGE: a node sends it, then closes the connection.
pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;

/// A proxy-made error, ready to be encoded for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub code: u16,
    pub state: &'static str,
    pub message: String,
}

impl ProxyError {
    fn new(code: u16, state: &'static str, message: impl Into<String>) -> Self {
        ProxyError {
            code,
            state,
            message: message.into(),
        }
    }

    /// 1040 ER_CON_COUNT_ERROR.
    pub fn too_many_connections() -> Self {
        Self::new(1040, "08004", "Too many connections")
    }

    /// 1040 for a node at the proxy's own connection limit for it: the
    /// same code (drivers know it means "try again later"), a message that
    /// says which bound was reached.
    pub fn too_many_node_connections(node: &str, limit: u32) -> Self {
        Self::new(
            1040,
            "08004",
            format!("Too many connections: all {limit} of sqlproxy's connections to node '{node}' are in use (pool.max_per_node)"),
        )
    }

    /// 1129 ER_HOST_IS_BLOCKED, for an address past `mysql.max_connect_errors`.
    pub fn host_blocked(host: &str, block: std::time::Duration) -> Self {
        Self::new(
            1129,
            "HY000",
            format!(
                "Host '{host}' is blocked because of many connection errors; it is unblocked {}s after its first (mysql.host_block_time)",
                block.as_secs()
            ),
        )
    }

    /// 1045 ER_ACCESS_DENIED_ERROR.
    pub fn access_denied(user: &[u8], host: &str, using_password: bool) -> Self {
        Self::new(
            1045,
            "28000",
            format!(
                "Access denied for user '{}'@'{}' (using password: {})",
                String::from_utf8_lossy(user),
                host,
                if using_password { "YES" } else { "NO" }
            ),
        )
    }

    /// 1047 ER_UNKNOWN_COM_ERROR.
    pub fn unknown_command(cmd: u8) -> Self {
        Self::new(
            1047,
            "08S01",
            format!("Unknown command 0x{cmd:02x} (not supported by sqlproxy)"),
        )
    }

    /// 1094 ER_NO_SUCH_THREAD: a KILL names no live session.
    pub fn no_such_thread(id: u64) -> Self {
        Self::new(1094, "HY000", format!("Unknown thread id: {id}"))
    }

    /// 1095 ER_KILL_DENIED_ERROR: another user's session, without
    /// CONNECTION ADMIN or SUPER.
    pub fn kill_denied(id: u64) -> Self {
        Self::new(1095, "HY000", format!("You are not owner of thread {id}"))
    }

    /// 1792 ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
    pub fn read_only_transaction() -> Self {
        Self::new(
            1792,
            "25006",
            "Cannot execute statement in a READ ONLY transaction",
        )
    }

    /// 1317 ER_QUERY_INTERRUPTED: `KILL QUERY` of the session's own id
    /// interrupts the KILL itself.
    pub fn query_interrupted() -> Self {
        Self::new(1317, "70100", "Query execution was interrupted")
    }

    /// 1927 ER_CONNECTION_KILLED: `KILL` of the session's own id.
    pub fn connection_killed() -> Self {
        Self::new(1927, "70100", "Connection was killed")
    }

    /// 1153 ER_NET_PACKET_TOO_LARGE.
    pub fn packet_too_large() -> Self {
        Self::new(
            ER_NET_PACKET_TOO_LARGE,
            "08S01",
            "Got a packet bigger than 'max_allowed_packet' bytes",
        )
    }

    /// 1041 ER_OUT_OF_RESOURCES: no room for a large command in
    /// `mysql.max_command_memory` in time (MariaDB's code for memory it
    /// cannot have; the text names the proxy's key).
    pub fn out_of_resources() -> Self {
        Self::new(
            1041,
            "HY000",
            "Out of memory; the proxy's mysql.max_command_memory stayed full of other clients' large commands",
        )
    }

    /// 1461 ER_MAX_PREPARED_STMT_COUNT_REACHED, with MariaDB's own text.
    pub fn too_many_prepared_statements(limit: u32) -> Self {
        Self::new(
            1461,
            "42000",
            format!(
                "Can't create more than max_prepared_stmt_count statements (current value: {limit})"
            ),
        )
    }

    /// 1243 ER_UNKNOWN_STMT_HANDLER.
    pub fn unknown_stmt_handler(id: u32, func: &str) -> Self {
        Self::new(
            1243,
            "HY000",
            format!("Unknown prepared statement handler ({id}) given to {func}"),
        )
    }

    /// 2013-style loss of the node connection, reported as a server error
    /// (1927 ER_CONNECTION_KILLED) so drivers treat it as retryable.
    pub fn backend_lost(node: &str) -> Self {
        Self::new(
            1927,
            "70100",
            format!("Connection to node '{node}' was lost during the query"),
        )
    }

    /// No node can take the statement (no master known). A code of the
    /// proxy's own range, so it is recognisably not the node's.
    pub fn no_node(what: &str) -> Self {
        Self::new(
            9001,
            "HY000",
            format!("sqlproxy: no healthy node for {what}"),
        )
    }

    /// A node refused or failed the proxy's own login/setup.
    pub fn backend_unavailable(node: &str, reason: &str) -> Self {
        Self::new(
            9002,
            "HY000",
            format!("sqlproxy: node '{node}' unavailable: {reason}"),
        )
    }

    /// The session's pinned state (temp tables, user variables, locks) was
    /// on a master that is no longer the master (1927 ER_CONNECTION_KILLED).
    pub fn master_changed() -> Self {
        Self::new(
            1927,
            "70100",
            "Connection was killed: the master changed and this session's open transaction or state (temporary tables, user variables, locks) was on the old one",
        )
    }

    /// Admin port: a statement it does not understand (1064 ER_PARSE_ERROR).
    pub fn admin_syntax(message: &str) -> Self {
        Self::new(1064, "42000", message)
    }

    /// Admin port: a command known but not available yet (1235 ER_NOT_SUPPORTED_YET).
    pub fn not_supported_yet(message: &str) -> Self {
        Self::new(1235, "42000", message)
    }

    /// Admin port: a command refused (unknown node, bad config file, unsafe change).
    pub fn admin_refused(message: &str) -> Self {
        Self::new(9003, "HY000", format!("sqlproxy admin: {message}"))
    }

    /// Admin port: prepared statements are not served (1295 ER_UNSUPPORTED_PS).
    pub fn prepared_not_supported() -> Self {
        Self::new(
            1295,
            "HY000",
            "This command is not supported in the prepared statement protocol yet",
        )
    }

    /// Malformed packet from the client (1835 ER_MALFORMED_PACKET).
    pub fn malformed_packet() -> Self {
        Self::new(1835, "HY000", "Malformed communication packet")
    }

    /// The ERR payload a server sends before the handshake (e.g. 1040):
    /// the client's capabilities are unknown, so no `#SQLSTATE` marker.
    pub fn to_payload_pre_handshake(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(3 + self.message.len());
        p.push(0xff);
        p.extend_from_slice(&self.code.to_le_bytes());
        p.extend_from_slice(self.message.as_bytes());
        p
    }

    /// Encodes the ERR payload (without the packet header).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(9 + self.message.len());
        p.push(0xff);
        p.extend_from_slice(&self.code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(self.state.as_bytes());
        p.extend_from_slice(self.message.as_bytes());
        p
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.state, self.message)
    }
}

/// A node's ERR packet for a 4.1 client: errors a node sends before the
/// handshake (1040 at login) carry no `#SQLSTATE`; relayed as they are, the
/// client would read the first message bytes as the state. This adds the
/// state MariaDB uses for the code (HY000 when unknown), else leaves it.
pub fn with_sqlstate(payload: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if payload.len() < 3 || payload.get(3) == Some(&b'#') {
        return std::borrow::Cow::Borrowed(payload);
    }
    let code = u16::from_le_bytes([payload[1], payload[2]]);
    let state: &[u8] = match code {
        1040 => b"08004",
        1045 => b"28000",
        1049 => b"42000",
        _ => b"HY000",
    };
    let mut out = Vec::with_capacity(payload.len() + 6);
    out.extend_from_slice(&payload[..3]);
    out.push(b'#');
    out.extend_from_slice(state);
    out.extend_from_slice(&payload[3..]);
    std::borrow::Cow::Owned(out)
}

/// A node's ERR about a prepared statement names the node's statement id
/// in parentheses ("The statement (17) has no open cursor"); the client
/// knows the statement by its own id. Writes the packet with the first
/// "(node)" of the message made "(client)" into `out`; false (and `out`
/// untouched) when the message does not name it.
pub fn err_renaming_statement(payload: &[u8], node: u32, client: u32, out: &mut Vec<u8>) -> bool {
    if node == client || payload.first() != Some(&0xff) {
        return false;
    }
    // ff, code (2), then '#' + 5-byte SQLSTATE when present, then the message.
    let msg_at = if payload.get(3) == Some(&b'#') { 9 } else { 3 };
    let Some(message) = payload.get(msg_at..) else {
        return false;
    };
    let needle = format!("({node})");
    let Some(at) = message
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    else {
        return false;
    };
    out.extend_from_slice(&payload[..msg_at + at]);
    out.extend_from_slice(format!("({client})").as_bytes());
    out.extend_from_slice(&message[at + needle.len()..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_errors_name_the_clients_statement_id() {
        let node = b"\xff\x8d\x05#HY000The statement (17) has no open cursor";
        let mut out = Vec::new();
        assert!(err_renaming_statement(node, 17, 8, &mut out));
        assert_eq!(
            out,
            b"\xff\x8d\x05#HY000The statement (8) has no open cursor"
        );
        let mut out = Vec::new();
        assert!(!err_renaming_statement(node, 17, 17, &mut out));
        assert!(!err_renaming_statement(node, 5, 8, &mut out));
        assert!(!err_renaming_statement(b"\xff\x8d", 17, 8, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn pre_handshake_errors_get_a_sqlstate() {
        let raw = ProxyError::too_many_connections().to_payload_pre_handshake();
        let fixed = with_sqlstate(&raw);
        assert_eq!(
            &fixed[..],
            &ProxyError::too_many_connections().to_payload()[..]
        );
        let full = ProxyError::malformed_packet().to_payload();
        assert!(matches!(
            with_sqlstate(&full),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn err_payload_layout() {
        let p = ProxyError::too_many_connections().to_payload();
        assert_eq!(p[0], 0xff);
        assert_eq!(u16::from_le_bytes([p[1], p[2]]), 1040);
        assert_eq!(&p[3..9], b"#08004");
        assert_eq!(&p[9..], b"Too many connections");
        let d = ProxyError::access_denied(b"bob", "127.0.0.1", true);
        assert_eq!(
            d.message,
            "Access denied for user 'bob'@'127.0.0.1' (using password: YES)"
        );
    }
}
