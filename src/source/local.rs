//! The local reader: a mailbox's records straight from its `cyrus.index` on
//! the master host, under the shared lock Cyrus's own readers take, for the
//! milliseconds of one read. Cyrus's `mbpath` finds the files (uuid or
//! name-based storage, metapartitions), asked by uniqueid so that the
//! administrator's namespace settings (`unixhierarchysep`, `altnamespace`,
//! 8-bit names) play no part, many mailboxes per call. The mailbox-level fields come from
//! the protocol's `GET MAILBOXES`, which the engine reads anyway; the index
//! must agree with them (HIGHESTMODSEQ, LAST_UID, UIDVALIDITY, both sync
//! CRCs) or the read is refused and the protocol answers instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;

use super::index::{IndexError, parse_header, parse_index};
use crate::config::{ChannelConfig, Host, MasterReader};
use crate::dlist::{FileLiteral, KvList, Value};
use crate::model::MailboxState;
use crate::proto::session::BodySink;

/// POSIX locks belong to the process and closing any descriptor of a file
/// drops them all, so two reads of one index in this process (two channels,
/// one master) must not overlap.
static READING: Mutex<()> = Mutex::new(());

/// Where mailboxes live, by imapd.conf and uniqueid: a fact of the Cyrus
/// installation that every reader in this process shares (all workers, all
/// channels, across reconnects), so that `mbpath` runs once per mailbox.
static LOCATIONS: Mutex<Option<HashMap<(PathBuf, String), Dirs>>> = Mutex::new(None);

/// Most mailboxes remembered; past it the cache starts afresh.
const LOCATIONS_MAX: usize = 100_000;

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
    config: PathBuf,
    mbpath: PathBuf,
}

/// Where a mailbox's files are (`mbpath -j`: `meta`, `data`, `archive`).
#[derive(Debug, Clone)]
struct Dirs {
    meta: PathBuf,
    data: PathBuf,
    archive: Option<PathBuf>,
}

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
        Some(LocalReader {
            config: config.to_path_buf(),
            mbpath,
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

    fn cached(&self, uniqueid: &str) -> Option<Dirs> {
        let cache = LOCATIONS.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()?
            .get(&(self.config.clone(), uniqueid.to_string()))
            .cloned()
    }

    /// Asks `mbpath` once for every mailbox of `uniqueids` not known yet
    /// (`-p /<uniqueid>` looks a mailbox up by its uniqueid; `-7` takes the
    /// argument as it is). Mailboxes it cannot place are left out; a later
    /// read of one of them falls back to the protocol.
    pub fn locate(&mut self, uniqueids: &[&str]) -> Result<(), LocalError> {
        let mut unknown: Vec<&str> = uniqueids
            .iter()
            .copied()
            .filter(|u| !u.is_empty() && self.cached(u).is_none())
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for chunk in unknown.chunks(256) {
            self.run_mbpath(chunk)?;
        }
        Ok(())
    }

    fn run_mbpath(&self, uniqueids: &[&str]) -> Result<(), LocalError> {
        let locate = |detail: String| LocalError::Locate {
            mailbox: uniqueids.join(" "),
            detail,
        };
        let out = std::process::Command::new(&self.mbpath)
            .arg("-C")
            .arg(&self.config)
            .args(["-7", "-j", "-p"])
            .args(uniqueids.iter().map(|u| format!("/{u}")))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| locate(e.to_string()))?;
        // One JSON object per mailbox found; those it cannot find are named
        // on stderr (and make the exit status non-zero).
        let mut found = Vec::new();
        for json in
            serde_json::Deserializer::from_slice(&out.stdout).into_iter::<serde_json::Value>()
        {
            let json = json.map_err(|e| locate(format!("unreadable answer: {e}")))?;
            let path = |key: &str| {
                json.get(key)
                    .and_then(serde_json::Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(PathBuf::from)
            };
            let (Some(meta), Some(data)) = (path("meta"), path("data")) else {
                return Err(locate("no meta or data path in its answer".into()));
            };
            found.push(Dirs {
                meta,
                data,
                archive: path("archive"),
            });
        }
        if found.is_empty() && !out.status.success() {
            return Err(locate(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        // The answers carry names, not uniqueids: each is matched to its
        // uniqueid by the directory, which Cyrus names after the uniqueid
        // (uuid storage), or checked later against cyrus.header.
        let mut cache = LOCATIONS.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() + found.len() > LOCATIONS_MAX {
            cache.clear();
        }
        if found.len() == uniqueids.len() && out.status.success() {
            for (u, d) in uniqueids.iter().zip(found) {
                cache.insert((self.config.clone(), (*u).to_string()), d);
            }
        } else {
            for d in found {
                if let Some(u) = uniqueids.iter().find(|u| d.meta.ends_with(u)) {
                    cache.insert((self.config.clone(), (*u).to_string()), d);
                }
            }
        }
        Ok(())
    }

    fn dirs(&mut self, uniqueid: &str) -> Result<Dirs, LocalError> {
        if let Some(d) = self.cached(uniqueid) {
            return Ok(d);
        }
        self.locate(&[uniqueid])?;
        self.cached(uniqueid).ok_or_else(|| LocalError::Locate {
            mailbox: uniqueid.to_string(),
            detail: "mbpath does not know this uniqueid".into(),
        })
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
        let dirs = self.dirs(uniqueid)?;
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

    /// Forgets where the mailbox `uniqueid` lives (after a failed read: a
    /// rename moves a mailbox stored under its name).
    pub fn forget(&mut self, uniqueid: &str) {
        let mut cache = LOCATIONS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.as_mut() {
            c.remove(&(self.config.clone(), uniqueid.to_string()));
        }
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
        let result = self.read(&name, listed, since);
        if result.is_err() {
            self.forget(listed.uniqueid());
        }
        result
    }

    fn read(
        &mut self,
        name: &str,
        listed: &MailboxState,
        since: Option<Since>,
    ) -> Result<MailboxState, LocalError> {
        let dir = self.dirs(listed.uniqueid())?.meta;
        let header_path = dir.join("cyrus.header");
        let index_path = dir.join("cyrus.index");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io { path, source }
        };
        let (header_bytes, index_bytes) = {
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
            let read = index.read_to_end(&mut bytes).map_err(io(&index_path));
            let _ = fcntl_lock(&index, FlockOperation::Unlock);
            (header?, {
                read?;
                bytes
            })
        };
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
