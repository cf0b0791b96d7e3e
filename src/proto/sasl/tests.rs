//! Known-answer tests from the RFCs, mutual-authentication failures, selection, and
//! property tests that malformed challenges never panic.

use proptest::prelude::*;

use super::digest_md5::parse_directives;
use super::scram::Hash;
use super::*;

fn creds(user: &str, password: &str) -> Credentials {
    Credentials::new(user, password)
}

fn respond(step: Step) -> Vec<u8> {
    match step {
        Step::Respond(r) => r.as_bytes().to_vec(),
        Step::Done => panic!("expected a response, got Done"),
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

// RFC 5802 §5.
const SHA1_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SHA1_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const SHA1_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SHA1_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

// RFC 7677 §3.
const SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SHA256_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const SHA256_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SHA256_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn scram_vector(hash: Hash, nonce: &str, first: &str, final_: &str, server_final: &str) {
    let mut m = Scram::new(hash, &creds("user", "pencil"), nonce.to_owned());
    let ir = m.initial_response().expect("ir").expect("client first");
    assert_eq!(text(ir.as_bytes()), format!("n,,n=user,r={nonce}"));
    let client_final = respond(m.step(first.as_bytes()).expect("server-first"));
    assert_eq!(text(&client_final), final_);
    assert_eq!(
        m.step(server_final.as_bytes()).expect("server-final"),
        Step::Done
    );
    m.finish(None).expect("verified");
}

#[test]
fn scram_sha1_rfc5802_vector() {
    scram_vector(
        Hash::Sha1,
        SHA1_NONCE,
        SHA1_SERVER_FIRST,
        SHA1_CLIENT_FINAL,
        SHA1_SERVER_FINAL,
    );
}

#[test]
fn scram_sha256_rfc7677_vector() {
    scram_vector(
        Hash::Sha256,
        SHA256_NONCE,
        SHA256_SERVER_FIRST,
        SHA256_CLIENT_FINAL,
        SHA256_SERVER_FINAL,
    );
}

#[test]
fn scram_without_sasl_ir_answers_the_empty_challenge() {
    let mut m = Scram::new(Hash::Sha256, &creds("user", "pencil"), SHA256_NONCE.into());
    let first = respond(m.step(b"").expect("empty challenge"));
    assert_eq!(text(&first), format!("n,,n=user,r={SHA256_NONCE}"));
    let client_final = respond(m.step(SHA256_SERVER_FIRST.as_bytes()).expect("first"));
    assert_eq!(text(&client_final), SHA256_CLIENT_FINAL);
}

#[test]
fn scram_server_final_as_success_data_verifies() {
    let mut m = Scram::new(Hash::Sha1, &creds("user", "pencil"), SHA1_NONCE.into());
    m.initial_response().expect("ir");
    m.step(SHA1_SERVER_FIRST.as_bytes()).expect("first");
    m.finish(Some(SHA1_SERVER_FINAL.as_bytes()))
        .expect("server signature in OK verifies");
}

#[test]
fn scram_bad_server_signature_is_rejected() {
    let mut m = Scram::new(Hash::Sha256, &creds("user", "pencil"), SHA256_NONCE.into());
    m.initial_response().expect("ir");
    m.step(SHA256_SERVER_FIRST.as_bytes()).expect("first");
    // The RFC 5802 (SHA-1) signature: well-formed, wrong.
    let err = m.step(SHA1_SERVER_FINAL.as_bytes()).expect_err("must fail");
    assert!(
        matches!(err, SaslError::ServerProofMismatch(Mechanism::ScramSha256)),
        "{err}"
    );
    // Nor may a later OK succeed.
    assert!(m.finish(None).is_err());
}

#[test]
fn scram_ok_without_server_final_is_rejected() {
    let mut m = Scram::new(Hash::Sha256, &creds("user", "pencil"), SHA256_NONCE.into());
    m.initial_response().expect("ir");
    m.step(SHA256_SERVER_FIRST.as_bytes()).expect("first");
    let err = m.finish(None).expect_err("must fail");
    assert!(matches!(err, SaslError::ServerNotVerified(_)), "{err}");
}

#[test]
fn scram_wrong_password_gives_different_proof_and_rejects_real_server_final() {
    let mut m = Scram::new(Hash::Sha1, &creds("user", "pencil2"), SHA1_NONCE.into());
    m.initial_response().expect("ir");
    let client_final = respond(m.step(SHA1_SERVER_FIRST.as_bytes()).expect("first"));
    assert_ne!(text(&client_final), SHA1_CLIENT_FINAL);
    assert!(m.step(SHA1_SERVER_FINAL.as_bytes()).is_err());
}

#[test]
fn scram_server_error_is_reported() {
    let mut m = Scram::new(Hash::Sha1, &creds("user", "pencil"), SHA1_NONCE.into());
    m.initial_response().expect("ir");
    m.step(SHA1_SERVER_FIRST.as_bytes()).expect("first");
    let err = m.step(b"e=invalid-proof").expect_err("error");
    assert!(
        matches!(&err, SaslError::ServerError { message, .. } if message == "invalid-proof"),
        "{err}"
    );
}

#[test]
fn scram_rejects_bad_server_first() {
    for bad in [
        // nonce not extending ours
        "r=xyz,s=QSXCR+Q6sek8bf92,i=4096",
        // same nonce, nothing added
        "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
        "m=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawLx,s=!!,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4095",
        "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999999999999999999",
        "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=-1",
        "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92",
        "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawLx,i=4096",
        "",
    ] {
        let mut m = Scram::new(Hash::Sha1, &creds("user", "pencil"), SHA1_NONCE.into());
        m.initial_response().expect("ir");
        assert!(m.step(bad.as_bytes()).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn scram_escapes_saslname_and_sends_authzid() {
    let mut c = creds("us=er,x", "pencil");
    c.authzid = Some("a,b=c".into());
    let mut m = Scram::new(Hash::Sha256, &c, "NONCE".into());
    let ir = m.initial_response().expect("ir").expect("first");
    assert_eq!(text(ir.as_bytes()), "n,a=a=2Cb=3Dc,n=us=3Der=2Cx,r=NONCE");
    // The channel binding attribute carries the whole GS2 header (RFC 5802 §7).
    let client_final = respond(
        m.step(b"r=NONCEsrv,s=QSXCR+Q6sek8bf92,i=4096")
            .expect("first"),
    );
    use base64::Engine as _;
    let gs2 = base64::engine::general_purpose::STANDARD.encode("n,a=a=2Cb=3Dc,");
    assert!(text(&client_final).starts_with(&format!("c={gs2},r=NONCEsrv,p=")));
}

// RFC 2195 §2.
#[test]
fn cram_md5_rfc2195_vector() {
    let mut m = CramMd5::new(&creds("tim", "tanstaaftanstaaf"));
    assert!(m.initial_response().expect("ir").is_none());
    let r = respond(
        m.step(b"<1896.697170952@postoffice.reston.mci.net>")
            .expect("step"),
    );
    assert_eq!(text(&r), "tim b913a602c7eda7a495b4e6e7334d3890");
    m.finish(None).expect("finish");
    assert!(m.step(b"<again>").is_err());
}

fn digest_rfc2831(cnonce: &str) -> DigestMd5 {
    let target = Target {
        service: Service::Imap,
        host: "elwood.innosoft.com".into(),
    };
    DigestMd5::new(&creds("chris", "secret"), &target, cnonce.into())
}

// RFC 2831 §4, the IMAP example.
const DIGEST_CHALLENGE: &str = "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",algorithm=md5-sess,charset=utf-8";

fn directive<'a>(response: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
    let (_, v) = response
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"));
    text(v)
}

#[test]
fn digest_md5_rfc2831_vector() {
    let mut m = digest_rfc2831("OA6MHXh6VqTrRk");
    assert!(m.initial_response().expect("ir").is_none());
    let r = respond(m.step(DIGEST_CHALLENGE.as_bytes()).expect("step"));
    let d = parse_directives(&r).expect("our own response parses");
    assert_eq!(
        directive(&d, "response"),
        "d388dad90d4bbd760a152321f2143af7"
    );
    assert_eq!(directive(&d, "username"), "chris");
    assert_eq!(directive(&d, "realm"), "elwood.innosoft.com");
    assert_eq!(directive(&d, "nonce"), "OA6MG9tEQGm2hh");
    assert_eq!(directive(&d, "cnonce"), "OA6MHXh6VqTrRk");
    assert_eq!(directive(&d, "nc"), "00000001");
    assert_eq!(directive(&d, "qop"), "auth");
    assert_eq!(directive(&d, "digest-uri"), "imap/elwood.innosoft.com");
    assert_eq!(directive(&d, "charset"), "utf-8");
    assert_eq!(
        m.step(b"rspauth=ea40f60335c427b5527b84dbabcdfffd")
            .expect("rspauth"),
        Step::Done
    );
    m.finish(None).expect("verified");
}

#[test]
fn digest_md5_bad_rspauth_is_rejected() {
    let mut m = digest_rfc2831("OA6MHXh6VqTrRk");
    m.step(DIGEST_CHALLENGE.as_bytes()).expect("step");
    let err = m
        .step(b"rspauth=ea40f60335c427b5527b84dbabcdfffe")
        .expect_err("must fail");
    assert!(matches!(err, SaslError::ServerProofMismatch(_)), "{err}");
}

#[test]
fn digest_md5_ok_without_rspauth_is_rejected_and_success_data_verifies() {
    let mut m = digest_rfc2831("OA6MHXh6VqTrRk");
    m.step(DIGEST_CHALLENGE.as_bytes()).expect("step");
    assert!(matches!(
        m.finish(None),
        Err(SaslError::ServerNotVerified(_))
    ));
    let mut m = digest_rfc2831("OA6MHXh6VqTrRk");
    m.step(DIGEST_CHALLENGE.as_bytes()).expect("step");
    m.finish(Some(b"rspauth=ea40f60335c427b5527b84dbabcdfffd"))
        .expect("rspauth as success data");
}

#[test]
fn digest_md5_realm_choice_and_service() {
    let challenge = b"realm=\"first\",realm=\"second\",nonce=\"n\",algorithm=md5-sess";
    let target = Target {
        service: Service::Csync,
        host: "replica.example".into(),
    };
    // No configured realm: the first offered.
    let mut m = DigestMd5::new(&creds("u", "p"), &target, "c".into());
    let d = parse_directives(&respond(m.step(challenge).expect("step"))).expect("parse");
    assert_eq!(directive(&d, "realm"), "first");
    assert_eq!(directive(&d, "digest-uri"), "csync/replica.example");
    assert!(d.iter().all(|(n, _)| n != "charset"));
    // Configured realm wins, even if not offered.
    let mut c = creds("u", "p");
    c.realm = Some("mine".into());
    let mut m = DigestMd5::new(&c, &target, "c".into());
    let d = parse_directives(&respond(m.step(challenge).expect("step"))).expect("parse");
    assert_eq!(directive(&d, "realm"), "mine");
    // None offered, none configured: no realm directive.
    let mut m = DigestMd5::new(&creds("u", "p"), &target, "c".into());
    let r = respond(m.step(b"nonce=\"n\",algorithm=md5-sess").expect("step"));
    let d = parse_directives(&r).expect("parse");
    assert!(d.iter().all(|(n, _)| n != "realm"));
}

#[test]
fn digest_md5_refuses_challenges_without_auth_or_nonce() {
    for bad in [
        "nonce=\"n\",qop=\"auth-int,auth-conf\",algorithm=md5-sess",
        "qop=\"auth\",algorithm=md5-sess",
        "nonce=\"n\",qop=\"auth\"",
        "nonce=\"n\",nonce=\"m\",algorithm=md5-sess",
        "nonce=\"n,algorithm=md5-sess",
        "nonce=\"n\" x,algorithm=md5-sess",
    ] {
        let mut m = digest_rfc2831("c");
        assert!(m.step(bad.as_bytes()).is_err(), "accepted {bad:?}");
    }
}

/// RFC 2831 §2.1.2.1: with charset=utf-8 the names go out as UTF-8 but are hashed as
/// ISO 8859-1 when they fit. Expected digests computed independently (Python hashlib).
#[test]
fn digest_md5_hashes_latin1_and_sends_utf8() {
    let target = Target {
        service: Service::Csync,
        host: "h".into(),
    };
    let mut m = DigestMd5::new(
        &creds("j\u{f6}rg", "p\u{e4}ssw\u{f6}rd"),
        &target,
        "c".into(),
    );
    let r = respond(
        m.step(b"realm=\"r\",nonce=\"n\",charset=utf-8,algorithm=md5-sess")
            .expect("step"),
    );
    let d = parse_directives(&r).expect("parse");
    assert_eq!(directive(&d, "username"), "j\u{f6}rg");
    assert_eq!(
        directive(&d, "response"),
        "f9eca4afe0b238e813288d3dd9fbc44e"
    );
    assert_eq!(
        m.step(b"rspauth=d13639f8eb9347ce3b677ab424d34318")
            .expect("rspauth"),
        Step::Done
    );
    // Without charset=utf-8 a name outside ISO 8859-1 cannot be sent.
    let mut m = DigestMd5::new(&creds("\u{4e16}", "p"), &target, "c".into());
    assert!(matches!(
        m.step(b"nonce=\"n\",algorithm=md5-sess"),
        Err(SaslError::Encoding { .. })
    ));
}

#[test]
fn directive_parser_handles_lws_empty_elements_and_escapes() {
    let d = parse_directives(b" , realm = \"a\\\"b\" ,, qop=\"auth, auth-int\" ,stale=true ")
        .expect("parse");
    assert_eq!(
        d,
        vec![
            ("realm".to_owned(), b"a\"b".to_vec()),
            ("qop".to_owned(), b"auth, auth-int".to_vec()),
            ("stale".to_owned(), b"true".to_vec()),
        ]
    );
}

#[test]
fn plain_message_and_no_sasl_ir() {
    let mut c = creds("repl", "replpw");
    let mut m = Plain::new(&c);
    assert_eq!(
        m.initial_response().expect("ir").expect("msg").as_bytes(),
        b"\0repl\0replpw"
    );
    m.finish(None).expect("ok");
    c.authzid = Some("alice".into());
    let mut m = Plain::new(&c);
    assert_eq!(respond(m.step(b"").expect("empty")), b"alice\0repl\0replpw");
    assert!(m.step(b"").is_err());
}

#[test]
fn login_two_challenges() {
    let mut m = Login::new(&creds("repl", "replpw"));
    assert!(m.initial_response().expect("ir").is_none());
    assert!(m.finish(None).is_err());
    assert_eq!(respond(m.step(b"Username:").expect("user")), b"repl");
    assert_eq!(respond(m.step(b"Password:").expect("pass")), b"replpw");
    assert!(m.step(b"More:").is_err());
    m.finish(None).expect("ok");
}

#[test]
fn passwords_never_show_in_debug() {
    let mut c = creds("repl", "s3cr3t-Pw");
    c.realm = Some("r".into());
    let target = Target {
        service: Service::Csync,
        host: "h".into(),
    };
    let mut dumps = vec![format!("{c:?}")];
    for mech in Mechanism::PREFERENCE {
        let mut client = Client::new(mech, &c, &target).expect("client");
        dumps.push(format!("{client:?}"));
        if let Ok(Some(ir)) = client.initial_response() {
            dumps.push(format!("{ir:?} {:?}", Step::Respond(ir.clone())));
        }
        dumps.push(format!("{client:?}"));
    }
    for d in dumps {
        assert!(!d.contains("s3cr3t"), "password in Debug output: {d}");
    }
}

fn offered(names: &str) -> Vec<String> {
    names.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn selection_prefers_strongest() {
    let c = creds("repl", "pw");
    let p = Policy::default();
    let all = offered("PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
    assert_eq!(
        select(&all, false, &c, &p).expect("m"),
        Mechanism::ScramSha256
    );
    let some = offered("login plain cram-md5 digest-md5");
    assert_eq!(
        select(&some, false, &c, &p).expect("m"),
        Mechanism::DigestMd5
    );
    assert_eq!(
        select(&offered("PLAIN LOGIN"), true, &c, &p).expect("m"),
        Mechanism::Plain
    );
    assert_eq!(
        select(&offered("GSSAPI LOGIN"), true, &c, &p).expect("m"),
        Mechanism::Login
    );
}

#[test]
fn selection_refuses_plaintext_without_tls() {
    let c = creds("repl", "pw");
    let err = select(
        &offered("PLAIN LOGIN GSSAPI"),
        false,
        &c,
        &Policy::default(),
    )
    .expect_err("no mech");
    let msg = err.to_string();
    assert!(msg.contains("PLAIN LOGIN GSSAPI"), "{msg}");
    assert!(
        msg.contains("SCRAM-SHA-256 SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5]"),
        "{msg}"
    );
    assert!(msg.contains("cyrsync_allow_plaintext"), "{msg}");
    let allow = Policy {
        allow_plaintext: true,
        ..Policy::default()
    };
    assert_eq!(
        select(&offered("PLAIN LOGIN"), false, &c, &allow).expect("m"),
        Mechanism::Plain
    );
    let err = select(&offered("GSSAPI"), true, &c, &Policy::default()).expect_err("none");
    assert!(err.to_string().contains("sasl_mech_list"), "{err}");
}

#[test]
fn selection_forced() {
    let c = creds("repl", "pw");
    let all = offered("PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256");
    let forced = |f: &str| Policy {
        forced: Some(f.into()),
        allow_plaintext: false,
    };
    assert_eq!(
        select(&all, false, &c, &forced("cram-md5")).expect("m"),
        Mechanism::CramMd5
    );
    assert_eq!(
        select(&all, true, &c, &forced("PLAIN")).expect("m"),
        Mechanism::Plain
    );
    // A list: the strongest forced one that is offered.
    assert_eq!(
        select(&all, false, &c, &forced("CRAM-MD5 SCRAM-SHA-1")).expect("m"),
        Mechanism::ScramSha1
    );
    let err = select(&offered("PLAIN"), false, &c, &forced("SCRAM-SHA-1")).expect_err("x");
    assert!(err.to_string().contains("force_sasl_client_mech"), "{err}");
    let err = select(&all, false, &c, &forced("PLAIN")).expect_err("no tls");
    assert!(err.to_string().contains("cyrsync_allow_plaintext"), "{err}");
    let err = select(&offered("GSSAPI"), false, &c, &forced("GSSAPI")).expect_err("x");
    assert!(
        err.to_string().contains("does not implement GSSAPI"),
        "{err}"
    );
}

#[test]
fn selection_with_authzid_skips_cram_and_login() {
    let mut c = creds("repl", "pw");
    c.authzid = Some("alice".into());
    let p = Policy::default();
    assert!(select(&offered("CRAM-MD5 LOGIN"), true, &c, &p).is_err());
    assert_eq!(
        select(&offered("CRAM-MD5 PLAIN"), true, &c, &p).expect("m"),
        Mechanism::Plain
    );
    let target = Target {
        service: Service::Imap,
        host: "h".into(),
    };
    assert!(matches!(
        Client::new(Mechanism::CramMd5, &c, &target),
        Err(SaslError::AuthzidUnsupported(_))
    ));
}

#[test]
fn offered_lists_from_banner_and_capability() {
    assert_eq!(
        mechanisms_from_csync_banner("* SASL PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1"),
        Some(offered("PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1"))
    );
    assert_eq!(mechanisms_from_csync_banner("* COMPRESS DEFLATE"), None);
    assert_eq!(
        mechanisms_from_capabilities(
            "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=SCRAM-SHA-1 SASL-IR] ready"
        ),
        offered("PLAIN SCRAM-SHA-1")
    );
}

#[test]
fn mechanism_names_round_trip() {
    for m in Mechanism::PREFERENCE {
        assert_eq!(m.name().parse::<Mechanism>(), Ok(m));
        assert_eq!(m.name().to_lowercase().parse::<Mechanism>(), Ok(m));
    }
    assert!("GSSAPI".parse::<Mechanism>().is_err());
}

fn run_arbitrary(mech: Mechanism, use_ir: bool, challenges: &[Vec<u8>], ok_data: Option<&[u8]>) {
    let target = Target {
        service: Service::Csync,
        host: "h".into(),
    };
    let mut c = creds("user", "pencil");
    c.realm = Some("r".into());
    let mut client = Client::new(mech, &c, &target).expect("client");
    if use_ir {
        let _ = client.initial_response();
    }
    for ch in challenges {
        let _ = client.step(ch);
    }
    let _ = client.finish(ok_data);
}

proptest! {
    #[test]
    fn arbitrary_challenges_never_panic(
        mech in proptest::sample::select(Mechanism::PREFERENCE.to_vec()),
        use_ir in any::<bool>(),
        challenges in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4),
        ok_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..100)),
    ) {
        run_arbitrary(mech, use_ir, &challenges, ok_data.as_deref());
    }

    /// Challenges built from the mechanisms' own vocabulary reach deeper states.
    #[test]
    fn structured_challenges_never_panic(
        mech in proptest::sample::select(Mechanism::PREFERENCE.to_vec()),
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "r=", "s=", "i=", "v=", "e=", "m=", ",", "=", "\"", "\\", "realm", "nonce",
                "qop", "auth", "algorithm", "md5-sess", "charset", "utf-8", "rspauth",
                "4096", "QSXCR+Q6sek8bf92", "fyko", " ", "\u{e9}", "\0",
            ]),
            0..24),
    ) {
        let challenge = parts.concat().into_bytes();
        run_arbitrary(mech, true, &[challenge.clone(), challenge.clone(), challenge], None);
    }

    #[test]
    fn directive_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_directives(&input);
    }
}

proptest! {
    /// Only the true server signature verifies, whatever else the server sends.
    #[test]
    fn scram_arbitrary_server_final(data in proptest::collection::vec(any::<u8>(), 0..120)) {
        use base64::Engine as _;
        let m = Scram::new(Hash::Sha1, &creds("user", "pencil"), SHA1_NONCE.into());
        let expected = base64::engine::general_purpose::STANDARD
            .decode(&SHA1_SERVER_FINAL[2..])
            .expect("vector");
        let verified = m.verify_server_final(&data, &expected).is_ok();
        let first = data.split(|&b| b == b',').next();
        prop_assert_eq!(verified, first == Some(SHA1_SERVER_FINAL.as_bytes()));
        prop_assert!(m.verify_server_final(SHA1_SERVER_FINAL.as_bytes(), &expected).is_ok());
    }
}
