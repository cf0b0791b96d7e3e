//! Cyrus's per-mailbox files, parsed without I/O: `cyrus.header` (the DList
//! header line with uniqueid, name, quota root, ACL and user-flag names) and
//! `cyrus.index` of minor version 17 (Cyrus 3.4, 3.6 and 3.8), big-endian,
//! a 160-byte header and 112-byte records, each with its CRC32
//! (`imap/mailbox.h`, `mailbox_buf_to_index_header`/`_record`).
//!
//! Records become the same `RECORD` kvlists that `GET FULLMAILBOX` sends
//! (`sync_prepare_dlists`, `sync_print_flags`, `encode_annotations`), so
//! that the engine cannot tell the two sources apart.

use crate::dlist::{KvList, Limits, Value, parse_value};

/// The first bytes of every `cyrus.header` (`MAILBOX_HEADER_MAGIC`).
pub const HEADER_MAGIC: &[u8] = b"\xa1\x02\x8b\x0dCyrus mailbox header\n\"The best thing about this system was that it had lots of goals.\"\n\t--Jim Morris on Andrew\n";

/// The one index format this reader knows; others go to the protocol.
pub const MINOR_VERSION: u32 = 17;
const HEADER_SIZE: usize = 160;
const RECORD_SIZE: usize = 112;
/// Cyrus keeps 128 user flags per mailbox (`MAX_USER_FLAGS`).
const MAX_USER_FLAGS: usize = 128;
/// `IMAP_ANNOT_NS`: the namespace of the per-message annotations that
/// Cyrus synthesises from the index record.
const ANNOT_NS: &str = "/vendor/cmu/cyrus-imapd/";

/// Why a file could not be read with certainty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Too short for what it claims.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// Another format than this reader knows.
    #[error("index minor version {0}; this reader knows {MINOR_VERSION} only")]
    Version(u32),
    /// The header's CRC32 does not match (a torn or damaged read).
    #[error("index header CRC mismatch")]
    HeaderCrc,
    /// A record's CRC32 does not match.
    #[error("index record {index} CRC mismatch")]
    RecordCrc {
        /// Its position in the file.
        index: usize,
    },
    /// Not what Cyrus writes.
    #[error("bad format: {0}")]
    Format(String),
}

/// What `cyrus.header` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxHeader {
    /// `I`: the mailbox's uniqueid.
    pub uniqueid: String,
    /// `N`: its internal name.
    pub name: Option<String>,
    /// `Q`: its quota root.
    pub quotaroot: Option<String>,
    /// `U`: user-flag names by bit; `None` for an unused bit.
    pub user_flags: Vec<Option<String>>,
}

/// Parses `cyrus.header`. Only the DList form of Cyrus 3.x is accepted; the
/// old tab-separated form goes to the protocol.
pub fn parse_header(bytes: &[u8]) -> Result<MailboxHeader, IndexError> {
    let rest = bytes
        .strip_prefix(HEADER_MAGIC)
        .ok_or_else(|| IndexError::Format("cyrus.header has no Cyrus magic".into()))?;
    if rest.first() != Some(&b'%') {
        return Err(IndexError::Format(
            "cyrus.header is in the pre-3.0 form".into(),
        ));
    }
    let line = rest
        .split(|&b| b == b'\n')
        .next()
        .ok_or(IndexError::Truncated("cyrus.header line"))?;
    let value = parse_value(line, &Limits::default())
        .map_err(|e| IndexError::Format(format!("cyrus.header: {e}")))?;
    let kv = value
        .as_kvlist()
        .ok_or_else(|| IndexError::Format("cyrus.header is not a kvlist".into()))?;
    let text = |k: &str| kv.get(k).and_then(Value::as_str).map(str::to_string);
    let uniqueid = text("I").ok_or_else(|| IndexError::Format("cyrus.header has no I".into()))?;
    let user_flags = match kv.get("U") {
        None => Vec::new(),
        Some(v) => v
            .as_list()
            .ok_or_else(|| IndexError::Format("cyrus.header U is not a list".into()))?
            .iter()
            .map(|f| match f {
                Value::Nil => None,
                other => other.as_str().filter(|s| !s.is_empty()).map(str::to_string),
            })
            .collect(),
    };
    Ok(MailboxHeader {
        uniqueid,
        name: text("N"),
        quotaroot: text("Q"),
        user_flags,
    })
}

