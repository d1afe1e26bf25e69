//! frontend (in progress).
