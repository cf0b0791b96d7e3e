//! The SASL client mechanisms against real Cyrus 3.6.1: every mechanism the replica's
//! sync_server (csync banner `* SASL …`) and imapd (`AUTH=…`) offer authenticates
//! with the right password, mutual authentication verifies, and a wrong password is
//! refused with `NO`. A small std-TCP driver does the AUTHENTICATE exchange and the
//! base64; the state machines under test do the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use cyrsync::proto::sasl::{
    Client, ClientMechanism, Credentials, Mechanism, Policy, SaslError, Service, Step, Target,
    mechanisms_from_capabilities, mechanisms_from_csync_banner, select,
};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One connection to sync_server or imapd, before authentication.
struct Conn {
    service: Service,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// Mechanisms offered before authentication.
    offered: Vec<String>,
    /// IMAP `SASL-IR` (csync always takes an initial response).
    sasl_ir: bool,
}

/// How an AUTHENTICATE exchange ended.
#[derive(Debug)]
struct Outcome {
    /// The server's final line (`OK …`, `NO …`, `BAD …`), tag stripped.
    status: String,
    /// What the client state machine said, if it failed.
    client_error: Option<SaslError>,
    /// Challenges the server sent.
    challenges: usize,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.starts_with("OK") && self.client_error.is_none()
    }
}

impl Conn {
    fn open(service: Service, port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut conn = Conn {
            service,
            reader: BufReader::new(stream),
            writer,
            offered: Vec::new(),
            sasl_ir: true,
        };
        match service {
            Service::Csync => loop {
                let line = conn.line();
                if let Some(mechs) = mechanisms_from_csync_banner(&line) {
                    conn.offered = mechs;
                }
                if line.starts_with("* OK") {
                    break;
                }
            },
            Service::Imap => {
                let greeting = conn.line();
                assert!(greeting.starts_with("* OK"), "greeting {greeting}");
                conn.send("C01 CAPABILITY");
                loop {
                    let line = conn.line();
                    if line.starts_with("* CAPABILITY") {
                        conn.offered = mechanisms_from_capabilities(&line);
                        conn.sasl_ir = line
                            .split_ascii_whitespace()
                            .any(|w| w.eq_ignore_ascii_case("SASL-IR"));
                    }
                    if line.starts_with("C01 ") {
                        assert!(line.starts_with("C01 OK"), "{line}");
                        break;
                    }
                }
            }
        }
        conn
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        assert!(!line.is_empty(), "connection closed");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
    }

    fn tag(&self) -> &'static str {
        match self.service {
            Service::Csync => "",
            Service::Imap => "A01 ",
        }
    }

    /// Runs AUTHENTICATE with `client`; uses the initial response when `use_ir`.
    fn authenticate(&mut self, client: &mut Client, use_ir: bool) -> Outcome {
        let tag = self.tag();
        let mut command = format!("{tag}AUTHENTICATE {}", client.mechanism());
        let ir = if use_ir && self.sasl_ir {
            client.initial_response().expect("initial response")
        } else {
            None
        };
        if let Some(ir) = ir {
            command.push(' ');
            command.push_str(&B64.encode(ir.as_bytes()));
        }
        self.send(&command);
        let mut challenges = 0;
        let mut client_error = None;
        loop {
            let line = self.line();
            if let Some(b64) = line.strip_prefix('+') {
                challenges += 1;
                let challenge = B64.decode(b64.trim()).expect("challenge is base64");
                match client.step(&challenge) {
                    Ok(Step::Respond(r)) => self.send(&B64.encode(r.as_bytes())),
                    Ok(Step::Done) => self.send(""),
                    Err(e) => {
                        // RFC 4422 §3.5 / RFC 3501 §6.2.2: "*" cancels.
                        client_error = Some(e);
                        self.send("*");
                    }
                }
                continue;
            }
            if line.starts_with("* ") {
                continue;
            }
            let status = line
                .strip_prefix(tag)
                .unwrap_or_else(|| panic!("untagged final line {line:?}"))
                .to_owned();
            if status.starts_with("OK") && client_error.is_none() {
                client_error = client.finish(None).err();
            }
            return Outcome {
                status,
                client_error,
                challenges,
            };
        }
    }

    /// Proves the session is authenticated with a command only a logged-in user may
    /// run. sync_server serves admins only: it answers a logged-in non-admin
    /// "NO Permission denied" (and a stranger "NO Please authenticate first").
    fn check_logged_in(&mut self, admin: bool) {
        match self.service {
            Service::Csync => {
                self.send("NOOP");
                let line = self.line();
                let expected = if admin { "OK" } else { "NO Permission denied" };
                assert!(line.starts_with(expected), "NOOP after login: {line}");
                self.send("EXIT");
            }
            Service::Imap => {
                self.send("C02 LIST \"\" \"\"");
                loop {
                    let line = self.line();
                    if line.starts_with("C02 ") {
                        assert!(line.starts_with("C02 OK"), "LIST after login: {line}");
                        break;
                    }
                }
                self.send("C03 LOGOUT");
            }
        }
    }
}

fn target(service: Service) -> Target {
    Target {
        service,
        host: "127.0.0.1".into(),
    }
}

fn port(pair: &CyrusPair, service: Service) -> u16 {
    match service {
        Service::Csync => pair.replica.csync_port,
        Service::Imap => pair.replica.imap_port,
    }
}

