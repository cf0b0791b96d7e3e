//! The master's `GET MAILBOXES` entry of a mailbox, rebuilt from its files.
//!
//! An entry holds two kinds of field (Cyrus 3.6 `sync_prepare_dlists`):
//! those of the mailbox list entry and of the mailbox annotations (name,
//! uniqueid, type, partition, ACL, FOLDERMODSEQ, ANNOTATIONS), which change
//! only with a write to `mailboxes.db` or `annotations.db`; and those of the
//! index header (sync CRCs, LAST_UID, HIGHESTMODSEQ, …), which every
//! message change moves. `sync_client` reads both from the files of the
//! master it runs on; asking the master's `sync_server` instead costs it a
//! mailbox open under lock per run, which in a flag storm with
//! `sync_repeat_interval: 0` was a third of the CPU replication cost (W5).
//!
//! So the engine keeps each entry the protocol gave, stamped with both
//! databases as they were *before* it asked, and while neither database has
//! changed since, takes the list-entry fields from that entry and the rest
//! from `cyrus.header` and the index header. Both databases must be of a
//! kind that no commit leaves unchanged in size, inode and times (twoskip,
//! skiplist: appended to, or replaced on repack), and any field this module
//! does not know sends the mailbox back to the protocol.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::index::{IndexHeader, MailboxHeader};
use crate::config::file::ImapdConf;
use crate::dlist::{KvList, Value};
use crate::model::MailboxState;

/// `OPT_POP3_NEW_UIDL`, `OPT_IMAP_SHAREDSEEN`, `OPT_IMAP_DUPDELIVER`,
/// `OPT_IMAP_HAS_ALARMS` with their `OPTIONS` letters, in the order
/// `sync_encode_options` writes them.
const OPTION_LETTERS: [(u32, char); 4] =
    [(1 << 0, 'P'), (1 << 2, 'S'), (1 << 3, 'D'), (1 << 4, 'A')];
/// `OPT_POP3_NEW_UIDL`.
const OPT_POP3_NEW_UIDL: u32 = 1 << 0;
/// `OPT_MAILBOX_DELETED`: the mailbox awaits cleanup.
const OPT_MAILBOX_DELETED: u32 = 1 << 31;

/// Fields of an entry that the mailbox list entry or the mailbox
/// annotations hold (kept while the databases are unchanged).
const FROM_DATABASES: &[&str] = &[
    "UNIQUEID",
    "MBOXNAME",
    "MBOXTYPE",
    "PARTITION",
    "ACL",
    "QUOTAROOT",
    "FOLDERMODSEQ",
    "ANNOTATIONS",
];

/// The identity of one file: a commit to it changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Both databases as they were at one moment (`None`: not there yet;
/// Cyrus creates `annotations.db` only when it first needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbStamp([Option<FileStamp>; 2]);

/// Where the master keeps `mailboxes.db` and `annotations.db`.
#[derive(Debug, Clone)]
pub struct MasterDbs {
    files: [PathBuf; 2],
}

impl MasterDbs {
    /// The databases of the master configured by `conf`, or why its
    /// entries cannot be rebuilt from files (then the protocol lists).
    pub fn from_conf(conf: &ImapdConf) -> Result<MasterDbs, String> {
        let value = |key: &str| conf.get(key).map(|e| e.value.as_str());
        let on = |key: &str| {
            value(key)
                .and_then(crate::config::value::parse_switch)
                .unwrap_or(false)
        };
        // XCONVMODSEQ and RACLMODSEQ come from other files, which can move
        // with no database write.
        for key in ["conversations", "reverseacls"] {
            if on(key) {
                return Err(format!("{key} is on"));
            }
        }
        let dir = value("configdirectory").ok_or("no configdirectory")?;
        let db = |kind_key: &str, path_key: &str, default: &str| {
            let kind = value(kind_key).unwrap_or("twoskip");
            if !matches!(kind, "twoskip" | "skiplist") {
                return Err(format!("{kind_key} is {kind}"));
            }
            Ok(value(path_key).map_or_else(|| PathBuf::from(dir).join(default), PathBuf::from))
        };
        Ok(MasterDbs {
            files: [
                db("mboxlist_db", "mboxlist_db_path", "mailboxes.db")?,
                db("annotation_db", "annotation_db_path", "annotations.db")?,
            ],
        })
    }

