//! The login: a client's HandshakeResponse41 and COM_CHANGE_USER (from the
//! internet side), a node's greeting and AuthSwitchRequest (from the node
//! side), and command decoding. None may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlproxy::protocol::command::Command;
use sqlproxy::protocol::handshake::{
    parse_auth_switch, parse_change_user, parse_client_hello, parse_greeting,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_hello(data);
    let _ = parse_greeting(data);
    let _ = parse_auth_switch(data);
    let _ = Command::parse(data);
    // COM_CHANGE_USER's layout depends on the capabilities of the login: take
    // them from the first four bytes, the payload from the rest.
    if let Some((caps, payload)) = data.split_first_chunk::<4>() {
        let _ = parse_change_user(payload, u32::from_le_bytes(*caps));
    }
});
