//! The master as a source (DESIGN.md §1). The protocol source is a session
//! sending `GET`/`SYNCGET`; this module adds the local reader, which reads a
//! mailbox's records from its `cyrus.index` on the master host, as
//! `sync_client` does, so that one flag change does not cost the master a
//! whole `GET FULLMAILBOX`, and [`listing`], which rebuilds a mailbox's
//! `GET MAILBOXES` entry from its files while the master's databases stand
//! still. The protocol takes over whenever the local files cannot be read
//! with certainty.

pub mod index;
pub mod listing;
pub mod local;
pub mod locate;
