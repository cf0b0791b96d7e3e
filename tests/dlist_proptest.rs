//! Property tests: encode → parse (fed in random pieces) gives back the same
//! values, for arbitrary values (8-bit, NUL, empty, long, nested, file
//! literals) in responses and commands on both transports; and the parser
//! never panics on arbitrary or mangled input.

use cyrsync::dlist::{
    Command, CommandParser, DlistError, Encoded, Event, FileLiteral, KvList, Limits, Message,
    Parser, Response, ResponseParser, Status, StatusKind, StatusTag, Transport, Value,
    response::is_error_name,
};
use proptest::prelude::*;

/// Deterministic body for a file literal, full of CR, LF, `)` and 8-bit.
fn body(f: &FileLiteral) -> Vec<u8> {
    (0..f.size)
        .map(|i| (i.wrapping_mul(37).wrapping_add(f.size)) as u8)
        .collect()
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..12),
        4 => "[a-zA-Z0-9._/+=$-]{0,12}".prop_map(String::into_bytes),
        3 => proptest::collection::vec(
            prop_oneof![
                Just(b' '), Just(b'"'), Just(b'\\'), Just(b'%'), Just(b'{'), Just(b'}'),
                Just(b'('), Just(b')'), Just(b'*'), Just(b'\r'), Just(b'\n'), Just(b'\t'),
                Just(0x1f), Just(0u8), Just(b'N'), Just(b'I'), Just(b'L'), Just(b'a'), Just(b'+'),
            ],
            0..10,
        ),
        1 => (1018usize..1030, any::<u8>(), prop::bool::ANY).prop_map(|(n, c, plain)| {
            if plain { vec![b'a'; n] } else { let mut v = vec![b'b'; n]; v[n / 2] = c; v }
        }),
        1 => Just(b"NIL".to_vec()),
    ]
}

fn arb_flag() -> impl Strategy<Value = String> {
    "[!#-'*-~]{0,8}".prop_map(|s| format!("\\{s}"))
}

fn arb_file() -> impl Strategy<Value = FileLiteral> {
    (
        prop_oneof![Just("default".to_owned()), "[a-z0-9 ]{0,6}".prop_map(|s| s)],
        prop_oneof!["[0-9a-f]{40}", Just(String::new())],
        prop_oneof![0u64..4, 0u64..300],
    )
        .prop_map(|(partition, guid, size)| FileLiteral {
            partition,
            guid,
            size,
        })
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Nil),
        8 => arb_bytes().prop_map(Value::Atom),
        2 => any::<u64>().prop_map(Value::num),
        1 => any::<u64>().prop_map(Value::hex64),
        2 => arb_flag().prop_map(Value::Flag),
        1 => arb_file().prop_map(Value::File),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|kv| Value::KvList(KvList(kv))),
        ]
    })
}

fn arb_text() -> impl Strategy<Value = String> {
    "[ -z|~\u{e9}\u{4e2d}\\[\\]]{0,30}"
}

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_-]{0,10}".prop_filter("not a status word", |n| {
        StatusKind::from_word(n.as_bytes()).is_none()
    })
}

fn arb_tag() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9]{0,5}".prop_filter("not a status word", |n| {
        StatusKind::from_word(n.as_bytes()).is_none()
    })
}

fn arb_response() -> impl Strategy<Value = Response> {
    let status = (
        prop_oneof![
            Just(StatusTag::None),
            Just(StatusTag::Untagged),
            arb_tag().prop_map(StatusTag::Tagged)
        ],
        prop_oneof![
            Just(StatusKind::Ok),
            Just(StatusKind::No),
            Just(StatusKind::Bad),
            Just(StatusKind::Bye)
        ],
        proptest::option::of("IMAP_[A-Z_]{1,20}"),
        arb_text(),
    )
        .prop_filter_map(
            "text would read as an error name",
            |(tag, kind, error, text)| {
                let first = text.split(' ').next().unwrap_or_default();
                (error.is_some() || !is_error_name(first)).then_some(Response::Status(Status {
                    tag,
                    kind,
                    error,
                    text,
                }))
            },
        );
    prop_oneof![
        4 => (arb_name(), proptest::collection::vec(arb_value(), 0..3))
            .prop_map(|(name, values)| Response::Data { name, values }),
        2 => status,
        1 => "[!-~][ -~]{0,20}".prop_map(Response::Continuation),
    ]
}

