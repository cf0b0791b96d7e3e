//! A real Cyrus master and replica on loopback, for tests, benchmarks and the demo.
//!
//! Each [`CyrusPair`] lives in its own temporary directory with its own free ports,
//! sasldb (realm = servername), admin `repl` used for replication, a default and a
//! named channel (`chan2`), csync and IMAP listeners, and is torn down by PID when
//! dropped — also when a test panics. See `shared/docs/cyrus-test-pair.md`.
//!
//! Cyrus binaries are found in `$CYRUS_BIN_DIR`, else `/usr/lib/cyrus/bin` (Debian)
//! or `/usr/local/cyrus/bin` (FreeBSD). Missing Cyrus is a loud failure, never a skip.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Users created on both sides: (name, password).
pub const USERS: &[(&str, &str)] = &[
    ("cyrus", "cyruspw"),
    ("repl", "replpw"),
    ("alice", "alicepw"),
    ("bob", "bobpw"),
    ("perf", "perfpw"),
];

/// The admin used for replication.
pub const REPL_USER: &str = "repl";
/// Its password.
pub const REPL_PASSWORD: &str = "replpw";

/// Where Cyrus's binaries are.
pub fn cyrus_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CYRUS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    ["/usr/lib/cyrus/bin", "/usr/local/cyrus/bin"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("master").exists())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/cyrus/bin"))
}

/// Path of one Cyrus binary; panics with install instructions when it is missing.
pub fn cyrus_bin(name: &str) -> PathBuf {
    let path = cyrus_bin_dir().join(name);
    assert!(
        path.exists(),
        "Cyrus IMAPd is required for this test but {} does not exist.\n\
         Install it (Debian: `apt-get install cyrus-imapd cyrus-replication cyrus-admin \
         cyrus-clients sasl2-bin libsasl2-modules`; FreeBSD: `pkg install cyrus-imapd38`) \
         or set CYRUS_BIN_DIR to the directory holding master, imapd, sync_client.",
        path.display()
    );
    path
}

fn saslpasswd2() -> PathBuf {
    if let Some(p) = std::env::var_os("SASLPASSWD2") {
        return PathBuf::from(p);
    }
    let found = ["/usr/sbin/saslpasswd2", "/usr/local/sbin/saslpasswd2"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("saslpasswd2 is required (Debian: apt-get install sasl2-bin; or set SASLPASSWD2)")
    })
}

/// Reads `name`'s uid and primary gid from the passwd database.
fn user_ids(name: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name) && f.len() > 3)
                .then(|| (f[2].parse().ok(), f[3].parse().ok()))
                .and_then(|(u, g)| Some((u?, g?)))
        })
        .unwrap_or_else(|| panic!("user '{name}' does not exist; the Cyrus package creates it"))
}

/// A port nothing listens on, for a server about to be started. Tests start
/// pairs in parallel, and a port the kernel hands out for `:0` may be handed
/// out again before its server binds it (one pair's LMTP port became
/// another's IMAP port): ports are taken instead from below the ephemeral
/// range (where the kernel does not pick on its own), each at most once per
/// process, starting at a place that depends on the pid.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (FIRST + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// One Cyrus instance (master or replica).
#[derive(Debug)]
pub struct Instance {
    /// `master` or `replica`.
    pub role: &'static str,
    /// `DIR/<role>`.
    pub dir: PathBuf,
    /// Its `servername` (also the SASL realm).
    pub servername: String,
    /// imapd.
    pub imap_port: u16,
    /// sync_server.
    pub csync_port: u16,
    /// timsieved.
    pub sieve_port: u16,
    /// lmtpd -a over TCP (master only; 0 on the replica).
    pub lmtp_port: u16,
}

