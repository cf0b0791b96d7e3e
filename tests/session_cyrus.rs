//! Sessions against a real Cyrus 3.6.1 master and replica: both transports,
//! every SASL mechanism the servers offer, COMPRESS, GET with streamed bodies,
//! refused passwords with a useful message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::time::Duration;

use cyrsync::config::{ChannelConfig, ChannelName, ImapdConf, Secret, Settings};
use cyrsync::dlist::{Command, KvList, Value};
use cyrsync::proto::greeting::Transport;
use cyrsync::proto::sasl::Mechanism;
use cyrsync::proto::session::{ConnectOptions, MemoryBodies, Session};
use cyrsync::proto::{ProtoError, Side};
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::CyrusPair;

fn channels(pair: &CyrusPair) -> Vec<ChannelConfig> {
    let conf = ImapdConf::load(&pair.master.imapd_conf()).unwrap();
    let settings = Settings::resolve(&conf, &[]).unwrap();
    settings.channels.into_iter().map(|c| c.config).collect()
}

fn channel(pair: &CyrusPair, name: Option<&str>) -> ChannelConfig {
    let want = ChannelName::new(name.unwrap_or(""));
    channels(pair)
        .into_iter()
        .find(|c| c.name == want)
        .expect("channel in the pair's imapd.conf")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn csync_and_imap_sessions_with_every_mechanism() {
    let pair = CyrusPair::start();
    let rt = rt();
    let default = channel(&pair, None);
    let chan2 = channel(&pair, Some("chan2"));
    rt.block_on(async {
        // Defaults: strongest mechanism, COMPRESS on, SIEVE-MAILBOX enabled.
        let opts = ConnectOptions::replica(&default).unwrap();
        let mut s = Session::connect(&opts).await.expect("csync session");
        let info = s.info().clone();
        assert_eq!(info.transport, Transport::Csync);
        assert_eq!(info.mechanism, Some(Mechanism::ScramSha256));
        assert!(info.compressed, "replica offers COMPRESS DEFLATE");
        assert!(info.capabilities.sieve_mailbox);
        assert!(info.server.contains("Cyrus sync server"), "{}", info.server);
        s.noop().await.unwrap();
        s.restart().await.unwrap();
        let items = s
            .command(Command::get("MAILBOXES", Value::atom_list(["user.nobody"])))
            .await
            .unwrap();
        assert!(items.is_empty(), "{items:?}");
        s.close().await;

        let opts = ConnectOptions::replica(&chan2).unwrap();
        let mut s = Session::connect(&opts).await.expect("imap session");
        assert_eq!(s.info().transport, Transport::Imap);
        assert!(s.info().capabilities.replication);
        assert!(s.info().compressed);
        s.noop().await.unwrap();
        s.restart().await.unwrap();
        s.close().await;

        // Every mechanism, forced, on both transports. PLAIN/LOGIN need the
        // plaintext permission without TLS.
        for mech in Mechanism::PREFERENCE {
            for base in [&default, &chan2] {
                let mut opts = ConnectOptions::replica(base).unwrap();
                opts.sasl_mech = Some(mech.name().to_string());
                opts.allow_plaintext = true;
                opts.compress = false;
                let mut s = Session::connect(&opts)
                    .await
                    .unwrap_or_else(|e| panic!("{mech} over {}: {e}", base.name));
                assert_eq!(s.info().mechanism, Some(mech));
                assert!(!s.info().compressed);
                s.noop().await.unwrap();
                s.close().await;
            }
        }
    });
}

#[test]
fn plaintext_mechanisms_are_refused_without_tls() {
    let pair = CyrusPair::start();
    let rt = rt();
    let mut opts = ConnectOptions::replica(&channel(&pair, None)).unwrap();
    opts.sasl_mech = Some("PLAIN".into());
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    assert!(matches!(err, ProtoError::Sasl { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("cyrsync_allow_plaintext"), "{text}");
}

/// `force_sasl_client_mech` is for the replica (it works around 3.6's
/// sync_client and SCRAM over IMAP); the master's own sync_server is read
/// with the strongest mechanism, and clear text is allowed to it only on
/// this host's loopback, never to a replica there.
#[test]
fn forced_mechanism_is_for_the_replica_and_loopback_is_trusted_only_for_the_master() {
    let pair = CyrusPair::start();
    let rt = rt();
    let mut ch = channel(&pair, Some("chan2"));
    ch.sasl_mech = Some("PLAIN".into());
    rt.block_on(async {
        let source = ConnectOptions::source(&ch);
        assert_eq!(source.sasl_mech, None);
        let s = Session::connect(&source).await.expect("master session");
        assert_eq!(s.info().mechanism, Some(Mechanism::ScramSha256));
        s.close().await;

        // PLAIN to the master's loopback sync_server: allowed.
        let mut plain = ConnectOptions::source(&ch);
        plain.sasl_mech = Some("PLAIN".into());
        let s = Session::connect(&plain)
            .await
            .expect("PLAIN to the master on loopback");
        assert_eq!(s.info().mechanism, Some(Mechanism::Plain));
        s.close().await;

        // The same to a replica on loopback: refused without TLS.
        let replica = ConnectOptions::replica(&ch).unwrap();
        assert_eq!(replica.sasl_mech.as_deref(), Some("PLAIN"));
        let err = Session::connect(&replica).await.unwrap_err();
        assert!(matches!(err, ProtoError::Sasl { .. }), "{err}");
    });
}

#[test]
fn wrong_password_and_trailing_comment_are_explained() {
    let pair = CyrusPair::start();
    let rt = rt();
    let base = channel(&pair, None);
    let mut opts = ConnectOptions::replica(&base).unwrap();
    opts.peer.credentials.password = Some(secret("not the password"));
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ProtoError::AuthFailed { .. }), "{text}");
    assert!(text.contains("sync_password"), "{text}");
    assert!(text.contains("SCRAM-SHA-256"), "{text}");

    // The administrator's classic: `sync_authname: repl # replication account`.
    let mut opts = ConnectOptions::replica(&base).unwrap();
    opts.peer.credentials.authname = Some("repl # replication account".into());
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("trailing `# comment`"), "{text}");

    // And a channel's own keys are named with the channel prefix.
    let mut opts = ConnectOptions::replica(&channel(&pair, Some("chan2"))).unwrap();
    opts.peer.credentials.password = None;
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    assert!(err.to_string().contains("chan2_sync_password"), "{err}");
}

