//! The local reader: a mailbox's records straight from its `cyrus.index` on
//! the master host, under the shared lock Cyrus's own readers take, for the
//! milliseconds of one read; [`super::locate`] finds the files. The
//! mailbox-level fields come from the mailbox's `GET MAILBOXES` entry (from
//! the protocol, or rebuilt by [`LocalReader::list`]); the index must agree
//! with it (HIGHESTMODSEQ, LAST_UID, UIDVALIDITY, both sync CRCs) or the
//! read is refused and the protocol answers instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;

use super::index::{INDEX_HEADER_SIZE, IndexError, parse_header, parse_index, parse_index_header};
use super::listing::{DbStamp, MasterDbs, relist};
use super::locate::{Dirs, Locator};
use crate::config::{ChannelConfig, Host, MasterReader};
use crate::dlist::{FileLiteral, KvList, Value};
use crate::model::MailboxState;
use crate::proto::session::BodySink;

/// POSIX locks belong to the process and closing any descriptor of a file
/// drops them all, so two reads of one index in this process (two channels,
/// one master) must not overlap.
static READING: Mutex<()> = Mutex::new(());

/// Why the local reader stood aside for this mailbox.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// `mbpath` could not say where the mailbox lives.
    #[error("mbpath {mailbox}: {detail}")]
    Locate {
        /// The mailbox.
        mailbox: String,
        /// What went wrong.
        detail: String,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The index or header is not what this reader can vouch for.
    #[error("{path}: {source}")]
    Index {
        /// The file.
        path: PathBuf,
        /// What.
        source: IndexError,
    },
    /// The files and the protocol disagree (a change landed between the
    /// two reads, or another mailbox lives there now).
    #[error("{mailbox}: local files disagree with GET MAILBOXES ({field})")]
    Mismatch {
        /// The mailbox.
        mailbox: String,
        /// The first field that differs.
        field: &'static str,
    },
    /// No entry of this mailbox from the protocol is current (none yet,
    /// or `mailboxes.db`/`annotations.db` changed since), or the files
    /// cannot rebuild it.
    #[error("{mailbox}: no current GET MAILBOXES entry to rebuild ({why})")]
    Unlisted {
        /// The mailbox.
        mailbox: String,
        /// Why.
        why: &'static str,
    },
    /// Annotations live in the annotation database, which this reader
    /// does not read.
    #[error("{mailbox} has annotations outside the index")]
    Annotations {
        /// The mailbox.
        mailbox: String,
    },
}

/// A replica's position in a mailbox: the records it lacks are those
/// changed after `modseq` or above `last_uid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    /// The replica's HIGHESTMODSEQ.
    pub modseq: u64,
    /// The replica's LAST_UID.
    pub last_uid: u64,
}

/// Where Cyrus keeps its tools, in the order they are tried.
const BIN_DIRS: &[&str] = &[
    "/usr/local/cyrus/bin",
    "/usr/lib/cyrus/bin",
    "/usr/cyrus/bin",
];

/// Reads mailboxes of the master whose imapd.conf is `config`.
#[derive(Debug)]
pub struct LocalReader {
    locator: Locator,
    /// The master's databases, when entries can be rebuilt from files.
    dbs: Option<MasterDbs>,
    /// The protocol's latest entry of each mailbox, with the databases as
    /// they were before it was asked for.
    listings: HashMap<String, (MailboxState, DbStamp)>,
}

/// Entries kept at most; the oldest are forgotten all at once past this.
const LISTINGS_MAX: usize = 20_000;