impl Instance {
    /// Sets `key: value` in this instance's imapd.conf, replacing the line
    /// that sets `key` if there is one (Cyrus refuses a key given twice).
    /// Cyrus's processes read the file when they start, and a service
    /// process serves many connections (even the port probe of
    /// [`CyrusPair::start`] leaves one waiting): restart the instance
    /// ([`CyrusPair::restart`]) before relying on the new value.
    pub fn set_option(&self, key: &str, value: &str) {
        let path = self.imapd_conf();
        let text = fs::read_to_string(&path).expect("read imapd.conf");
        let prefix = format!("{key}:");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        lines.push(format!("{key}: {value}"));
        fs::write(&path, lines.join("\n") + "\n").expect("write imapd.conf");
    }

    /// The instance's imapd.conf.
    pub fn imapd_conf(&self) -> PathBuf {
        self.dir.join("imapd.conf")
    }

    /// `configdirectory`.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("conf")
    }

    /// The sync log of `channel` (`None` = default channel).
    pub fn sync_log(&self, channel: Option<&str>) -> PathBuf {
        match channel {
            None => self.config_dir().join("sync/log"),
            Some(c) => self.config_dir().join("sync").join(c).join("log"),
        }
    }

    fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The end of master.err, for failure messages.
    pub fn master_err(&self) -> String {
        fs::read_to_string(self.dir.join("master.err")).unwrap_or_default()
    }
}

/// A master and a replica on loopback.
#[derive(Debug)]
pub struct CyrusPair {
    /// The directory holding both instances (removed on drop unless
    /// `CYRSYNC_KEEP_PAIR` is set).
    pub dir: PathBuf,
    /// The master.
    pub master: Instance,
    /// The replica.
    pub replica: Instance,
    /// The replica's TLS material, when started with TLS.
    pub tls: Option<TestTls>,
    keep: bool,
}

/// How to start a pair.
#[derive(Debug, Clone, Copy)]
pub struct PairOptions<'a> {
    /// The sync log channels the master writes.
    pub channels: Channels,
    /// Extra lines for the master's imapd.conf.
    pub master_conf: &'a [&'a str],
    /// Give the replica a certificate from a test CA (`tls_server_cert`,
    /// `tls_server_key`), so that its sync_server and imapd offer STARTTLS;
    /// the master's imapd.conf gets `tls_client_ca_file` naming that CA.
    pub replica_tls: bool,
    /// Where the pair's directory is made: `$CYRSYNC_PAIR_BASE`, else this,
    /// else the system's temporary directory.
    pub base: Option<&'a Path>,
}

impl Default for PairOptions<'_> {
    fn default() -> Self {
        PairOptions {
            channels: Channels::Two,
            master_conf: &[],
            replica_tls: false,
            base: None,
        }
    }
}

/// A test CA, the replica's certificate signed by it (for 127.0.0.1 and
/// `replica.test`), and a second CA that signed nothing of the pair.
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The CA that signed the replica's certificate (PEM).
    pub ca_file: PathBuf,
    /// A CA unrelated to the pair (PEM).
    pub other_ca_file: PathBuf,
    /// The replica's certificate (PEM).
    pub server_cert: PathBuf,
    /// The replica's private key (PEM), owned by cyrus.
    pub server_key: PathBuf,
    /// SHA-256 of the replica's certificate as `openssl x509 -fingerprint
    /// -sha256` prints it (`AB:CD:…`).
    pub fingerprint: String,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("the openssl command is required for TLS tests (Debian: apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes the CAs and the replica's certificate in `dir` with the openssl CLI.
fn make_test_tls(dir: &Path) -> TestTls {
    fs::create_dir_all(dir).expect("create tls dir");
    for ca in ["ca", "other-ca"] {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "30",
                "-subj",
                &format!("/O=cyrsync tests/CN=cyrsync test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir,
        );
    }
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/O=cyrsync tests/CN=replica.test",
        ],
        dir,
    );
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:replica.test\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "server.pem",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl x509 -fingerprint");
    let text = String::from_utf8_lossy(&out.stdout);
    let fingerprint = text
        .trim()
        .split_once('=')
        .map(|(_, fp)| fp.to_string())
        .unwrap_or_else(|| panic!("openssl printed no fingerprint: {text}"));
    TestTls {
        ca_file: dir.join("ca.pem"),
        other_ca_file: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        fingerprint,
    }
}