/// The index header fields `GET MAILBOXES` also reports, for the
/// consistency check, and the ones the records need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexHeader {
    /// `generation_no`.
    pub generation: u32,
    /// Records in the file.
    pub num_records: u32,
    /// `LAST_UID`.
    pub last_uid: u32,
    /// `UIDVALIDITY`.
    pub uidvalidity: u32,
    /// `HIGHESTMODSEQ`.
    pub highestmodseq: u64,
    /// `SYNC_CRC`.
    pub sync_crc: u32,
    /// `SYNC_CRC_ANNOT`.
    pub sync_crc_annot: u32,
    /// Bytes of mailbox and per-message annotations: non-zero means
    /// annotations live outside the index, in the annotation database.
    pub quota_annot_used: u32,
    /// `LAST_APPENDDATE`.
    pub last_appenddate: u32,
    /// `POP3_LAST_LOGIN`.
    pub pop3_last_login: u32,
    /// The `OPT_*` bits as stored, of which `OPTIONS` shows four.
    pub options: u32,
    /// Messages not expunged (`EXISTS`).
    pub exists: u32,
    /// `RECENTUID`.
    pub recentuid: u32,
    /// `RECENTTIME`.
    pub recenttime: u32,
    /// `POP3_SHOW_AFTER`.
    pub pop3_show_after: u32,
    /// `CREATEDMODSEQ` (the mailbox's; 0 in mailboxes older than 3.0).
    pub createdmodseq: u64,
}

/// One index record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRecord {
    /// `UID`.
    pub uid: u32,
    /// `INTERNALDATE`.
    pub internaldate: u32,
    /// `SIZE`.
    pub size: u32,
    /// `LAST_UPDATED`.
    pub last_updated: u32,
    /// System flags (low 16 bits) and internal flags (high 16 bits).
    pub flags: u32,
    /// User flags by bit.
    pub user_flags: [u32; 4],
    /// `savedate`.
    pub savedate: u32,
    /// The message GUID (SHA-1 of the file).
    pub guid: [u8; 20],
    /// `MODSEQ`.
    pub modseq: u64,
    /// Conversation id (`thrid`).
    pub thrid: u64,
    /// `createdmodseq`.
    pub createdmodseq: u64,
}

const FLAG_ANSWERED: u32 = 1 << 0;
const FLAG_FLAGGED: u32 = 1 << 1;
const FLAG_DELETED: u32 = 1 << 2;
const FLAG_DRAFT: u32 = 1 << 3;
const FLAG_SEEN: u32 = 1 << 4;
/// The message file is gone (`FLAG_INTERNAL_UNLINKED`).
pub const FLAG_UNLINKED: u32 = 1 << 30;
const FLAG_EXPUNGED: u32 = 1 << 31;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

/// A parsed `cyrus.index`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// The header.
    pub header: IndexHeader,
    /// Every record, in file (UID) order.
    pub records: Vec<IndexRecord>,
}

/// The bytes of the index header: reading that many from the start of
/// `cyrus.index` is enough for [`parse_index_header`].
pub const INDEX_HEADER_SIZE: usize = HEADER_SIZE;

