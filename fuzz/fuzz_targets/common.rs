//! Shared driver: feeds the input to a parser in pieces whose sizes come
//! from the first bytes, so splits land everywhere.

use cyrsync::dlist::{DlistError, Event, Limits, Message, Parser};

/// Small limits so the fuzzer reaches them.
pub fn limits() -> Limits {
    Limits {
        max_line: 4096,
        max_literal: 4096,
        max_file_literal: 1 << 16,
        max_depth: 16,
        max_message: 16384,
    }
}

/// A message, the file bodies streamed before it, or a syntax error.
pub type Item<T> = Result<(T, Vec<Vec<u8>>), DlistError>;

/// Splits `data` into (piece sizes, stream).
pub fn split(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let n = usize::from(*data.first().unwrap_or(&0) % 8);
    let n = n.min(data.len().saturating_sub(1));
    let sizes = data
        .get(1..1 + n)
        .unwrap_or(&[])
        .iter()
        .map(|&b| usize::from(b % 64) + 1)
        .collect::<Vec<_>>();
    let rest = data.get(1 + n..).unwrap_or(&[]);
    (if sizes.is_empty() { vec![usize::MAX] } else { sizes }, rest)
}

/// Runs the parser over `input` fed in pieces; stops at a fatal error.
pub fn run<T: Message>(mut parser: Parser<T>, input: &[u8], sizes: &[usize]) -> Vec<Item<T>> {
    let mut out = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = sizes[k % sizes.len()].max(1).min(input.len() - pos);
        k += 1;
        parser.feed(&input[pos..pos + n]);
        pos += n;
        loop {
            match parser.next_event() {
                Ok(None) => break,
                Ok(Some(Event::FileLiteralStart(f))) => {
                    assert!(f.size <= limits().max_file_literal);
                    bodies.push(Vec::new());
                }
                Ok(Some(Event::FileLiteralChunk(c))) => match bodies.last_mut() {
                    Some(b) => b.extend_from_slice(c),
                    None => panic!("chunk outside a file literal"),
                },
                Ok(Some(Event::FileLiteralEnd)) => {}
                Ok(Some(Event::Message(m))) => out.push(Ok((m, std::mem::take(&mut bodies)))),
                Err(DlistError::Syntax { .. }) | Err(DlistError::TooDeep { .. }) => {
                    bodies.clear();
                    out.push(Err(DlistError::Failed));
                }
                Err(_) => return out,
            }
        }
    }
    out
}