fn secret(s: &str) -> Secret {
    // Secrets only come from imapd.conf; build one through the parser.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imapd.conf");
    std::fs::write(
        &path,
        format!("configdirectory: /tmp\nsync_host: h\nsync_authname: a\nsync_password: {s}\n"),
    )
    .unwrap();
    let conf = ImapdConf::load(&path).unwrap();
    let settings = Settings::resolve(&conf, &[]).unwrap();
    settings.channels[0]
        .config
        .replica
        .clone()
        .unwrap()
        .credentials
        .password
        .unwrap()
}

#[test]
fn source_session_reads_the_master_and_streams_bodies() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let sent: Vec<String> = (0..3).map(|n| message(n, "session test")).collect();
    for m in &sent {
        lmtp.deliver("alice", m);
    }
    drop(lmtp);
    let rt = rt();
    let opts = ConnectOptions::source(&channel(&pair, None));
    assert_eq!(opts.side, Side::Source);
    rt.block_on(async {
        let mut s = Session::connect(&opts).await.expect("source session");
        let items = s
            .command(Command::get("MAILBOXES", Value::atom_list(["user.alice"])))
            .await
            .unwrap();
        assert_eq!(items.len(), 1);
        let mbox = items[0].value().and_then(|v| v.as_kvlist()).unwrap();
        assert_eq!(mbox.get("LAST_UID").and_then(|v| v.as_u64()), Some(3));
        let uniqueid = mbox
            .get("UNIQUEID")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_string();

        let items = s
            .command(Command::get("FULLMAILBOX", Value::atom("user.alice")))
            .await
            .unwrap();
        let full = items[0].value().and_then(|v| v.as_kvlist()).unwrap();
        let records: Vec<_> = full
            .get("RECORD")
            .and_then(|v| v.as_list())
            .unwrap()
            .to_vec();
        assert_eq!(records.len(), 3);
        for (n, record) in records.iter().enumerate() {
            let rec = record.as_kvlist().unwrap();
            let guid = rec.get("GUID").and_then(|v| v.as_str()).unwrap();
            let uid = rec.get("UID").and_then(|v| v.as_u64()).unwrap();
            let mut bodies = MemoryBodies::default();
            let fetch = Command::get(
                "FETCH",
                Value::kvlist(
                    KvList::new()
                        .with("MBOXNAME", "user.alice")
                        .with("PARTITION", "default")
                        .with("UNIQUEID", uniqueid.as_str())
                        .with("GUID", guid)
                        .with("UID", Value::num(uid)),
                ),
            );
            let mut none = MemoryBodies::default();
            s.command_streaming(fetch, &mut none, &mut bodies)
                .await
                .unwrap();
            assert_eq!(bodies.bodies.len(), 1);
            let (header, body) = &bodies.bodies[0];
            assert_eq!(header.guid, guid);
            assert_eq!(body.len() as u64, header.size);
            // lmtpd prepends Return-Path/Received; the message follows intact.
            let delivered = sent[n].replace("\r\n", "\n");
            let stored = String::from_utf8_lossy(body).replace("\r\n", "\n");
            assert!(stored.ends_with(&delivered), "body {n} differs");
        }

        // A NO keeps the Cyrus error name and leaves the session usable.
        let err = s
            .command(Command::get("FULLMAILBOX", Value::atom("user.nobody")))
            .await
            .unwrap_err();
        assert!(matches!(err, ProtoError::No { .. }), "{err}");
        assert!(
            err.cyrus_code().is_some_and(|c| c.starts_with("IMAP_")),
            "{err}"
        );
        s.noop().await.unwrap();
        s.close().await;
    });
}

