//! Routing decisions (stub, filled by the router work).