/// Parses the header of a `cyrus.index` (only its first
/// [`INDEX_HEADER_SIZE`] bytes are needed), checking its CRC.
pub fn parse_index_header(b: &[u8]) -> Result<IndexHeader, IndexError> {
    if b.len() < 12 {
        return Err(IndexError::Truncated("index header"));
    }
    let version = u32_at(b, 8);
    if version != MINOR_VERSION {
        return Err(IndexError::Version(version));
    }
    if b.len() < HEADER_SIZE {
        return Err(IndexError::Truncated("index header"));
    }
    if crc32(&b[..HEADER_SIZE - 4]) != u32_at(b, HEADER_SIZE - 4) {
        return Err(IndexError::HeaderCrc);
    }
    let start = u32_at(b, 12) as usize;
    let record_size = u32_at(b, 16) as usize;
    if record_size != RECORD_SIZE || start < HEADER_SIZE {
        return Err(IndexError::Format(format!(
            "start offset {start}, record size {record_size}"
        )));
    }
    // Offsets of Cyrus 3.6's imap/mailbox.h (OFFSET_*, minor version 17).
    Ok(IndexHeader {
        generation: u32_at(b, 0),
        num_records: u32_at(b, 20),
        last_appenddate: u32_at(b, 24),
        last_uid: u32_at(b, 28),
        pop3_last_login: u32_at(b, 40),
        uidvalidity: u32_at(b, 44),
        options: u32_at(b, 60),
        exists: u32_at(b, 84),
        highestmodseq: u64_at(b, 68).max(1),
        sync_crc: u32_at(b, 100),
        recentuid: u32_at(b, 104),
        recenttime: u32_at(b, 108),
        pop3_show_after: u32_at(b, 112),
        quota_annot_used: u32_at(b, 116),
        sync_crc_annot: u32_at(b, 120),
        createdmodseq: u64_at(b, 128),
    })
}

/// Parses a whole `cyrus.index`, checking every CRC.
pub fn parse_index(b: &[u8]) -> Result<Index, IndexError> {
    let header = parse_index_header(b)?;
    let start = u32_at(b, 12) as usize;
    let n = header.num_records as usize;
    let end = n
        .checked_mul(RECORD_SIZE)
        .and_then(|len| len.checked_add(start))
        .ok_or(IndexError::Truncated("records"))?;
    if b.len() < end {
        return Err(IndexError::Truncated("records"));
    }
    let mut records = Vec::with_capacity(n);
    for index in 0..n {
        let r = &b[start + index * RECORD_SIZE..start + (index + 1) * RECORD_SIZE];
        if crc32(&r[..108]) != u32_at(r, 108) {
            return Err(IndexError::RecordCrc { index });
        }
        let mut guid = [0u8; 20];
        guid.copy_from_slice(&r[60..80]);
        records.push(IndexRecord {
            uid: u32_at(r, 0),
            internaldate: u32_at(r, 4),
            size: u32_at(r, 12),
            last_updated: u32_at(r, 28),
            flags: u32_at(r, 32),
            user_flags: [u32_at(r, 36), u32_at(r, 40), u32_at(r, 44), u32_at(r, 48)],
            savedate: u32_at(r, 52),
            guid,
            modseq: u64_at(r, 80),
            thrid: u64_at(r, 88),
            createdmodseq: u64_at(r, 96),
        });
    }
    Ok(Index { header, records })
}

fn atom(s: impl Into<Vec<u8>>) -> Value {
    Value::Atom(s.into())
}

fn synthetic(kv: &mut Vec<Value>, entry: &str, value: String) {
    kv.push(Value::KvList(KvList(vec![
        ("ENTRY".into(), atom(format!("{ANNOT_NS}{entry}"))),
        ("USERID".into(), atom("")),
        ("MODSEQ".into(), atom("0")),
        ("VALUE".into(), atom(value)),
    ])));
}