/// A listening socket standing for the replica, and the connect options of
/// an imapd.conf whose `sync_port` is it, with `extra` lines.
fn mock_replica(extra: &str) -> (tempfile::TempDir, std::net::TcpListener, ConnectOptions) {
    let conf_dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = conf_dir.path().join("imapd.conf");
    std::fs::write(
        &path,
        format!(
            "configdirectory: {}\nsync_host: 127.0.0.1\nsync_port: {port}\nsync_authname: repl\nsync_password: pw\n{extra}",
            conf_dir.path().display()
        ),
    )
    .unwrap();
    let conf = ImapdConf::load(&path).unwrap();
    let ch = Settings::resolve(&conf, &[]).unwrap().channels[0]
        .config
        .clone();
    let opts = ConnectOptions::replica(&ch).unwrap();
    (conf_dir, listener, opts)
}

#[test]
fn timeouts_and_garbage_from_mock_peers() {
    use std::io::Write;
    let rt = rt();
    let (_conf_dir, listener, opts) = mock_replica("sync_timeout: 3\n");
    assert_eq!(opts.timeout, Duration::from_secs(3));

    // A peer that accepts and says nothing: cut at sync_timeout.
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(5));
        drop(conn);
        listener
    });
    let started = std::time::Instant::now();
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    assert!(matches!(err, ProtoError::Timeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(err.to_string().contains("sync_timeout"), "{err}");
    let listener = silent.join().unwrap();

    // A peer that is not Cyrus.
    let garbage = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        listener
    });
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    assert!(matches!(err, ProtoError::Banner { .. }), "{err}");
    assert!(err.to_string().contains("SSH-2.0"), "{err}");
    let listener = garbage.join().unwrap();

    // A peer that drops the connection in the middle of the banner.
    let dropper = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"* SASL SCRAM-SHA-256\r\n* COMP").unwrap();
    });
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    assert!(matches!(err, ProtoError::Closed { .. }), "{err}");
    dropper.join().unwrap();
}

