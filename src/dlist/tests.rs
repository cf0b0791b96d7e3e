//! Unit tests, one group per wire rule.

use super::*;

fn enc(v: &Value, style: LiteralStyle) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, style, &mut out).expect("encodable");
    out
}

fn responses(input: &[u8]) -> Vec<Result<Response, DlistError>> {
    let mut p = ResponseParser::responses(Limits::default());
    p.feed(input);
    let mut out = Vec::new();
    loop {
        match p.next_event() {
            Ok(Some(Event::Message(m))) => out.push(Ok(m)),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(DlistError::Failed) => break,
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

fn one(input: &[u8]) -> Response {
    let mut r = responses(input);
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0).expect("parses")
}

// --- encoder: prot_printastring rules -------------------------------------

#[test]
fn atoms_are_bare() {
    assert_eq!(
        enc(&Value::atom("user.alice"), LiteralStyle::Sync),
        b"user.alice"
    );
    assert_eq!(
        enc(&Value::atom("[CAPABILITY]"), LiteralStyle::Sync),
        b"[CAPABILITY]"
    );
    // 0x1f passes imparse_isnatom's `< 0x1f` test.
    assert_eq!(
        enc(&Value::bytes(vec![b'a', 0x1f]), LiteralStyle::Sync),
        b"a\x1f"
    );
}

#[test]
fn empty_and_nil() {
    assert_eq!(enc(&Value::atom(""), LiteralStyle::Sync), b"\"\"");
    assert_eq!(enc(&Value::atom("NIL"), LiteralStyle::Sync), b"\"NIL\"");
    assert_eq!(enc(&Value::Nil, LiteralStyle::Sync), b"NIL");
}

#[test]
fn specials_are_quoted() {
    for s in ["a b", "a\tb", "a*", "{x", "(", "x)", "a\x01"] {
        let mut want = b"\"".to_vec();
        want.extend_from_slice(s.as_bytes());
        want.push(b'"');
        assert_eq!(enc(&Value::atom(s), LiteralStyle::Sync), want, "{s:?}");
    }
}

#[test]
fn no_escapes_but_literals() {
    // Cyrus never writes \" or \\: it sends a literal (isQCHAR).
    for s in ["a\"b", "a\\b", "50%", "a\rb", "a\nb", "caf\u{e9}"] {
        let b = s.as_bytes();
        let mut want = format!("{{{}+}}\r\n", b.len()).into_bytes();
        want.extend_from_slice(b);
        assert_eq!(enc(&Value::atom(s), LiteralStyle::NonSync), want, "{s:?}");
    }
    assert_eq!(
        enc(&Value::bytes(vec![0u8, 1]), LiteralStyle::Sync),
        b"{2}\r\n\x00\x01"
    );
}

#[test]
fn long_strings_become_literals() {
    let atom = "a".repeat(1023);
    assert_eq!(
        enc(&Value::atom(atom.clone()), LiteralStyle::Sync),
        atom.as_bytes()
    );
    let long = "a".repeat(1024);
    assert!(enc(&Value::atom(long), LiteralStyle::Sync).starts_with(b"{1024}\r\n"));
    let q = format!("{} ", "a".repeat(1022));
    assert_eq!(enc(&Value::atom(q.clone()), LiteralStyle::Sync)[0], b'"');
    let q = format!("{} ", "a".repeat(1023));
    assert!(enc(&Value::atom(q), LiteralStyle::Sync).starts_with(b"{1024}"));
}

#[test]
fn numbers_hex_flags() {
    assert_eq!(
        enc(&Value::num(871169389), LiteralStyle::Sync),
        b"871169389"
    );
    assert_eq!(
        enc(&Value::num_i64(-1), LiteralStyle::Sync),
        b"18446744073709551615"
    );
    assert_eq!(
        enc(&Value::hex64(0xabc), LiteralStyle::Sync),
        b"0000000000000abc"
    );
    assert_eq!(enc(&Value::flag("\\Seen"), LiteralStyle::Sync), b"\\Seen");
    let mut out = Vec::new();
    assert!(encode_value(&Value::flag("Seen"), LiteralStyle::Sync, &mut out).is_err());
    assert!(encode_value(&Value::flag("\\a b"), LiteralStyle::Sync, &mut out).is_err());
}

#[test]
fn lists_and_kvlists_single_spaced() {
    let v = Value::kvlist(
        KvList::new()
            .with("UID", 3u64)
            .with(
                "FLAGS",
                Value::list([Value::flag("\\Seen"), Value::atom("$Label1")]),
            )
            .with("EMPTY", Value::list([]))
            .with("KV", KvList::new()),
    );
    assert_eq!(
        enc(&v, LiteralStyle::Sync),
        b"%(UID 3 FLAGS (\\Seen $Label1) EMPTY () KV %())".to_vec()
    );
}

#[test]
fn file_literal_fragments() {
    let c = Command::apply_message([
        FileLiteral {
            partition: "default".into(),
            guid: "a".repeat(40),
            size: 3,
        },
        FileLiteral {
            partition: "default".into(),
            guid: "b".repeat(40),
            size: 0,
        },
    ]);
    let e = c.encode().expect("encodable");
    assert_eq!(e.fragments.len(), 5);
    assert!(matches!(&e.fragments[1], Fragment::File(f) if f.size == 3));
    let bytes = e
        .to_bytes_with(|f| Ok::<_, ()>(vec![b'x'; f.size as usize]))
        .expect("bodies");
    let want = format!(
        "APPLY MESSAGE (%{{default {} 3}}\r\nxxx %{{default {} 0}}\r\n)\r\n",
        "a".repeat(40),
        "b".repeat(40)
    );
    assert_eq!(bytes, want.as_bytes());
    assert_eq!(e.wire_len(), want.len() as u64);
    assert_eq!(
        c.encode().expect("ok").into_bytes(),
        Err(DlistError::FileBodyRequired)
    );
    let bad = e.to_bytes_with(|_| Ok::<_, ()>(Vec::new()));
    assert!(bad.is_err());
}

#[test]
fn commands_per_transport() {
    let g = Command::get("MAILBOXES", Value::atom_list(["user.alice"]));
    assert_eq!(
        g.encode().and_then(Encoded::into_bytes).expect("ok"),
        b"GET MAILBOXES (user.alice)\r\n"
    );
    let i = g.clone().for_imap("S1");
    assert_eq!(
        i.encode().and_then(Encoded::into_bytes).expect("ok"),
        b"S1 SYNCGET MAILBOXES (user.alice)\r\n"
    );
    assert_eq!(i.base_verb(), "GET");
    assert_eq!(i.name(), Some("MAILBOXES"));
    assert_eq!(
        Command::restart()
            .for_imap("S9")
            .encode()
            .and_then(Encoded::into_bytes),
        Ok(b"S9 SYNCRESTART\r\n".to_vec())
    );
    assert_eq!(
        Command::exit().encode().and_then(Encoded::into_bytes),
        Ok(b"EXIT\r\n".to_vec())
    );
}

// --- parser -------------------------------------------------------------

#[test]
fn csync_statuses_keep_error_name() {
    let r = one(b"NO IMAP_SYNC_CHECKSUM Checksum Failure\r\n");
    let s = r.status().expect("status");
    assert_eq!(s.kind, StatusKind::No);
    assert_eq!(s.tag, StatusTag::None);
    assert_eq!(s.error.as_deref(), Some("IMAP_SYNC_CHECKSUM"));
    assert_eq!(s.text, "Checksum Failure");
    assert!(r.is_final());

    let s = one(b"NO IMAP_MAILBOX_LOCKED\r\n");
    assert_eq!(
        s.status().and_then(|s| s.error.as_deref()),
        Some("IMAP_MAILBOX_LOCKED")
    );
    let s = one(b"NO Please authenticate first\r\n");
    assert_eq!(s.status().and_then(|s| s.error.clone()), None);
    for (line, kind) in [
        (&b"OK success\r\n"[..], StatusKind::Ok),
        (
            b"BAD IMAP_PROTOCOL_ERROR Unrecognized command\r\n",
            StatusKind::Bad,
        ),
        (b"BYE shutting down\r\n", StatusKind::Bye),
    ] {
        assert_eq!(one(line).status().map(|s| s.kind), Some(kind));
    }
}

#[test]
fn imap_tagged_and_untagged() {
    let r = one(b"S0 OK success\r\n");
    assert_eq!(
        r.status().map(|s| s.tag.clone()),
        Some(StatusTag::Tagged("S0".into()))
    );
    let r = one(b"G10 NO IMAP_MAILBOX_NONEXISTENT No Such Mailbox\r\n");
    assert_eq!(
        r.status().and_then(|s| s.error.as_deref()),
        Some("IMAP_MAILBOX_NONEXISTENT")
    );
    let r = one(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n");
    let s = r.status().expect("status");
    assert_eq!(s.tag, StatusTag::Untagged);
    assert_eq!(s.code(), Some("CAPABILITY IMAP4rev1 LITERAL+"));
    assert!(!r.is_final());
    assert!(responses(b"S0 FOO bar\r\n")[0].is_err());
}

#[test]
fn continuation_and_banner() {
    assert_eq!(
        one(b"+ go ahead\r\n"),
        Response::Continuation("go ahead".into())
    );
    let r = one(b"* SASL PLAIN LOGIN\r\n");
    assert_eq!(
        r,
        Response::Data {
            name: "SASL".into(),
            values: vec![Value::atom("PLAIN"), Value::atom("LOGIN")]
        }
    );
    assert_eq!(one(b"* SIEVE-MAILBOX\r\n").value(), None);
    let r = one(b"* Fatal error: can't \"open\r\n");
    assert_eq!(
        r,
        Response::Text {
            name: "Fatal".into(),
            text: "error: can't \"open".into()
        }
    );
}

#[test]
fn data_values_and_accessors() {
    let r = one(
        b"* MAILBOX %(UNIQUEID epf7 SYNC_CRC 871169389 ACL \"alice\tlrs\t\" \
          FLAGS (\\Seen) USERID \"\" X NIL Q \"NIL\" H 00000000000000ff)\r\n",
    );
    assert_eq!(r.name(), Some("MAILBOX"));
    let v = r.value().expect("one value");
    assert_eq!(v.get_str("UNIQUEID"), Some("epf7"));
    assert_eq!(v.get_u64("SYNC_CRC"), Some(871169389));
    assert_eq!(v.get_str("ACL"), Some("alice\tlrs\t"));
    assert_eq!(v.get_list("FLAGS"), Some(&[Value::flag("\\Seen")][..]));
    assert_eq!(v.get_str("USERID"), Some(""));
    assert_eq!(v.get("X"), Some(&Value::Nil));
    assert_eq!(v.get_str("Q"), Some("NIL"));
    assert_eq!(v.get("H").and_then(Value::as_hex64), Some(255));
    assert_eq!(v.get("UNIQUEID").and_then(Value::as_u64), None);
    assert_eq!(Value::atom("18446744073709551615").as_i64(), Some(-1));
    assert_eq!(Value::atom("18446744073709551616").as_u64(), None);
    assert_eq!(Value::atom("-1").as_u64(), None);
}

#[test]
fn cyrus_leniencies() {
    // Items need no space when the boundary is clear; escapes are read.
    let r = one(b"* X (a\"b c\"(d)\"e\\\"f\")\r\n");
    assert_eq!(
        r.value(),
        Some(&Value::list([
            Value::atom("a"),
            Value::atom("b c"),
            Value::list([Value::atom("d")]),
            Value::atom("e\"f"),
        ]))
    );
    // `{`, `%` and `\` inside an atom are atom bytes; no literal here.
    let r = one(b"* X a{5}\r\n");
    assert_eq!(r.value(), Some(&Value::atom("a{5}")));
    // Bare LF ends a line too.
    assert_eq!(
        one(b"OK done\n").status().map(|s| s.kind),
        Some(StatusKind::Ok)
    );
}

#[test]
fn literals_in_responses() {
    let r = one(b"* SIEVE %(FILENAME f CONTENT {5}\r\na\r\nb\r SIZE 5)\r\n");
    assert_eq!(
        r.value().and_then(|v| v.get_str("CONTENT")),
        Some("a\r\nb\r")
    );
    let r = one(b"* X {3+}\r\n\x00\xff) b\r\n");
    assert_eq!(
        r,
        Response::Data {
            name: "X".into(),
            values: vec![Value::bytes(vec![0, 0xff, b')']), Value::atom("b")]
        }
    );
}

#[test]
fn syntax_error_is_per_message() {
    let r = responses(b"* X (a\r\nOK fine\r\n* X %x\r\n* Y )\r\n");
    assert!(r[0].is_err());
    assert!(r[1].is_ok());
    assert!(r[2].is_err() || matches!(r[2], Ok(Response::Text { .. })));
    assert_eq!(r.len(), 4);
}

#[test]
fn limits_refuse_before_allocating() {
    let limits = Limits {
        max_literal: 10,
        ..Limits::default()
    };
    let mut p = ResponseParser::responses(limits);
    p.feed(b"* X {4294967296000}\r\n");
    assert!(matches!(
        p.next_event(),
        Err(DlistError::LiteralTooLarge { .. })
    ));
    assert_eq!(p.next_event(), Err(DlistError::Failed));

    let mut p = ResponseParser::responses(Limits {
        max_line: 16,
        ..Limits::default()
    });
    p.feed(b"* X aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert!(matches!(
        p.next_event(),
        Err(DlistError::LineTooLong { .. })
    ));

    let mut p = ResponseParser::responses(Limits {
        max_file_literal: 100,
        ..Limits::default()
    });
    p.feed(b"* MESSAGE %{default abc 101}\r\n");
    assert!(matches!(
        p.next_event(),
        Err(DlistError::FileLiteralTooLarge { .. })
    ));

    let mut p = ResponseParser::responses(Limits {
        max_depth: 3,
        ..Limits::default()
    });
    p.feed(b"* X ((((a))))\r\n* X (((a)))\r\n");
    assert!(matches!(
        p.next_event(),
        Err(DlistError::TooDeep { limit: 3 })
    ));
    assert!(matches!(p.next_event(), Ok(Some(Event::Message(_)))));

    let mut p = ResponseParser::responses(Limits {
        max_message: 20,
        max_literal: 1000,
        ..Limits::default()
    });
    p.feed(b"* X {100}\r\n");
    assert!(matches!(
        p.next_event(),
        Err(DlistError::MessageTooLarge { .. })
    ));
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let mut input = b"* X ".to_vec();
    input.extend(std::iter::repeat_n(b'(', 100_000));
    input.extend_from_slice(b"\r\n");
    let r = responses(&input);
    assert!(matches!(r[0], Err(DlistError::TooDeep { .. })));
}

#[test]
fn file_literal_streams_in_pieces() {
    let guid = "483a26a489b4c95cc4f26ee12b0982a9283df26d";
    let wire = format!("* MESSAGE %{{default {guid} 10}}\r\n0123456789\r\nOK success\r\n");
    let wire = wire.as_bytes();
    // Split at every position, byte by byte.
    for split in 0..wire.len() {
        let mut p = ResponseParser::responses(Limits::default());
        let mut body = Vec::new();
        let mut starts = 0;
        let mut ends = 0;
        let mut msgs = Vec::new();
        for piece in [&wire[..split], &wire[split..]] {
            for b in piece.chunks(3) {
                p.feed(b);
                while let Some(ev) = p.next_event().expect("valid") {
                    match ev {
                        Event::FileLiteralStart(f) => {
                            starts += 1;
                            assert_eq!(f.guid, guid);
                            assert_eq!(p.file_literal_remaining(), Some(10));
                        }
                        Event::FileLiteralChunk(c) => {
                            assert!(c.len() <= 3);
                            body.extend_from_slice(c);
                        }
                        Event::FileLiteralEnd => ends += 1,
                        Event::Message(m) => msgs.push(m),
                    }
                }
            }
        }
        assert_eq!((starts, ends), (1, 1));
        assert_eq!(body, b"0123456789");
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0].value().and_then(Value::as_file).map(|f| f.size),
            Some(10)
        );
        assert!(p.is_idle());
    }
}