/// The mechanisms on offer that cyrsync implements; all six must be there, or the
/// pair lacks a SASL plugin and the test would silently cover less.
fn offered_mechanisms(pair: &CyrusPair, service: Service) -> Vec<Mechanism> {
    let conn = Conn::open(service, port(pair, service));
    let ours: Vec<Mechanism> = conn
        .offered
        .iter()
        .filter_map(|n| Mechanism::from_name(n))
        .collect();
    for m in Mechanism::PREFERENCE {
        assert!(
            ours.contains(&m),
            "{service:?} does not offer {m} (offered {:?}); is libsasl2-modules installed \
             and sasl_mech_list set in the pair?",
            conn.offered
        );
    }
    ours
}

fn login(
    pair: &CyrusPair,
    service: Service,
    mech: Mechanism,
    creds: &Credentials,
    use_ir: bool,
) -> (Conn, Outcome) {
    let mut conn = Conn::open(service, port(pair, service));
    let mut client = Client::new(mech, creds, &target(service)).expect("client");
    let outcome = conn.authenticate(&mut client, use_ir);
    (conn, outcome)
}

#[test]
fn every_offered_mechanism_authenticates_against_real_cyrus() {
    let pair = CyrusPair::start();
    let mut results = Vec::new();
    for service in [Service::Csync, Service::Imap] {
        for mech in offered_mechanisms(&pair, service) {
            // With and without SASL-IR: without it the server opens with an empty
            // challenge, which client-first mechanisms answer with their first message.
            for use_ir in [true, false] {
                if !use_ir && !mech.client_first() {
                    continue;
                }
                for (user, password) in [(REPL_USER, REPL_PASSWORD), ("alice", "alicepw")] {
                    let creds = Credentials::new(user, password);
                    let (mut conn, outcome) = login(&pair, service, mech, &creds, use_ir);
                    assert!(
                        outcome.ok(),
                        "{service:?} {mech} (ir={use_ir}) as {user}: {outcome:?}"
                    );
                    // SCRAM and DIGEST-MD5 end with the server's proof as a challenge,
                    // answered by Step::Done; finish() verified it.
                    conn.check_logged_in(user == REPL_USER);
                    let status: String = outcome.status.chars().take(40).collect();
                    results.push(format!(
                        "{service:?} {mech} ir={use_ir} {user}: {status}… ({} challenges)",
                        outcome.challenges
                    ));
                }
            }
        }
    }
    eprintln!("{}", results.join("\n"));
}

#[test]
fn wrong_password_is_refused_by_real_cyrus() {
    let pair = CyrusPair::start();
    // Each failure costs failedloginpause (3 s), so run them side by side.
    let mut handles = Vec::new();
    for service in [Service::Csync, Service::Imap] {
        for mech in offered_mechanisms(&pair, service) {
            let p = port(&pair, service);
            handles.push(thread::spawn(move || {
                let mut conn = Conn::open(service, p);
                let creds = Credentials::new(REPL_USER, "not-the-password");
                let mut client = Client::new(mech, &creds, &target(service)).expect("client");
                let outcome = conn.authenticate(&mut client, true);
                (service, mech, outcome)
            }));
        }
    }
    for h in handles {
        let (service, mech, outcome) = h.join().expect("thread");
        assert!(
            outcome.status.starts_with("NO"),
            "{service:?} {mech} with a wrong password: {outcome:?}"
        );
        assert!(!outcome.ok());
        eprintln!("{service:?} {mech} wrong password: {}", outcome.status);
    }
}

#[test]
fn digest_md5_realm_and_service_name_matter_to_real_cyrus() {
    let pair = CyrusPair::start();
    // sync_realm set to the replica's realm (its servername) works like none.
    let mut creds = Credentials::new(REPL_USER, REPL_PASSWORD);
    creds.realm = Some(pair.replica.servername.clone());
    for service in [Service::Csync, Service::Imap] {
        let (mut conn, outcome) = login(&pair, service, Mechanism::DigestMd5, &creds, true);
        assert!(outcome.ok(), "{service:?} with realm: {outcome:?}");
        conn.check_logged_in(true);
    }
    // The digest-uri service must be the transport's ("csync" for sync_server):
    // Cyrus SASL refuses "imap/…" on the csync port.
    let mut conn = Conn::open(Service::Csync, pair.replica.csync_port);
    let mut client = Client::new(
        Mechanism::DigestMd5,
        &Credentials::new(REPL_USER, REPL_PASSWORD),
        &target(Service::Imap),
    )
    .expect("client");
    let outcome = conn.authenticate(&mut client, true);
    assert!(
        outcome.status.starts_with("NO"),
        "imap digest-uri accepted by sync_server: {outcome:?}"
    );
}

#[test]
fn selection_from_real_offers() {
    let pair = CyrusPair::start();
    let creds = Credentials::new(REPL_USER, REPL_PASSWORD);
    for service in [Service::Csync, Service::Imap] {
        let offered = Conn::open(service, port(&pair, service)).offered;
        let chosen = select(&offered, false, &creds, &Policy::default()).expect("select");
        assert_eq!(
            chosen,
            Mechanism::ScramSha256,
            "{service:?} offers {offered:?}"
        );
        let forced = Policy {
            forced: Some("PLAIN".into()),
            allow_plaintext: false,
        };
        let err = select(&offered, false, &creds, &forced).expect_err("PLAIN without TLS");
        assert!(err.to_string().contains("cyrsync_allow_plaintext"), "{err}");
        // And the chosen one really logs in.
        let (mut conn, outcome) = login(&pair, service, chosen, &creds, true);
        assert!(outcome.ok(), "{service:?} {chosen}: {outcome:?}");
        conn.check_logged_in(true);
    }
}
