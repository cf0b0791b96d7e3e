//! STARTTLS against a real Cyrus 3.6.1 replica with a certificate from a test
//! CA, over both transports: verified with `tls_client_ca_file`, refused with
//! the wrong CA (naming the key to fix and printing the pin line), pinned by
//! SHA-256, a wrong pin refused, `cyrsync_tls_verify: no` working with a
//! warning, and PLAIN allowed over TLS without `cyrsync_allow_plaintext`.
//!
//! Observed on Cyrus 3.6.1 with `tls_server_cert`/`tls_server_key` set:
//! sync_server lists `* STARTTLS` in its banner and imapd `STARTTLS` in its
//! capabilities. After the handshake sync_server sends its banner again, now
//! with SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS and without `* COMPRESS
//! DEFLATE`; imapd sends nothing until asked for CAPABILITY.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::sync::{Arc, Mutex};

use cyrsync::config::value::parse_sha256_fingerprint;
use cyrsync::config::{ChannelConfig, ChannelName, Host, ImapdConf, Settings};
use cyrsync::proto::ProtoError;
use cyrsync::proto::diagnosis::Cause;
use cyrsync::proto::greeting::Transport;
use cyrsync::proto::sasl::Mechanism;
use cyrsync::proto::session::{ConnectOptions, Handshake, Session};
use cyrsync::proto::tls::VerifyMode;
use support::pair::CyrusPair;

fn channel(conf: &std::path::Path, name: &str) -> ChannelConfig {
    let conf = ImapdConf::load(conf).unwrap();
    let want = ChannelName::new(name);
    Settings::resolve(&conf, &[])
        .unwrap()
        .channels
        .into_iter()
        .map(|c| c.config)
        .find(|c| c.name == want)
        .expect("channel in imapd.conf")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Both channels of the pair: csync (default) and IMAP (chan2).
fn both(pair: &CyrusPair) -> Vec<(ConnectOptions, Transport)> {
    let conf = pair.master.imapd_conf();
    vec![
        (
            ConnectOptions::replica(&channel(&conf, "")).unwrap(),
            Transport::Csync,
        ),
        (
            ConnectOptions::replica(&channel(&conf, "chan2")).unwrap(),
            Transport::Imap,
        ),
    ]
}

#[test]
fn starttls_verified_with_the_ca_file_on_both_transports() {
    let pair = CyrusPair::start_tls();
    let tls = pair.tls.clone().unwrap();
    let rt = rt();
    for (opts, transport) in both(&pair) {
        rt.block_on(async {
            let mut report = Handshake::default();
            let mut s = Session::connect_reporting(&opts, &mut report)
                .await
                .unwrap_or_else(|e| panic!("{transport:?} over TLS: {e}"));
            let info = s.info().clone();
            assert_eq!(info.transport, transport);
            assert_eq!(info.tls, Some(VerifyMode::Chain));
            assert!(report.starttls_offered);
            let details = report.tls.clone().unwrap();
            assert!(details.established);
            assert!(
                details.trust.contains("tls_client_ca_file"),
                "{}",
                details.trust
            );
            let cert = info.certificate.clone().unwrap();
            assert!(cert.subject.contains("CN=replica.test"), "{cert:?}");
            assert!(cert.issuer.contains("cyrsync test ca"), "{cert:?}");
            assert_eq!(cert.sha256, tls.fingerprint);
            assert!(cert.names.contains(&"IP:127.0.0.1".to_string()));
            // The strongest mechanism we implement; the -PLUS variants that
            // sync_server adds under TLS are not ours.
            assert_eq!(info.mechanism, Some(Mechanism::ScramSha256));
            eprintln!(
                "{transport:?}: {:?} offered after TLS: {:?}, COMPRESS offered {} used {}",
                details.version, report.sasl_offered, report.compress_offered, info.compressed
            );
            if transport == Transport::Csync {
                assert!(
                    report
                        .sasl_offered
                        .iter()
                        .any(|m| m == "SCRAM-SHA-256-PLUS"),
                    "{:?}",
                    report.sasl_offered
                );
                assert!(
                    !report.compress_offered,
                    "sync_server offers no COMPRESS under TLS"
                );
            }
            s.probe_admin(&opts).await.unwrap();
            s.noop().await.unwrap();
            s.close().await;

            // PLAIN is fine over TLS without cyrsync_allow_plaintext.
            let mut plain = opts.clone();
            plain.sasl_mech = Some("PLAIN".into());
            assert!(!plain.allow_plaintext);
            let mut s = Session::connect(&plain)
                .await
                .unwrap_or_else(|e| panic!("PLAIN over TLS, {transport:?}: {e}"));
            assert_eq!(s.info().mechanism, Some(Mechanism::Plain));
            s.probe_admin(&plain).await.unwrap();
            s.close().await;
        });
    }
}

#[test]
fn a_wrong_ca_or_no_ca_is_refused_naming_the_key_and_the_pin_line() {
    let pair = CyrusPair::start_tls();
    let tls = pair.tls.clone().unwrap();
    let rt = rt();
    for (mut opts, transport) in both(&pair) {
        let prefix = opts.key_prefix.clone();
        opts.tls.ca_file = Some(tls.other_ca_file.clone());
        let mut report = Handshake::default();
        let err = rt
            .block_on(Session::connect_reporting(&opts, &mut report))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ProtoError::CertificateRejected { .. }),
            "{transport:?}: {text}"
        );
        assert_eq!(err.cause(), Cause::CertificateUntrusted);
        assert!(
            text.contains(&format!("{prefix}tls_client_ca_file")),
            "{text}"
        );
        assert!(text.contains("not signed by a CA"), "{text}");
        let pin = format!("{prefix}cyrsync_tls_fingerprint: {}", tls.fingerprint);
        assert!(text.contains(&pin), "{text}");
        assert!(!text.contains("replpw"), "{text}");
        // The certificate is known even though the handshake failed.
        let details = report.tls.unwrap();
        assert!(!details.established);
        assert_eq!(details.certificate.unwrap().sha256, tls.fingerprint);
        assert!(!report.authenticated);
        eprintln!("{transport:?} wrong CA:\n{text}");

        // No CA configured: the system's store does not know the test CA.
        // (cyrsync uses STARTTLS whenever the server offers it.)
        opts.tls.ca_file = None;
        let err = rt.block_on(Session::connect(&opts)).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.cause(), Cause::CertificateUntrusted, "{text}");
        assert!(text.contains("system's CA certificates"), "{text}");
    }
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pair = CyrusPair::start_tls();
    let rt = rt();
    let (mut opts, _) = both(&pair).remove(0);
    // The certificate names 127.0.0.1 and replica.test, not localhost.
    opts.peer.endpoint.host = Host::Name("localhost".into());
    let err = rt.block_on(Session::connect(&opts)).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.cause(), Cause::CertificateUntrusted, "{text}");
    assert!(text.contains("not valid for \"localhost\""), "{text}");
    assert!(text.contains("IP:127.0.0.1"), "{text}");
}

