//! The replication wire protocol; this part holds the SASL client mechanisms.
pub mod sasl;