#[test]
fn a_non_admin_is_told_to_join_admins() {
    // Cyrus 3.6.1 logs a non-admin in, then refuses: sync_server answers
    // every command `NO Permission denied`, imapd still lists X-REPLICATION
    // but answers SYNCAPPLY/SYNCGET with `BAD Unrecognized command`.
    let pair = CyrusPair::start();
    let rt = rt();
    for (name, side) in [
        (None, Side::Target),
        (Some("chan2"), Side::Target),
        (None, Side::Source),
    ] {
        let ch = channel(&pair, name);
        let mut opts = match side {
            Side::Target => ConnectOptions::replica(&ch).unwrap(),
            Side::Source => ConnectOptions::source(&ch),
        };
        opts.peer.credentials.authname = Some("alice".into());
        opts.peer.credentials.password = Some(secret("alicepw"));
        for compress in [true, false] {
            opts.compress = compress;
            let result = rt.block_on(async {
                let mut s = Session::connect(&opts).await?;
                // Without COMPRESS and SIEVE-MAILBOX nothing is refused yet.
                s.probe_admin(&opts).await
            });
            let err = result.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, ProtoError::NotAdmin { .. }),
                "{name:?} {side}: {text}"
            );
            assert!(text.contains("add it to `admins:`"), "{text}");
            assert!(text.contains(&side.to_string()), "{text}");
            eprintln!("{name:?} {side} compress={compress}: {text}");
        }
    }
}

#[test]
fn pipelined_commands_are_answered_in_order_and_a_no_leaves_the_session_usable() {
    use std::io::{BufRead, BufReader, Write};
    let rt = rt();
    let (_conf_dir, listener, opts) = mock_replica("cyrsync_allow_plaintext: yes\n");

    // A peer that reads both commands before it answers either: the client
    // must have sent the second without waiting for the first's answer.
    let peer = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut out = conn.try_clone().unwrap();
        let mut lines = BufReader::new(conn);
        out.write_all(b"* SASL PLAIN\r\n* OK mock sync server\r\n")
            .unwrap();
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        assert!(line.starts_with("AUTHENTICATE PLAIN"), "{line}");
        out.write_all(b"OK success\r\n").unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            line.clear();
            lines.read_line(&mut line).unwrap();
            seen.push(line.trim_end().to_string());
        }
        out.write_all(
            b"NO IMAP_MAILBOX_NONEXISTENT Mailbox does not exist\r\n* MAILBOX %(MBOXNAME user.b)\r\nOK success\r\n",
        )
        .unwrap();
        line.clear();
        lines.read_line(&mut line).unwrap();
        seen.push(line.trim_end().to_string());
        out.write_all(b"OK success\r\n").unwrap();
        seen
    });
    let (first, second, third, oldest) = rt.block_on(async {
        let mut s = Session::connect(&opts).await.unwrap();
        let mut none = MemoryBodies::default();
        let a = s
            .send_streaming(
                Command::get("MAILBOXES", Value::atom_list(["user.a"])),
                &mut none,
            )
            .await
            .unwrap();
        let b = s
            .send_streaming(
                Command::get("MAILBOXES", Value::atom_list(["user.b"])),
                &mut none,
            )
            .await
            .unwrap();
        let oldest = s.in_flight().map(|f| f.what.clone());
        let first = s.receive(a, &mut none).await;
        let second = s.receive(b, &mut none).await;
        assert!(s.in_flight().is_none());
        let third = s
            .command(Command::get("MAILBOXES", Value::atom_list(["user.c"])))
            .await;
        (first, second, third, oldest)
    });
    assert_eq!(oldest.as_deref(), Some("GET MAILBOXES"));
    let err = first.unwrap_err();
    assert_eq!(err.cyrus_code(), Some("IMAP_MAILBOX_NONEXISTENT"), "{err}");
    let items = second.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(third.unwrap().is_empty());
    assert_eq!(
        peer.join().unwrap(),
        [
            "GET MAILBOXES (user.a)",
            "GET MAILBOXES (user.b)",
            "GET MAILBOXES (user.c)"
        ]
    );
}