#[test]
fn pinned_certificates_and_wrong_pins() {
    let pair = CyrusPair::start_tls();
    let tls = pair.tls.clone().unwrap();
    let rt = rt();
    for (mut opts, transport) in both(&pair) {
        let prefix = opts.key_prefix.clone();
        // A pin needs no CA at all.
        opts.tls.ca_file = None;
        opts.tls.fingerprint = Some(parse_sha256_fingerprint(&tls.fingerprint).unwrap());
        rt.block_on(async {
            let s = Session::connect(&opts)
                .await
                .unwrap_or_else(|e| panic!("{transport:?} pinned: {e}"));
            assert_eq!(s.info().tls, Some(VerifyMode::Pinned));
            s.close().await;
        });
        opts.tls.fingerprint = Some([0x5a; 32]);
        let err = rt.block_on(Session::connect(&opts)).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.cause(), Cause::PinMismatch, "{text}");
        assert!(
            text.contains(&format!("{prefix}cyrsync_tls_fingerprint")),
            "{text}"
        );
        assert!(text.contains(&tls.fingerprint), "{text}");
    }
}

/// Collects what tracing writes, to see the warning.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn verification_off_works_and_warns() {
    let pair = CyrusPair::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[
            ("chan2_cyrsync_tls_verify", "0"),
            ("cyrsync_tls_verify", "0"),
        ],
        &["tls_client_ca_file"],
    );
    let settings = Settings::resolve(&ImapdConf::load(&conf).unwrap(), &[]).unwrap();
    let warnings: Vec<String> = settings.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains("not verified")),
        "{warnings:?}"
    );
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let rt = rt();
    tracing::subscriber::with_default(subscriber, || {
        for name in ["", "chan2"] {
            let opts = ConnectOptions::replica(&channel(&conf, name)).unwrap();
            rt.block_on(async {
                let s = Session::connect(&opts)
                    .await
                    .unwrap_or_else(|e| panic!("channel {name:?} without verification: {e}"));
                assert_eq!(s.info().tls, Some(VerifyMode::Off));
                s.close().await;
            });
        }
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("TLS certificate NOT verified").count(),
        2,
        "one warning per connection: {log}"
    );
}