impl LocalReader {
    /// A reader using Cyrus's `mbpath` from `$CYRUS_BIN_DIR` or the usual
    /// places; `None` when there is none (then only the protocol reads).
    pub fn new(config: &Path) -> Option<LocalReader> {
        let from_env = std::env::var_os("CYRUS_BIN_DIR").map(PathBuf::from);
        let mbpath = from_env
            .into_iter()
            .chain(BIN_DIRS.iter().map(PathBuf::from))
            .map(|d| d.join("mbpath"))
            .find(|p| p.is_file())?;
        let dbs = crate::config::file::ImapdConf::load(config)
            .map_err(|e| e.to_string())
            .and_then(|c| MasterDbs::from_conf(&c));
        let dbs = match dbs {
            Ok(d) => Some(d),
            Err(why) => {
                tracing::debug!("mailbox entries come from GET MAILBOXES only: {why}");
                None
            }
        };
        Some(LocalReader {
            locator: Locator::new(config, &mbpath),
            dbs,
            listings: HashMap::new(),
        })
    }

    /// The reader for `channel`'s master, when `cyrsync_master_reader`
    /// allows it and the master is this host (its index files are ours to
    /// read).
    pub fn for_channel(channel: &ChannelConfig) -> Option<LocalReader> {
        let on_this_host = match &channel.source.endpoint.host {
            Host::Unix(_) => true,
            Host::Name(h) => matches!(h.as_str(), "127.0.0.1" | "::1" | "localhost"),
        };
        match channel.master_reader {
            MasterReader::Protocol => None,
            MasterReader::Auto if !on_this_host => None,
            MasterReader::Auto | MasterReader::Local => {
                let reader = LocalReader::new(&channel.imapd_conf);
                if reader.is_none() && channel.master_reader == MasterReader::Local {
                    tracing::warn!(
                        "cyrsync_master_reader is local but Cyrus's mbpath was not found (set CYRUS_BIN_DIR); reading the master over the protocol"
                    );
                }
                reader
            }
        }
    }

    /// Has `mbpath` locate, in one call, every mailbox of `mailboxes`
    /// (uniqueid, partition) whose files are not known yet.
    pub fn locate(&mut self, mailboxes: &[(&str, &str)]) -> Result<(), LocalError> {
        self.locator
            .locate(mailboxes)
            .map_err(|e| LocalError::Locate {
                mailbox: mailboxes.len().to_string() + " mailbox(es)",
                detail: e.0,
            })
    }

    /// Where the files of mailbox `uniqueid` on `partition` are, if known
    /// or derivable without running `mbpath`.
    pub fn location(&self, uniqueid: &str, partition: &str) -> Option<Dirs> {
        self.locator.known(uniqueid, partition)
    }

    fn dirs(&self, uniqueid: &str, partition: &str) -> Result<Dirs, LocalError> {
        self.locator
            .dirs(uniqueid, partition)
            .map_err(|e| LocalError::Locate {
                mailbox: uniqueid.to_string(),
                detail: e.0,
            })
    }

    /// The master's databases now, to be taken *before* asking the
    /// protocol for entries that [`remember`](Self::remember) will keep.
    pub fn db_stamp(&self) -> Option<DbStamp> {
        self.dbs.as_ref()?.stamp()
    }

    /// Keeps `listed`, the protocol's entries, as they were when the
    /// databases were at `stamp`.
    pub fn remember(&mut self, stamp: DbStamp, listed: &[MailboxState]) {
        if self.listings.len() + listed.len() > LISTINGS_MAX {
            self.listings.clear();
        }
        for m in listed {
            self.listings
                .insert(m.name().to_string(), (m.clone(), stamp));
        }
    }

