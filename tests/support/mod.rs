//! Test support: a real Cyrus pair and small clients to drive it.
#![allow(dead_code)]

pub mod compare;
pub mod csync;
pub mod daemon;
pub mod imap;
pub mod lmtp;
pub mod pair;
pub mod sieve;