impl CyrusPair {
    /// Builds and starts a pair; panics (with Cyrus's own error output) if it does
    /// not come up within 20 s.
    pub fn start() -> CyrusPair {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra lines appended to the master's
    /// imapd.conf.
    pub fn start_with(extra_master_conf: &[&str]) -> CyrusPair {
        Self::start_with_channels(Channels::Two, extra_master_conf)
    }

    /// Like [`start_with`](Self::start_with), choosing the sync log channels
    /// the master writes.
    pub fn start_with_channels(channels: Channels, extra_master_conf: &[&str]) -> CyrusPair {
        Self::start_opts(PairOptions {
            channels,
            master_conf: extra_master_conf,
            ..PairOptions::default()
        })
    }

    /// A pair whose replica offers STARTTLS with a certificate of a test CA
    /// (see [`TestTls`]); the master's imapd.conf trusts that CA.
    pub fn start_tls() -> CyrusPair {
        Self::start_opts(PairOptions {
            replica_tls: true,
            ..PairOptions::default()
        })
    }

    /// Builds and starts a pair as `opts` says.
    pub fn start_opts(opts: PairOptions<'_>) -> CyrusPair {
        assert!(
            rustix::process::geteuid().is_root(),
            "the Cyrus test pair must be started as root (Cyrus's master drops to the cyrus user)"
        );
        cyrus_bin("master");
        let base = std::env::var_os("CYRSYNC_PAIR_BASE")
            .map(PathBuf::from)
            .or_else(|| opts.base.map(Path::to_path_buf))
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("cyrsync-pair-")
            .tempdir_in(base)
            .expect("create pair dir")
            .keep();
        // Cyrus runs as `cyrus` and must traverse DIR.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).expect("chmod pair dir");
        let mk = |role: &'static str, lmtp: bool| Instance {
            role,
            dir: dir.join(role),
            servername: format!("{role}.test"),
            imap_port: free_port(),
            csync_port: free_port(),
            sieve_port: free_port(),
            lmtp_port: if lmtp { free_port() } else { 0 },
        };
        let tls = opts.replica_tls.then(|| make_test_tls(&dir.join("tls")));
        let mut pair = CyrusPair {
            master: mk("master", true),
            replica: mk("replica", false),
            keep: std::env::var_os("CYRSYNC_KEEP_PAIR").is_some(),
            tls,
            dir,
        };
        let mut master_extra: Vec<String> =
            opts.master_conf.iter().map(|l| l.to_string()).collect();
        let mut replica_extra = String::new();
        if let Some(t) = &pair.tls {
            master_extra.push(format!("tls_client_ca_file: {}", t.ca_file.display()));
            replica_extra = format!(
                "tls_server_cert: {}\ntls_server_key: {}\n",
                t.server_cert.display(),
                t.server_key.display()
            );
        }
        let master_extra: Vec<&str> = master_extra.iter().map(String::as_str).collect();
        let replication =
            replication_section(&pair.master, &pair.replica, opts.channels, &master_extra);
        for (inst, extra) in [
            (&pair.master, replication.as_str()),
            (&pair.replica, replica_extra.as_str()),
        ] {
            write_instance(inst, extra);
        }
        let (uid, gid) = user_ids("cyrus");
        chown_tree(&pair.dir.join("master"), uid, gid);
        chown_tree(&pair.dir.join("replica"), uid, gid);
        if pair.tls.is_some() {
            // Cyrus reads its key as cyrus; the CA keys stay root's.
            chown_tree(&pair.dir.join("tls"), uid, gid);
            fs::set_permissions(pair.dir.join("tls"), fs::Permissions::from_mode(0o755))
                .expect("chmod tls dir");
        }
        for inst in [&pair.master, &pair.replica] {
            start_master(inst);
        }
        for inst in [&pair.master, &pair.replica] {
            let mut ports = vec![inst.imap_port, inst.csync_port];
            if inst.lmtp_port != 0 {
                ports.push(inst.lmtp_port);
            }
            for port in ports {
                if !wait_for_port(port, Duration::from_secs(20)) {
                    let err = inst.master_err();
                    pair.keep = true;
                    panic!(
                        "Cyrus {} did not listen on 127.0.0.1:{port} within 20 s (kept in {}).\nmaster.err:\n{err}",
                        inst.role,
                        pair.dir.display()
                    );
                }
            }
        }
        pair
    }

