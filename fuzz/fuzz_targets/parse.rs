//! The parsers never panic, whatever the bytes and however they are split.
#![no_main]

use cyrsync::dlist::{CommandParser, ResponseParser, Transport};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (sizes, input) = common::split(data);
    let _ = common::run(ResponseParser::responses(common::limits()), input, &sizes);
    let _ = common::run(
        CommandParser::commands(common::limits(), Transport::Csync),
        input,
        &sizes,
    );
    let _ = common::run(
        CommandParser::commands(common::limits(), Transport::Imap),
        input,
        &sizes,
    );
    let _ = cyrsync::dlist::parse_value(input, &common::limits());
});
