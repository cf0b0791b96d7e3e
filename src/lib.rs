//! cyrsync: a rolling replication client for Cyrus IMAPd that shows what it does.
//!
//! The binary's entry point is `main.rs`; everything else lives here so that
//! integration tests and the man-page check can reach it.
#![forbid(unsafe_code)]

pub mod cache;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dlist;
pub mod engine;
pub mod logging;
pub mod model;
pub mod oneshot;
pub mod proto;
pub mod snippet;
pub mod source;
pub mod status;
pub mod status_cmd;
pub mod synclog;
pub mod tui;