fn arb_command(transport: Transport) -> impl Strategy<Value = Command> {
    let tag = match transport {
        Transport::Imap => arb_tag().prop_map(Some).boxed(),
        Transport::Csync => Just(None).boxed(),
    };
    (
        tag,
        "[A-Z]{1,10}",
        proptest::collection::vec(arb_value(), 0..3),
    )
        .prop_map(|(tag, verb, args)| Command { tag, verb, args })
}

type Parsed<T> = (T, Vec<Vec<u8>>);

/// Feeds `input` in pieces of the given sizes (cycled), collecting messages
/// with the file bodies streamed before each.
fn run<T: Message>(
    mut parser: Parser<T>,
    input: &[u8],
    sizes: &[usize],
) -> Result<Vec<Parsed<T>>, DlistError> {
    let mut out = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = sizes[k % sizes.len()].max(1).min(input.len() - pos);
        k += 1;
        parser.feed(&input[pos..pos + n]);
        pos += n;
        while let Some(ev) = parser.next_event()? {
            match ev {
                Event::FileLiteralStart(_) => bodies.push(Vec::new()),
                Event::FileLiteralChunk(c) => {
                    bodies.last_mut().expect("started").extend_from_slice(c)
                }
                Event::FileLiteralEnd => {}
                Event::Message(m) => out.push((m, std::mem::take(&mut bodies))),
            }
        }
    }
    Ok(out)
}

fn wire(e: &Encoded) -> Vec<u8> {
    e.to_bytes_with(|f| Ok::<_, ()>(body(f)))
        .expect("bodies sized")
}

fn expected_bodies(files: Vec<&FileLiteral>) -> Vec<Vec<u8>> {
    files.into_iter().map(body).collect()
}

fn commands_round_trip(
    transport: Transport,
    cs: &[Command],
    sizes: &[usize],
) -> Result<(), TestCaseError> {
    let mut stream = Vec::new();
    for c in cs {
        stream.extend(wire(&c.encode().expect("encodable")));
    }
    let got = run(
        CommandParser::commands(Limits::default(), transport),
        &stream,
        sizes,
    )
    .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&stream))))?;
    prop_assert_eq!(got.len(), cs.len());
    for ((g, bodies), want) in got.iter().zip(cs) {
        prop_assert_eq!(g, want);
        let files = want.args.iter().flat_map(Value::file_literals).collect();
        prop_assert_eq!(bodies, &expected_bodies(files));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn responses_round_trip(
        rs in proptest::collection::vec(arb_response(), 1..5),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let mut stream = Vec::new();
        for r in &rs {
            stream.extend(wire(&r.encode().expect("encodable")));
        }
        let got = run(ResponseParser::responses(Limits::default()), &stream, &sizes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&stream))))?;
        prop_assert_eq!(got.len(), rs.len());
        for ((g, bodies), want) in got.iter().zip(&rs) {
            prop_assert_eq!(g, want);
            let files = match want {
                Response::Data { values, .. } => values.iter().flat_map(Value::file_literals).collect(),
                _ => Vec::new(),
            };
            prop_assert_eq!(bodies, &expected_bodies(files));
        }
    }

    #[test]
    fn csync_commands_round_trip(
        cs in proptest::collection::vec(arb_command(Transport::Csync), 1..4),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        commands_round_trip(Transport::Csync, &cs, &sizes)?;
    }

    #[test]
    fn imap_commands_round_trip(
        cs in proptest::collection::vec(arb_command(Transport::Imap), 1..4),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        commands_round_trip(Transport::Imap, &cs, &sizes)?;
    }

    #[test]
    fn parser_never_panics_on_bytes(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let limits = Limits { max_literal: 1000, max_line: 300, max_file_literal: 1000, max_depth: 8, max_message: 2000 };
        let _ = run(ResponseParser::responses(limits), &input, &sizes);
        let _ = run(CommandParser::commands(limits, Transport::Imap), &input, &sizes);
    }

    #[test]
    fn parser_never_panics_on_mangled_encodings(
        r in arb_response(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        sizes in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let mut stream = wire(&r.encode().expect("encodable"));
        for (i, b) in flips {
            let at = i.index(stream.len());
            stream[at] = b;
        }
        let _ = run(ResponseParser::responses(Limits::default()), &stream, &sizes);
    }
}