    /// Runs the real `sync_client` with `args` against this pair (as root; it drops
    /// to cyrus itself) and returns its output. Panics if it fails.
    pub fn sync_client(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(cyrus_bin("sync_client"))
            .arg("-C")
            .arg(self.master.imapd_conf())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sync_client");
        assert!(
            out.status.success(),
            "sync_client {args:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Stops the replica only (to test outages); see [`start_replica`](Self::start_replica).
    pub fn stop_replica(&self) {
        stop_instance(&self.replica);
    }

    /// Starts the replica again after [`stop_replica`](Self::stop_replica).
    pub fn start_replica(&self) {
        start_master(&self.replica);
        for port in [self.replica.imap_port, self.replica.csync_port] {
            assert!(
                wait_for_port(port, Duration::from_secs(20)),
                "replica did not come back on {port}:\n{}",
                self.replica.master_err()
            );
        }
    }

    /// Stops the master's Cyrus and starts it again (its sync_server
    /// sessions die with it); waits until it listens again.
    pub fn restart_master(&self) {
        stop_instance(&self.master);
        start_master(&self.master);
        for port in [
            self.master.imap_port,
            self.master.csync_port,
            self.master.lmtp_port,
        ] {
            assert!(
                wait_for_port(port, Duration::from_secs(20)),
                "master did not come back on {port}:\n{}",
                self.master.master_err()
            );
        }
    }

    /// Restarts both instances (after [`Instance::set_option`]: every
    /// process then reads the new configuration).
    pub fn restart(&self) {
        self.restart_master();
        self.stop_replica();
        self.start_replica();
    }

    /// Sets `key: value` in the master's imapd.conf (see
    /// [`Instance::set_option`]).
    pub fn set_master_option(&self, key: &str, value: &str) {
        self.master.set_option(key, value);
    }

    /// A copy of the master's imapd.conf in `dir` with `set` applied (a key
    /// present is replaced in place, a new one appended) and the keys of
    /// `remove` dropped: for tests that need a variant of the configuration
    /// without restarting Cyrus. Returns the copy's path (mode 0640).
    pub fn master_conf_variant(
        &self,
        dir: &Path,
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> PathBuf {
        let text = fs::read_to_string(self.master.imapd_conf()).expect("read master imapd.conf");
        let mut done = vec![false; set.len()];
        let mut out = String::new();
        for line in text.lines() {
            let key = line.split_once(':').map(|(k, _)| k.trim()).unwrap_or("");
            if remove.contains(&key) {
                continue;
            }
            if let Some(i) = set.iter().position(|(k, _)| *k == key) {
                out.push_str(&format!("{key}: {}\n", set[i].1));
                done[i] = true;
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        for (i, (k, v)) in set.iter().enumerate() {
            if !done[i] {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        let path = dir.join("imapd.conf");
        fs::write(&path, out).expect("write imapd.conf variant");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod variant");
        path
    }

    /// Stops both instances now (also done on drop).
    pub fn stop(&mut self) {
        for inst in [&self.master, &self.replica] {
            stop_instance(inst);
        }
    }
}

impl Drop for CyrusPair {
    fn drop(&mut self) {
        self.stop();
        if self.keep {
            eprintln!("cyrus pair kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The sync log channels of a pair's master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// The default channel (csync) and `chan2` (IMAP), both to the replica.
    Two,
    /// Only the default channel (`sync_log_channels` unset), as a master with
    /// one replica is usually configured.
    DefaultOnly,
}

fn replication_section(
    master: &Instance,
    replica: &Instance,
    channels: Channels,
    extra: &[&str],
) -> String {
    let sync_dir = master.config_dir().join("sync");
    let mut s = format!(
        "# ---- replication (master side) ----\n\
         sync_log: 1\n\
         sync_host: 127.0.0.1\n\
         sync_port: {csync}\n\
         sync_authname: {REPL_USER}\n\
         sync_password: {REPL_PASSWORD}\n\
         sync_try_imap: 0\n\
         sync_repeat_interval: 1s\n\
         sync_shutdown_file: {sd}/shutdown\n\
         cyrsync_source_host: 127.0.0.1\n\
         cyrsync_source_port: {master_csync}\n",
        csync = replica.csync_port,
        master_csync = master.csync_port,
        sd = sync_dir.display(),
    );
    if channels == Channels::Two {
        s.push_str(&format!(
            "sync_log_channels: \"\" chan2\n\
             chan2_sync_host: 127.0.0.1\n\
             chan2_sync_port: {imap}\n\
             chan2_sync_authname: {REPL_USER}\n\
             chan2_sync_password: {REPL_PASSWORD}\n\
             chan2_sync_try_imap: 1\n\
             chan2_sync_shutdown_file: {sd}/chan2/shutdown\n",
            imap = replica.imap_port,
            sd = sync_dir.display(),
        ));
    }
    for line in extra {
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn write_instance(inst: &Instance, replication: &str) {
    let d = &inst.dir;
    for sub in [
        "conf/db",
        "conf/log",
        "conf/sync",
        "conf/socket",
        "conf/user",
        "conf/quota",
        "conf/proc",
        "conf/lock",
        "conf/msg",
        "spool",
        "sieve",
        "run/proc",
        "run/lock",
        "run/socket",
    ] {
        fs::create_dir_all(d.join(sub)).expect("create instance dirs");
    }
    let p = |sub: &str| d.join(sub).display().to_string();
    let conf = format!(
        "configdirectory: {conf}\n\
         defaultpartition: default\n\
         partition-default: {spool}\n\
         sievedir: {sieve}\n\
         sieveusehomedir: false\n\
         proc_path: {proc}\n\
         mboxname_lockpath: {lock}\n\
         lmtpsocket: {lmtp}\n\
         idlesocket: {idle}\n\
         notifysocket: {notify}\n\
         servername: {servername}\n\
         syslog_prefix: cyrus-{role}\n\
         admins: cyrus repl\n\
         altnamespace: no\n\
         unixhierarchysep: no\n\
         hashimapspool: true\n\
         umask: 077\n\
         virtdomains: off\n\
         allowplaintext: yes\n\
         sasl_pwcheck_method: auxprop\n\
         sasl_auxprop_plugin: sasldb\n\
         sasl_sasldb_path: {sasldb}\n\
         sasl_mech_list: PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\n\
         lmtp_downcase_rcpt: yes\n\
         imapidlepoll: 1\n\
         {replication}",
        conf = p("conf"),
        spool = p("spool"),
        sieve = p("sieve"),
        proc = p("run/proc"),
        lock = p("run/lock"),
        lmtp = p("run/socket/lmtp"),
        idle = p("run/socket/idle"),
        notify = p("run/socket/notify"),
        servername = inst.servername,
        role = inst.role,
        sasldb = p("sasldb2"),
    );
    fs::write(inst.imapd_conf(), conf).expect("write imapd.conf");
    // It holds sync_password: readable by cyrus (group mail) only.
    fs::set_permissions(inst.imapd_conf(), fs::Permissions::from_mode(0o640))
        .expect("chmod imapd.conf");
    let bin = cyrus_bin_dir();
    let b = |name: &str| bin.join(name).display().to_string();
    let c = inst.imapd_conf().display().to_string();
    let lmtp_tcp = if inst.lmtp_port != 0 {
        format!(
            "  lmtp cmd=\"{} -C {c} -a\" listen=\"127.0.0.1:{}\" prefork=0 maxchild=20\n",
            b("lmtpd"),
            inst.lmtp_port
        )
    } else {
        String::new()
    };
    let cyrus_conf = format!(
        "START {{\n  recover cmd=\"{ctl} -C {c} -r\"\n}}\n\
         SERVICES {{\n\
         \x20 imap cmd=\"{imapd} -C {c} -U 30\" listen=\"127.0.0.1:{imap}\" prefork=0 maxchild=50\n\
         \x20 csync cmd=\"{sync_server} -C {c}\" listen=\"127.0.0.1:{csync}\" prefork=0 maxchild=10\n\
         \x20 sieve cmd=\"{timsieved} -C {c}\" listen=\"127.0.0.1:{sieve}\" prefork=0 maxchild=10\n\
         \x20 lmtpunix cmd=\"{lmtpd} -C {c}\" listen=\"{sock}\" prefork=0 maxchild=20\n\
         {lmtp_tcp}}}\n\
         EVENTS {{\n  checkpoint cmd=\"{ctl} -C {c} -c\" period=30\n}}\n\
         DAEMON {{\n}}\n",
        ctl = b("ctl_cyrusdb"),
        imapd = b("imapd"),
        sync_server = b("sync_server"),
        timsieved = b("timsieved"),
        lmtpd = b("lmtpd"),
        imap = inst.imap_port,
        csync = inst.csync_port,
        sieve = inst.sieve_port,
        sock = p("run/socket/lmtp"),
    );
    fs::write(d.join("cyrus.conf"), cyrus_conf).expect("write cyrus.conf");
    let sasldb = d.join("sasldb2");
    for (user, password) in USERS {
        let mut child = Command::new(saslpasswd2())
            .args(["-p", "-c", "-f"])
            .arg(&sasldb)
            .args(["-u", &inst.servername, user])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run saslpasswd2");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write password");
        assert!(
            child.wait().expect("saslpasswd2").success(),
            "saslpasswd2 failed for {user}"
        );
    }
    fs::set_permissions(&sasldb, fs::Permissions::from_mode(0o640)).expect("chmod sasldb");
    fs::set_permissions(d, fs::Permissions::from_mode(0o750)).expect("chmod instance dir");
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for entry in fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("dir entry").path(), uid, gid);
        }
    }
}

fn start_master(inst: &Instance) {
    let status = Command::new(cyrus_bin("master"))
        .arg("-C")
        .arg(inst.imapd_conf())
        .arg("-M")
        .arg(inst.dir.join("cyrus.conf"))
        .arg("-p")
        .arg(inst.dir.join("master.pid"))
        .arg("-L")
        .arg(inst.dir.join("master.err"))
        .arg("-d")
        .stdin(Stdio::null())
        .status()
        .expect("start Cyrus master");
    assert!(
        status.success(),
        "Cyrus master for {} exited with {status}",
        inst.role
    );
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        sleep(Duration::from_millis(50));
    }
    false
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Every Cyrus process (its program in the Cyrus binary directory) whose
/// command line mentions `dir` (Cyrus children carry
/// `-C DIR/.../imapd.conf`), found through /proc. Other programs naming the
/// directory — a tmux server whose first session ran a test's command, a
/// cyrsync under test — are not Cyrus's and are left alone.
fn processes_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let bin_dir = fs::canonicalize(cyrus_bin_dir()).unwrap_or_else(|_| cyrus_bin_dir());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&bin_dir))
                && fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                    .unwrap_or(false)
        })
        .collect()
}

/// The processes of a running instance: its `master` and every descendant
/// (found through the parent pids in /proc).
pub fn instance_processes(inst: &Instance) -> Vec<i32> {
    let Some(root) = inst.pid() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

fn stop_instance(inst: &Instance) {
    use rustix::process::Signal;
    if let Some(pid) = inst.pid() {
        signal(pid, Signal::TERM);
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            signal(pid, Signal::KILL);
        }
    }
    // Children that outlived master (or a master whose pidfile was never written).
    for pid in processes_under(&inst.dir) {
        signal(pid, Signal::KILL);
    }
}
