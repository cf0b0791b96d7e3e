//! parse → encode → parse gives the same messages and file bodies, and the
//! whole stream parses the same however it is split.
#![no_main]

use cyrsync::dlist::{
    CommandParser, Encoded, FileLiteral, Limits, Message, Parser, ResponseParser, Transport,
};
use libfuzzer_sys::fuzz_target;

mod common;

fn wire(e: &Encoded, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut it = bodies.iter();
    match e.to_bytes_with(|_f: &FileLiteral| it.next().cloned().ok_or("no body left")) {
        Ok(b) => b,
        Err(err) => panic!("bodies do not fit the encoding: {err}"),
    }
}

fn check<T: Message + PartialEq + std::fmt::Debug>(
    make: impl Fn(Limits) -> Parser<T>,
    encode: impl Fn(&T) -> Encoded,
    input: &[u8],
    sizes: &[usize],
) {
    let first = common::run(make(common::limits()), input, sizes);
    // Splitting must not change the result.
    let whole = common::run(make(common::limits()), input, &[usize::MAX]);
    assert_eq!(format!("{first:?}"), format!("{whole:?}"));
    for (msg, bodies) in first.into_iter().flatten() {
        let bytes = wire(&encode(&msg), &bodies);
        // The re-encoding may be larger than the input (quoting): no limits.
        let again = common::run(make(Limits::default()), &bytes, sizes);
        match again.as_slice() {
            [Ok((m2, b2))] => {
                assert_eq!(m2, &msg, "{:?}", String::from_utf8_lossy(&bytes));
                assert_eq!(b2, &bodies);
            }
            other => panic!(
                "re-encoding {:?} of {msg:?} parsed as {other:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, input) = common::split(data);
    check(
        ResponseParser::responses,
        |r| r.encode().expect("a parsed response encodes"),
        input,
        &sizes,
    );
    for t in [Transport::Csync, Transport::Imap] {
        check(
            |l| CommandParser::commands(l, t),
            |c| c.encode().expect("a parsed command encodes"),
            input,
            &sizes,
        );
    }
});