impl IndexRecord {
    /// The GUID as 40 lowercase hex digits.
    pub fn guid_hex(&self) -> String {
        self.guid.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The record as `GET FULLMAILBOX` sends it, for a mailbox whose
    /// annotations all live in the index (see
    /// [`IndexHeader::quota_annot_used`]).
    pub fn to_value(&self, user_flags: &[Option<String>]) -> Value {
        // sync_print_flags: this order, \Expunged from the internal flags.
        let mut flags = Vec::new();
        for (bit, name) in [
            (FLAG_DELETED, "\\Deleted"),
            (FLAG_ANSWERED, "\\Answered"),
            (FLAG_FLAGGED, "\\Flagged"),
            (FLAG_DRAFT, "\\Draft"),
            (FLAG_EXPUNGED, "\\Expunged"),
            (FLAG_SEEN, "\\Seen"),
        ] {
            if self.flags & bit != 0 {
                flags.push(Value::Flag(name.into()));
            }
        }
        for (i, name) in user_flags.iter().enumerate().take(MAX_USER_FLAGS) {
            if let Some(name) = name
                && self.user_flags[i / 32] & (1 << (i % 32)) != 0
            {
                flags.push(atom(name.as_bytes()));
            }
        }
        let mut kv = vec![
            ("UID".to_string(), atom(self.uid.to_string())),
            ("MODSEQ".into(), atom(self.modseq.to_string())),
            ("LAST_UPDATED".into(), atom(self.last_updated.to_string())),
            ("FLAGS".into(), Value::List(flags)),
            ("INTERNALDATE".into(), atom(self.internaldate.to_string())),
            ("SIZE".into(), atom(self.size.to_string())),
            ("GUID".into(), atom(self.guid_hex())),
        ];
        // encode_annotations: thrid, savedate, createdmodseq, when set.
        let mut annots = Vec::new();
        if self.thrid != 0 {
            synthetic(&mut annots, "thrid", format!("{:016x}", self.thrid));
        }
        if self.savedate != 0 {
            synthetic(&mut annots, "savedate", self.savedate.to_string());
        }
        if self.createdmodseq != 0 {
            synthetic(&mut annots, "createdmodseq", self.createdmodseq.to_string());
        }
        if !annots.is_empty() {
            kv.push(("ANNOTATIONS".into(), Value::List(annots)));
        }
        Value::KvList(KvList(kv))
    }

    /// Whether the message file is still on disk.
    pub fn unlinked(&self) -> bool {
        self.flags & FLAG_UNLINKED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlist::LiteralStyle;
    use crate::dlist::encode_value;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    /// An index as Cyrus 3.6 writes it, with `records` records.
    fn index_bytes(records: &[IndexRecord]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        put32(&mut b, 8, MINOR_VERSION);
        put32(&mut b, 12, HEADER_SIZE as u32);
        put32(&mut b, 16, RECORD_SIZE as u32);
        put32(&mut b, 20, records.len() as u32);
        put32(&mut b, 28, records.last().map_or(0, |r| r.uid));
        put32(&mut b, 44, 1_796_323_652);
        put64(&mut b, 68, 14);
        put32(&mut b, 100, 1_701_166_286);
        let crc = crc32(&b[..156]);
        put32(&mut b, 156, crc);
        for r in records {
            let mut x = vec![0u8; RECORD_SIZE];
            put32(&mut x, 0, r.uid);
            put32(&mut x, 4, r.internaldate);
            put32(&mut x, 12, r.size);
            put32(&mut x, 28, r.last_updated);
            put32(&mut x, 32, r.flags);
            for (i, f) in r.user_flags.iter().enumerate() {
                put32(&mut x, 36 + 4 * i, *f);
            }
            put32(&mut x, 52, r.savedate);
            x[60..80].copy_from_slice(&r.guid);
            put64(&mut x, 80, r.modseq);
            put64(&mut x, 88, r.thrid);
            put64(&mut x, 96, r.createdmodseq);
            let crc = crc32(&x[..108]);
            put32(&mut x, 108, crc);
            b.extend_from_slice(&x);
        }
        b
    }

    fn record() -> IndexRecord {
        let mut guid = [0u8; 20];
        hex_into("483a26a489b4c95cc4f26ee12b0982a9283df26d", &mut guid);
        IndexRecord {
            uid: 1,
            internaldate: 1_796_323_651,
            size: 470,
            last_updated: 1_796_323_656,
            flags: FLAG_FLAGGED | FLAG_SEEN,
            savedate: 1_796_323_652,
            guid,
            modseq: 11,
            createdmodseq: 2,
            ..IndexRecord::default()
        }
    }

    fn hex_into(hex: &str, out: &mut [u8]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
    }

    #[test]
    fn record_encodes_as_the_recorded_fullmailbox_answer() {
        // The first record of trace 50 (`SYNCGET FULLMAILBOX user.alice`).
        let mut out = Vec::new();
        encode_value(&record().to_value(&[]), LiteralStyle::NonSync, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "%(UID 1 MODSEQ 11 LAST_UPDATED 1796323656 FLAGS (\\Flagged \\Seen) \
             INTERNALDATE 1796323651 SIZE 470 GUID 483a26a489b4c95cc4f26ee12b0982a9283df26d \
             ANNOTATIONS (%(ENTRY /vendor/cmu/cyrus-imapd/savedate USERID \"\" MODSEQ 0 VALUE 1796323652) \
             %(ENTRY /vendor/cmu/cyrus-imapd/createdmodseq USERID \"\" MODSEQ 0 VALUE 2)))"
        );
    }

    #[test]
    fn flags_follow_cyrus_order_with_user_flags_by_bit() {
        let mut r = record();
        r.flags = FLAG_SEEN | FLAG_EXPUNGED | FLAG_DELETED | FLAG_ANSWERED | FLAG_DRAFT;
        r.user_flags = [0b101, 0, 0, 1 << 31];
        let names: Vec<Option<String>> = (0..128)
            .map(|i| match i {
                0 => Some("$Label1".to_string()),
                1 => Some("unset".to_string()),
                2 => Some("Junk".to_string()),
                127 => Some("last".to_string()),
                _ => None,
            })
            .collect();
        let v = r.to_value(&names);
        let flags: Vec<String> = v
            .as_kvlist()
            .unwrap()
            .get("FLAGS")
            .unwrap()
            .as_list()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            flags,
            [
                "\\Deleted",
                "\\Answered",
                "\\Draft",
                "\\Expunged",
                "\\Seen",
                "$Label1",
                "Junk",
                "last"
            ]
        );
    }

    #[test]
    fn index_round_trips_and_checks_every_crc() {
        let mut second = record();
        second.uid = 2;
        second.thrid = 0xabc;
        let bytes = index_bytes(&[record(), second.clone()]);
        let index = parse_index(&bytes).unwrap();
        assert_eq!(index.records, vec![record(), second]);
        assert_eq!(index.header.highestmodseq, 14);
        assert_eq!(index.header.sync_crc, 1_701_166_286);
        assert_eq!(index.header.last_uid, 2);

        let mut torn = bytes.clone();
        torn[HEADER_SIZE + RECORD_SIZE + 33] ^= 1;
        assert_eq!(parse_index(&torn), Err(IndexError::RecordCrc { index: 1 }));
        let mut bad_header = bytes.clone();
        bad_header[70] ^= 1;
        assert_eq!(parse_index(&bad_header), Err(IndexError::HeaderCrc));
        assert_eq!(
            parse_index(&bytes[..bytes.len() - 1]),
            Err(IndexError::Truncated("records"))
        );
        let mut v16 = bytes;
        put32(&mut v16, 8, 16);
        assert_eq!(parse_index(&v16), Err(IndexError::Version(16)));
        assert_eq!(parse_index(&[]), Err(IndexError::Truncated("index header")));
    }

    #[test]
    fn header_dlist_gives_uniqueid_and_flag_names() {
        let mut b = HEADER_MAGIC.to_vec();
        b.extend_from_slice(
            b"%(T r N user.alice I epf7isfmd3s8jybnj1asxa5o Q user.alice A %(alice lrswipkxtecdan) U ($Label1 NIL Junk))\n",
        );
        let h = parse_header(&b).unwrap();
        assert_eq!(h.uniqueid, "epf7isfmd3s8jybnj1asxa5o");
        assert_eq!(h.name.as_deref(), Some("user.alice"));
        assert_eq!(h.quotaroot.as_deref(), Some("user.alice"));
        assert_eq!(
            h.user_flags,
            vec![Some("$Label1".into()), None, Some("Junk".into())]
        );
        assert!(parse_header(b"garbage").is_err());
        let mut old = HEADER_MAGIC.to_vec();
        old.extend_from_slice(b"user.alice\tuid\n\nalice\tlrs\t\n");
        assert!(parse_header(&old).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let good = index_bytes(&[record()]);
        for cut in 0..good.len() {
            let _ = parse_index(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] = b[i].wrapping_add(0x55);
            let _ = parse_index(&b);
        }
    }
}