    /// Both databases now; `None` when one cannot be looked at (other
    /// than by being absent).
    pub fn stamp(&self) -> Option<DbStamp> {
        let one = |p: &PathBuf| -> Option<Option<FileStamp>> {
            let m = match std::fs::metadata(p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
                Err(_) => return None,
            };
            Some(Some(FileStamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            }))
        };
        Some(DbStamp([one(&self.files[0])?, one(&self.files[1])?]))
    }
}

/// `OPTIONS` as `sync_encode_options` writes it.
pub fn encode_options(options: u32) -> String {
    OPTION_LETTERS
        .iter()
        .filter(|(bit, _)| options & bit != 0)
        .map(|(_, letter)| *letter)
        .collect()
}

/// The entry `GET MAILBOXES` would give now for the mailbox that `listed`
/// (an entry from the protocol, while the databases were as now) describes,
/// from its `cyrus.header` and index header; `Err` names the field that
/// stops it (then the protocol must answer).
pub fn relist(
    listed: &MailboxState,
    header: &MailboxHeader,
    index: &IndexHeader,
) -> Result<MailboxState, &'static str> {
    if header.uniqueid != listed.uniqueid() {
        return Err("UNIQUEID");
    }
    // Cyrus 3.6 writes the name into cyrus.header: a rename shows here even
    // when the database stamps missed it.
    if header.name.as_deref() != Some(listed.name()) {
        return Err("MBOXNAME");
    }
    let listed_root = listed.kvlist().get("QUOTAROOT").and_then(Value::as_str);
    if header.quotaroot.as_deref() != listed_root {
        return Err("QUOTAROOT");
    }
    if index.options & OPT_MAILBOX_DELETED != 0 {
        return Err("OPTIONS");
    }
    // Cyrus's reader of the index header sets POP3_NEW_UIDL in memory for
    // a mailbox without messages (mailbox_buf_to_index_header), and
    // GET MAILBOXES shows what is in memory.
    let options = if index.exists == 0 {
        index.options | OPT_POP3_NEW_UIDL
    } else {
        index.options
    };
    let mut kv = KvList::new();
    for (key, value) in listed.kvlist().iter() {
        let fresh = match key {
            k if FROM_DATABASES.contains(&k) => value.clone(),
            "SYNC_CRC" => Value::num(index.sync_crc.into()),
            "SYNC_CRC_ANNOT" => Value::num(index.sync_crc_annot.into()),
            "LAST_UID" => Value::num(index.last_uid.into()),
            "HIGHESTMODSEQ" => Value::num(index.highestmodseq),
            "RECENTUID" => Value::num(index.recentuid.into()),
            "RECENTTIME" => Value::num(index.recenttime.into()),
            "LAST_APPENDDATE" => Value::num(index.last_appenddate.into()),
            "POP3_LAST_LOGIN" => Value::num(index.pop3_last_login.into()),
            "POP3_SHOW_AFTER" => Value::num(index.pop3_show_after.into()),
            "UIDVALIDITY" => Value::num(index.uidvalidity.into()),
            "OPTIONS" => Value::atom(encode_options(options)),
            // Cyrus sends it only when non-zero; it never changes.
            "CREATEDMODSEQ" if index.createdmodseq != 0 => Value::num(index.createdmodseq),
            "CREATEDMODSEQ" => return Err("CREATEDMODSEQ"),
            // XCONVMODSEQ, RACLMODSEQ, RECORD, what a newer Cyrus adds.
            _ => return Err("an unknown field"),
        };
        kv.push(key, fresh);
    }
    if index.createdmodseq != 0 && listed.kvlist().get("CREATEDMODSEQ").is_none() {
        return Err("CREATEDMODSEQ");
    }
    MailboxState::from_kvlist(kv).map_err(|_| "UNIQUEID")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlist::{Limits, parse_value};

    /// A `GET MAILBOXES` entry recorded from Cyrus 3.6.1 (traces/).
    const LISTED: &str = "%(UNIQUEID jtwq03o2sjoeli3l4bcgot27 MBOXNAME user.alice.Trash2 SYNC_CRC 0 SYNC_CRC_ANNOT 12345678 LAST_UID 0 HIGHESTMODSEQ 1 RECENTUID 0 RECENTTIME 0 LAST_APPENDDATE 0 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1796323659 PARTITION default ACL \"alice\tlrswipkxtecdan\tbob\tlrs\t\" OPTIONS P CREATEDMODSEQ 1 FOLDERMODSEQ 1)";

    fn listed(text: &str) -> MailboxState {
        let v = parse_value(text.as_bytes(), &Limits::default()).unwrap();
        MailboxState::from_kvlist(v.as_kvlist().unwrap().clone()).unwrap()
    }

    fn files() -> (MailboxHeader, IndexHeader) {
        (
            MailboxHeader {
                uniqueid: "jtwq03o2sjoeli3l4bcgot27".into(),
                name: Some("user.alice.Trash2".into()),
                quotaroot: None,
                user_flags: Vec::new(),
            },
            IndexHeader {
                last_uid: 0,
                uidvalidity: 1_796_323_659,
                highestmodseq: 1,
                sync_crc: 0,
                sync_crc_annot: 12_345_678,
                options: 1,
                createdmodseq: 1,
                ..IndexHeader::default()
            },
        )
    }

    #[test]
    fn unchanged_files_give_back_the_recorded_entry_byte_for_byte() {
        let l = listed(LISTED);
        let (h, i) = files();
        assert_eq!(relist(&l, &h, &i).unwrap(), l);
    }

    #[test]
    fn index_fields_come_from_the_index_and_list_fields_stay() {
        let l = listed(LISTED);
        let (h, mut i) = files();
        i.last_uid = 7;
        i.highestmodseq = 42;
        i.sync_crc = 3_000_000_000;
        i.recentuid = 6;
        i.recenttime = 1_796_400_000;
        i.last_appenddate = 1_796_400_001;
        i.pop3_last_login = 5;
        i.pop3_show_after = 9;
        i.options = (1 << 0) | (1 << 2) | (1 << 30);
        let got = relist(&l, &h, &i).unwrap();
        let text = |k: &str| {
            got.kvlist()
                .get(k)
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        };
        assert_eq!(got.last_uid(), 7);
        assert_eq!(got.highestmodseq(), 42);
        assert_eq!(got.sync_crc(), 3_000_000_000);
        assert_eq!(text("RECENTUID"), "6");
        assert_eq!(text("RECENTTIME"), "1796400000");
        assert_eq!(text("LAST_APPENDDATE"), "1796400001");
        assert_eq!(text("POP3_LAST_LOGIN"), "5");
        assert_eq!(text("POP3_SHOW_AFTER"), "9");
        // NEEDS_REPACK is not a sync option.
        assert_eq!(text("OPTIONS"), "PS");
        // Without POP3_NEW_UIDL on disk, Cyrus shows it only for a mailbox
        // without messages.
        i.options = 1 << 2;
        i.exists = 0;
        let options = |m: &MailboxState| {
            m.kvlist()
                .get("OPTIONS")
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        };
        assert_eq!(options(&relist(&l, &h, &i).unwrap()), "PS");
        i.exists = 3;
        assert_eq!(options(&relist(&l, &h, &i).unwrap()), "S");
        assert_eq!(text("ACL"), "alice\tlrswipkxtecdan\tbob\tlrs\t");
        assert_eq!(text("FOLDERMODSEQ"), "1");
        let keys: Vec<&str> = got.kvlist().iter().map(|(k, _)| k).collect();
        let want: Vec<&str> = l.kvlist().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, want, "fields in Cyrus's order");
    }

    #[test]
    fn a_rename_a_new_mailbox_or_an_unknown_field_goes_to_the_protocol() {
        let l = listed(LISTED);
        let (h, i) = files();
        let mut renamed = h.clone();
        renamed.name = Some("user.alice.Old".into());
        assert_eq!(relist(&l, &renamed, &i), Err("MBOXNAME"));
        let mut other = h.clone();
        other.uniqueid = "another".into();
        assert_eq!(relist(&l, &other, &i), Err("UNIQUEID"));
        let mut quota = h.clone();
        quota.quotaroot = Some("user.alice".into());
        assert_eq!(relist(&l, &quota, &i), Err("QUOTAROOT"));
        let mut deleted = i.clone();
        deleted.options |= OPT_MAILBOX_DELETED;
        assert_eq!(relist(&l, &h, &deleted), Err("OPTIONS"));
        let conv = listed(&LISTED.replace("FOLDERMODSEQ 1", "FOLDERMODSEQ 1 XCONVMODSEQ 4"));
        assert_eq!(relist(&conv, &h, &i), Err("an unknown field"));
        let mut no_created = i.clone();
        no_created.createdmodseq = 0;
        assert_eq!(relist(&l, &h, &no_created), Err("CREATEDMODSEQ"));
    }

    #[test]
    fn options_are_encoded_as_sync_encode_options_does() {
        assert_eq!(encode_options(0), "");
        assert_eq!(encode_options(1 << 1), "", "CONDSTORE is not sent");
        assert_eq!(encode_options(0x1d), "PSDA");
    }

    #[test]
    fn databases_are_those_of_imapd_conf_and_only_of_a_kind_that_shows_commits() {
        let conf =
            |text: &str| ImapdConf::parse_str(std::path::Path::new("imapd.conf"), text).unwrap();
        let dbs = MasterDbs::from_conf(&conf("configdirectory: /var/imap\n")).unwrap();
        assert_eq!(dbs.files[0], PathBuf::from("/var/imap/mailboxes.db"));
        assert_eq!(dbs.files[1], PathBuf::from("/var/imap/annotations.db"));
        let dbs = MasterDbs::from_conf(&conf(
            "configdirectory: /var/imap\nmboxlist_db_path: /fast/mb.db\nmboxlist_db: skiplist\n",
        ))
        .unwrap();
        assert_eq!(dbs.files[0], PathBuf::from("/fast/mb.db"));
        for refused in [
            "configdirectory: /var/imap\nmboxlist_db: lmdb\n",
            "configdirectory: /var/imap\nannotation_db: sql\n",
            "configdirectory: /var/imap\nconversations: yes\n",
            "configdirectory: /var/imap\nreverseacls: 1\n",
            "partition-default: /var/spool\n",
        ] {
            assert!(MasterDbs::from_conf(&conf(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_commit_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let mb = dir.path().join("mailboxes.db");
        let an = dir.path().join("annotations.db");
        std::fs::write(&mb, b"one").unwrap();
        std::fs::write(&an, b"").unwrap();
        let dbs = MasterDbs {
            files: [mb.clone(), an.clone()],
        };
        let before = dbs.stamp().unwrap();
        assert_eq!(dbs.stamp(), Some(before));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&an)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
            .unwrap();
        assert_ne!(dbs.stamp(), Some(before));
        // Absent, then created: a change too.
        let gone = dbs.stamp().unwrap();
        std::fs::remove_file(&an).unwrap();
        let absent = dbs.stamp().unwrap();
        assert_ne!(absent, gone);
        std::fs::write(&an, b"").unwrap();
        assert_ne!(dbs.stamp(), Some(absent));
        std::fs::remove_file(&mb).unwrap();
        assert_ne!(dbs.stamp(), Some(absent));
    }
}