    /// The `GET MAILBOXES` entries of `names`, rebuilt from the master's
    /// files (see [`super::listing`]); an error for the first mailbox that
    /// cannot be (then the protocol answers for all). Blocks on index
    /// locks: call it off the async executor.
    pub fn list(&mut self, names: &[String]) -> Result<Vec<MailboxState>, LocalError> {
        let unlisted = |name: &str, why| LocalError::Unlisted {
            mailbox: name.to_string(),
            why,
        };
        let first = names.first().map_or("", String::as_str);
        let now = self
            .db_stamp()
            .ok_or_else(|| unlisted(first, "databases"))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let (listed, stamp) = self
                .listings
                .get(name)
                .ok_or_else(|| unlisted(name, "not listed yet"))?;
            if *stamp != now {
                return Err(unlisted(name, "databases changed"));
            }
            let dirs = self.dirs(listed.uniqueid(), listed.partition())?;
            let (header, index) = self.read_files(&dirs, Some(INDEX_HEADER_SIZE))?;
            let header = parse_header(&header).map_err(|source| LocalError::Index {
                path: dirs.meta.join("cyrus.header"),
                source,
            })?;
            let index = parse_index_header(&index).map_err(|source| LocalError::Index {
                path: dirs.meta.join("cyrus.index"),
                source,
            })?;
            out.push(relist(listed, &header, &index).map_err(|why| unlisted(name, why))?);
        }
        Ok(out)
    }

    /// Copies the message file of `uid` in the mailbox `uniqueid` into
    /// `sink` as the body of `file`, checking on the way that its SHA-1 is
    /// the GUID; `Ok(false)` when the file is not there or is not that
    /// message (the caller then asks the protocol, after undoing what `sink`
    /// got).
    pub fn copy_body(
        &mut self,
        uniqueid: &str,
        uid: u32,
        file: &FileLiteral,
        sink: &mut dyn BodySink,
    ) -> Result<bool, LocalError> {
        use sha1::Digest as _;
        let dirs = self.dirs(uniqueid, &file.partition)?;
        let name = format!("{uid}.");
        let mut candidates = vec![dirs.data.join(&name)];
        candidates.extend(dirs.archive.map(|a| a.join(&name)));
        let Some((path, mut f)) = candidates
            .into_iter()
            .find_map(|p| File::open(&p).ok().map(|f| (p, f)))
        else {
            return Ok(false);
        };
        let io = |source| LocalError::Io {
            path: path.clone(),
            source,
        };
        let len = f.metadata().map_err(io)?.len();
        if len != file.size {
            return Ok(false);
        }
        sink.start(file).map_err(io)?;
        let mut hash = sha1::Sha1::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = file.size;
        while left > 0 {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(false);
            }
            let n = n.min(usize::try_from(left).unwrap_or(n));
            hash.update(&buf[..n]);
            sink.chunk(&buf[..n]).map_err(io)?;
            left -= n as u64;
        }
        sink.end().map_err(io)?;
        let got: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(got.eq_ignore_ascii_case(&file.guid))
    }

    /// The whole mailbox as `GET FULLMAILBOX` would send it: the
    /// mailbox-level fields of `listed` (its `GET MAILBOXES` entry) and the
    /// records of its index. Blocks on the index lock while a Cyrus writer
    /// holds it: call it off the async executor.
    pub fn full_mailbox(&mut self, listed: &MailboxState) -> Result<MailboxState, LocalError> {
        self.mailbox(listed, None)
    }

    /// Like [`full_mailbox`](Self::full_mailbox), with only the records a
    /// replica at `since` lacks: those changed after its HIGHESTMODSEQ or
    /// above its LAST_UID (what `APPLY MAILBOX` with `SINCE_MODSEQ` sends).
    /// Every record is still read and CRC-checked; only the kept ones are
    /// turned into DList values, which is most of the cost in a large
    /// mailbox.
    pub fn changed_since(
        &mut self,
        listed: &MailboxState,
        since: Since,
    ) -> Result<MailboxState, LocalError> {
        self.mailbox(listed, Some(since))
    }

    fn mailbox(
        &mut self,
        listed: &MailboxState,
        since: Option<Since>,
    ) -> Result<MailboxState, LocalError> {
        let name = listed.name().to_string();
        let dirs = self.dirs(listed.uniqueid(), listed.partition())?;
        let mut result = self.read(&name, &dirs, listed, since);
        let misplaced = |r: &Result<MailboxState, LocalError>| {
            matches!(
                r,
                Err(LocalError::Io { .. }
                    | LocalError::Mismatch {
                        field: "UNIQUEID",
                        ..
                    })
            )
        };
        // Not there, or another mailbox there: a rename moved a mailbox
        // stored under its name, or a derived location was wrong (then
        // mbpath is asked, once, now).
        if misplaced(&result) {
            self.locator.forget(listed.uniqueid(), dirs.derived);
            if dirs.derived {
                let dirs = self.dirs(listed.uniqueid(), listed.partition())?;
                result = self.read(&name, &dirs, listed, since);
                if misplaced(&result) {
                    self.locator.forget(listed.uniqueid(), false);
                }
            }
        }
        result
    }

    /// `cyrus.header` and `cyrus.index` (its first `limit` bytes, or all),
    /// read together under the shared index lock.
    fn read_files(
        &self,
        dirs: &Dirs,
        limit: Option<usize>,
    ) -> Result<(Vec<u8>, Vec<u8>), LocalError> {
        let dir = &dirs.meta;
        let header_path = dir.join("cyrus.header");
        let index_path = dir.join("cyrus.index");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io { path, source }
        };
        let _one = READING.lock().unwrap_or_else(PoisonError::into_inner);
        let mut index = File::open(&index_path).map_err(io(&index_path))?;
        // Cyrus readers take a shared fcntl lock on cyrus.index
        // (mailbox_lock_index); writers hold it exclusively while they
        // change records and header, so under it the file is whole.
        loop {
            match fcntl_lock(&index, FlockOperation::LockShared) {
                Ok(()) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(io(&index_path)(e.into())),
            }
        }
        let header = std::fs::read(&header_path).map_err(io(&header_path));
        let mut bytes = Vec::new();
        let read = match limit {
            Some(n) => (&mut index).take(n as u64).read_to_end(&mut bytes),
            None => index.read_to_end(&mut bytes),
        };
        let _ = fcntl_lock(&index, FlockOperation::Unlock);
        read.map_err(io(&index_path))?;
        Ok((header?, bytes))
    }

    fn read(
        &self,
        name: &str,
        dirs: &Dirs,
        listed: &MailboxState,
        since: Option<Since>,
    ) -> Result<MailboxState, LocalError> {
        let header_path = dirs.meta.join("cyrus.header");
        let index_path = dirs.meta.join("cyrus.index");
        let (header_bytes, index_bytes) = self.read_files(dirs, None)?;
        let header = parse_header(&header_bytes).map_err(|source| LocalError::Index {
            path: header_path.clone(),
            source,
        })?;
        let index = parse_index(&index_bytes).map_err(|source| LocalError::Index {
            path: index_path.clone(),
            source,
        })?;
        let mismatch = |field| LocalError::Mismatch {
            mailbox: name.to_string(),
            field,
        };
        let h = &index.header;
        if header.uniqueid != listed.uniqueid() {
            return Err(mismatch("UNIQUEID"));
        }
        if h.highestmodseq != listed.highestmodseq() {
            return Err(mismatch("HIGHESTMODSEQ"));
        }
        if u64::from(h.last_uid) != listed.last_uid() {
            return Err(mismatch("LAST_UID"));
        }
        if u64::from(h.uidvalidity) != listed.uidvalidity() {
            return Err(mismatch("UIDVALIDITY"));
        }
        if u64::from(h.sync_crc) != listed.sync_crc() {
            return Err(mismatch("SYNC_CRC"));
        }
        if u64::from(h.sync_crc_annot) != listed.sync_crc_annot() {
            return Err(mismatch("SYNC_CRC_ANNOT"));
        }
        if h.quota_annot_used != 0 {
            return Err(LocalError::Annotations {
                mailbox: name.to_string(),
            });
        }
        let records = index
            .records
            .iter()
            .filter(|r| since.is_none_or(|s| r.modseq > s.modseq || u64::from(r.uid) > s.last_uid))
            .map(|r| r.to_value(&header.user_flags))
            .collect();
        let mut kv: Vec<(String, Value)> = listed
            .kvlist()
            .iter()
            .filter(|(k, _)| *k != "RECORD")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        kv.push(("RECORD".into(), Value::List(records)));
        MailboxState::from_kvlist(KvList(kv)).map_err(|e| LocalError::Index {
            path: index_path,
            source: IndexError::Format(e.to_string()),
        })
    }
}