#[test]
fn commands_parse_both_transports() {
    let mut p = CommandParser::commands(Limits::default(), Transport::Imap);
    p.feed(b"S0 SYNCAPPLY CAPABILITIES (SIEVE-MAILBOX)\r\n");
    let Ok(Some(Event::Message(c))) = p.next_event() else {
        panic!("no command")
    };
    assert_eq!(c.tag.as_deref(), Some("S0"));
    assert_eq!(c.name(), Some("CAPABILITIES"));
    assert_eq!(c.value(), Some(&Value::atom_list(["SIEVE-MAILBOX"])));

    let mut p = CommandParser::commands(Limits::default(), Transport::Csync);
    p.feed(b"EXIT\r\n\r\n");
    assert!(matches!(p.next_event(), Ok(Some(Event::Message(c))) if c.verb == "EXIT"));
    assert!(p.next_event().is_err(), "an empty line is not a command");
}

#[test]
fn parse_value_whole_buffer() {
    let v = parse_value(b"%(A (1 2) B {2}\r\nxy)", &Limits::default()).expect("ok");
    assert_eq!(v.get_str("B"), Some("xy"));
    assert!(parse_value(b"(a) b", &Limits::default()).is_err());
    assert!(parse_value(b"%{p g 0}\r\n", &Limits::default()).is_err());
}

#[test]
fn display_is_the_wire_form() {
    let v = Value::list([Value::atom("a b"), Value::num(1)]);
    assert_eq!(v.to_string(), "(\"a b\" 1)");
}

#[test]
fn text_fallback_round_trips() {
    // Found by fuzzing: a name glued to a list is a syntax error, not text
    // (text would be re-encoded with a space and read back as data).
    assert!(responses(b"* B?D\x1f() \r\n")[0].is_err());
    // Found by fuzzing: non-UTF-8 text is an error, not lossily kept text
    // that would read back as data.
    assert!(responses(b"* ME]ILBOX 7+ %(PP\xb7* x)\r\n")[0].is_err());
    // Plain text lines still fall back.
    let r = one(b"* Fatal error: bad config (line 3\r\n");
    assert!(matches!(r, Response::Text { .. }), "{r:?}");
}
