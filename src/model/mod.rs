//! Typed views of the Cyrus objects that replication moves (DESIGN.md §3
//! `model/`): mailbox state and records, quota, seen state, subscriptions.
//!
//! Each view keeps the DList it was read from, so what the master sends is
//! passed on to the replica exactly — including fields a newer Cyrus adds that
//! this code does not know — and typed accessors are used only for decisions.

use crate::dlist::{KvList, Response, Value};

/// Why a server answer could not be understood as a Cyrus object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} from the server: {detail}")]
pub struct ModelError {
    /// Which object.
    pub what: &'static str,
    /// What was missing or wrong.
    pub detail: String,
}

fn missing(what: &'static str, key: &str) -> ModelError {
    ModelError {
        what,
        detail: format!("no valid {key}"),
    }
}

/// A mailbox as `GET MAILBOXES`/`GET USER` (no records) or `GET FULLMAILBOX`
/// (with `RECORD`) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxState {
    kv: KvList,
    uniqueid: String,
    name: String,
}

impl MailboxState {
    /// Reads a `MAILBOX` kvlist.
    pub fn from_kvlist(kv: KvList) -> Result<MailboxState, ModelError> {
        let uniqueid = kv
            .get("UNIQUEID")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("MAILBOX", "UNIQUEID"))?
            .to_string();
        let name = kv
            .get("MBOXNAME")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("MAILBOX", "MBOXNAME"))?
            .to_string();
        Ok(MailboxState { kv, uniqueid, name })
    }

    /// The mailbox's unique id (kept across renames).
    pub fn uniqueid(&self) -> &str {
        &self.uniqueid
    }

    /// The internal name (`user.alice.Sent`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole kvlist as received.
    pub fn kvlist(&self) -> &KvList {
        &self.kv
    }

    fn num(&self, key: &str) -> u64 {
        self.kv.get(key).and_then(Value::as_u64).unwrap_or(0)
    }

    fn text(&self, key: &str) -> &str {
        self.kv.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// `HIGHESTMODSEQ`.
    pub fn highestmodseq(&self) -> u64 {
        self.num("HIGHESTMODSEQ")
    }

    /// `LAST_UID`.
    pub fn last_uid(&self) -> u64 {
        self.num("LAST_UID")
    }

    /// `UIDVALIDITY`.
    pub fn uidvalidity(&self) -> u64 {
        self.num("UIDVALIDITY")
    }

    /// `SYNC_CRC` (basic).
    pub fn sync_crc(&self) -> u64 {
        self.num("SYNC_CRC")
    }

    /// `SYNC_CRC_ANNOT`.
    pub fn sync_crc_annot(&self) -> u64 {
        self.num("SYNC_CRC_ANNOT")
    }

    /// `PARTITION`.
    pub fn partition(&self) -> &str {
        self.text("PARTITION")
    }

    /// The records of a `GET FULLMAILBOX` answer, in UID order as sent.
    pub fn records(&self) -> Result<Vec<Record>, ModelError> {
        match self.kv.get("RECORD") {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_list()
                .ok_or_else(|| missing("MAILBOX", "RECORD list"))?
                .iter()
                .map(Record::from_value)
                .collect(),
        }
    }

    /// The mailbox-level state and its records, taken apart without
    /// copying the records (a `GET FULLMAILBOX` of a large mailbox is the
    /// largest thing the engine holds).
    pub fn split_records(self) -> Result<(MailboxState, Vec<Record>), ModelError> {
        let MailboxState { kv, uniqueid, name } = self;
        let mut fields = Vec::with_capacity(kv.len());
        let mut records = Vec::new();
        for (k, v) in kv.0 {
            if k != "RECORD" {
                fields.push((k, v));
                continue;
            }
            match v {
                Value::List(items) => {
                    records.reserve(items.len());
                    for item in items {
                        records.push(Record::from_owned(item)?);
                    }
                }
                _ => return Err(missing("MAILBOX", "RECORD list")),
            }
        }
        Ok((
            MailboxState {
                kv: KvList(fields),
                uniqueid,
                name,
            },
            records,
        ))
    }

    /// Everything but `RECORD`: the mailbox-level fields.
    pub fn header(&self) -> KvList {
        KvList(
            self.kv
                .iter()
                .filter(|(k, _)| *k != "RECORD")
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    /// Whether the replica's state already equals the master's, field for field
    /// (sync CRCs, modseqs, UIDs, ACL, options, annotations …). A replica that
    /// sync_client brought up to date answers byte-identical lists, so any
    /// difference means the mailbox needs work.
    pub fn agrees_with(&self, other: &MailboxState) -> bool {
        self.header() == other.header()
    }

    /// The fields that differ from `other`, for `verify` and logs.
    pub fn differences(&self, other: &MailboxState) -> Vec<FieldDiff> {
        diff_kvlists(&self.header(), &other.header())
    }
}

/// One field that differs between master and replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// The DList key.
    pub key: String,
    /// The master's value, encoded as on the wire (`None`: absent).
    pub master: Option<String>,
    /// The replica's value.
    pub replica: Option<String>,
}

fn show(v: &Value) -> String {
    let mut out = Vec::new();
    match crate::dlist::encode_value(v, crate::dlist::LiteralStyle::NonSync, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => format!("{v:?}"),
    }
}

/// Field-by-field differences of two kvlists (keys in the master's order, then
/// replica-only keys).
pub fn diff_kvlists(master: &KvList, replica: &KvList) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    for (k, v) in master.iter() {
        let r = replica.get(k);
        if r != Some(v) {
            out.push(FieldDiff {
                key: k.to_string(),
                master: Some(show(v)),
                replica: r.map(show),
            });
        }
    }
    for (k, v) in replica.iter() {
        if master.get(k).is_none() {
            out.push(FieldDiff {
                key: k.to_string(),
                master: None,
                replica: Some(show(v)),
            });
        }
    }
    out
}

/// One message record of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    value: Value,
    /// `UID`.
    pub uid: u32,
    /// `MODSEQ`.
    pub modseq: u64,
    /// `GUID`, 40 hex digits.
    pub guid: String,
    /// `SIZE` of the message file.
    pub size: u64,
    /// `FLAGS` contains `\Expunged`.
    pub expunged: bool,
}

impl Record {
    /// Reads a `RECORD` kvlist.
    pub fn from_value(value: &Value) -> Result<Record, ModelError> {
        Record::from_owned(value.clone())
    }

    /// Reads a `RECORD` kvlist, keeping it without a copy.
    pub fn from_owned(value: Value) -> Result<Record, ModelError> {
        let kv = value
            .as_kvlist()
            .ok_or_else(|| missing("RECORD", "kvlist"))?;
        let uid = kv
            .get("UID")
            .and_then(Value::as_u32)
            .ok_or_else(|| missing("RECORD", "UID"))?;
        let modseq = kv
            .get("MODSEQ")
            .and_then(Value::as_u64)
            .ok_or_else(|| missing("RECORD", "MODSEQ"))?;
        let guid = kv
            .get("GUID")
            .and_then(Value::as_guid)
            .ok_or_else(|| missing("RECORD", "GUID"))?
            .to_ascii_lowercase();
        let size = kv.get("SIZE").and_then(Value::as_u64).unwrap_or(0);
        let expunged = kv
            .get("FLAGS")
            .and_then(Value::as_list)
            .is_some_and(|flags| {
                flags.iter().any(|f| {
                    f.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case("\\Expunged"))
                })
            });
        Ok(Record {
            value,
            uid,
            modseq,
            guid,
            size,
            expunged,
        })
    }

    /// The record as received, to pass on in `APPLY MAILBOX`.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The `RECORD` kvlist itself, given up without a copy.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The record with another `MODSEQ` (partial batches, see the engine).
    pub fn with_modseq(&self, modseq: u64) -> Value {
        match &self.value {
            Value::KvList(kv) => Value::KvList(KvList(
                kv.iter()
                    .map(|(k, v)| {
                        if k == "MODSEQ" {
                            (k.to_string(), Value::num(modseq))
                        } else {
                            (k.to_string(), v.clone())
                        }
                    })
                    .collect(),
            )),
            other => other.clone(),
        }
    }
}

/// What `GET USER` says about one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// Mailboxes (the `DELETED.` namespace included), in server order.
    pub mailboxes: Vec<MailboxState>,
    /// `QUOTA` kvlists, by root.
    pub quotas: Vec<(String, KvList)>,
    /// Subscriptions (`LSUB`).
    pub subscriptions: Vec<String>,
    /// Seen state on other users' mailboxes (`SEEN`), by uniqueid.
    pub seen: Vec<(String, KvList)>,
    /// Legacy sieve entries (only without `SIEVE-MAILBOX`).
    pub sieve: Vec<KvList>,
}

impl UserState {
    /// Reads the untagged items of a `GET USER` (or `GET META`) answer.
    pub fn from_responses(items: &[Response]) -> Result<UserState, ModelError> {
        let mut user = UserState::default();
        for item in items {
            let (Some(name), Some(value)) = (item.name(), item.value()) else {
                continue;
            };
            match name {
                "MAILBOX" => {
                    let kv = value
                        .as_kvlist()
                        .ok_or_else(|| missing("MAILBOX", "kvlist"))?;
                    user.mailboxes.push(MailboxState::from_kvlist(kv.clone())?);
                }
                "QUOTA" => {
                    let kv = value
                        .as_kvlist()
                        .ok_or_else(|| missing("QUOTA", "kvlist"))?;
                    let root = kv
                        .get("ROOT")
                        .and_then(Value::as_str)
                        .ok_or_else(|| missing("QUOTA", "ROOT"))?;
                    user.quotas.push((root.to_string(), kv.clone()));
                }
                "LSUB" => {
                    let list = value.as_list().ok_or_else(|| missing("LSUB", "list"))?;
                    for v in list {
                        let name = v.as_str().ok_or_else(|| missing("LSUB", "name"))?;
                        user.subscriptions.push(name.to_string());
                    }
                }
                "SEEN" => {
                    let kv = value.as_kvlist().ok_or_else(|| missing("SEEN", "kvlist"))?;
                    let uniqueid = kv
                        .get("UNIQUEID")
                        .and_then(Value::as_str)
                        .ok_or_else(|| missing("SEEN", "UNIQUEID"))?;
                    user.seen.push((uniqueid.to_string(), kv.clone()));
                }
                "SIEVE" => {
                    if let Some(kv) = value.as_kvlist() {
                        user.sieve.push(kv.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(user)
    }

    /// Whether the user exists at all (has any mailbox).
    pub fn exists(&self) -> bool {
        !self.mailboxes.is_empty()
    }
}

/// Whether two `QUOTA` kvlists set the same limits. `MODSEQ` is each
/// server's own counter and is not compared, as sync_client compares only
/// the limits (`update_quota_work`).
pub fn quota_limits_equal(master: &KvList, replica: &KvList) -> bool {
    let limits = |kv: &KvList| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = kv
            .iter()
            .filter(|(k, _)| *k != "MODSEQ")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    limits(master) == limits(replica)
}

/// Reads `* MAILBOX` items of a `GET MAILBOXES`/`GET FULLMAILBOX` answer.
pub fn mailboxes_from_responses(items: &[Response]) -> Result<Vec<MailboxState>, ModelError> {
    items
        .iter()
        .filter(|i| i.name() == Some("MAILBOX"))
        .map(|i| {
            let kv = i
                .value()
                .and_then(Value::as_kvlist)
                .ok_or_else(|| missing("MAILBOX", "kvlist"))?;
            MailboxState::from_kvlist(kv.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlist::{Event, Limits, ResponseParser};

    fn parse(wire: &str) -> Vec<Response> {
        let mut p = ResponseParser::responses(Limits::default());
        p.feed(wire.as_bytes());
        let mut out = Vec::new();
        while let Some(ev) = p.next_event().unwrap() {
            if let Event::Message(m) = ev {
                out.push(m);
            }
        }
        out
    }

    const USER: &str = "* MAILBOX %(UNIQUEID epf7isfmd3s8jybnj1asxa5o MBOXNAME user.alice SYNC_CRC 1701166286 SYNC_CRC_ANNOT 642820400 LAST_UID 4 HIGHESTMODSEQ 14 RECENTUID 4 RECENTTIME 1796323655 LAST_APPENDDATE 1796323654 POP3_LAST_LOGIN 0 POP3_SHOW_AFTER 0 UIDVALIDITY 1796323652 PARTITION default ACL \"alice\tlrswipkxtecdan\tbob\tlrs\t\" OPTIONS P QUOTAROOT user.alice CREATEDMODSEQ 1 FOLDERMODSEQ 14 ANNOTATIONS (%(ENTRY /comment USERID alice MODSEQ 0 VALUE hello)))\r\n\
* QUOTA %(ROOT user.alice LIMIT 100000 STORAGE 100000 MESSAGE 5000 MODSEQ 6)\r\n\
* SEEN %(UNIQUEID sq7qympf562up06rbbdh62ue LASTREAD 1796323656 LASTUID 4 LASTCHANGE 1796323654 SEENUIDS 1:3)\r\n\
* LSUB (user.alice.Projects user.alice)\r\n\
OK success\r\n";

    #[test]
    fn user_state_from_the_trace_shape() {
        let items = parse(USER);
        let user = UserState::from_responses(&items).unwrap();
        assert_eq!(user.mailboxes.len(), 1);
        let m = &user.mailboxes[0];
        assert_eq!(m.uniqueid(), "epf7isfmd3s8jybnj1asxa5o");
        assert_eq!(m.name(), "user.alice");
        assert_eq!((m.last_uid(), m.highestmodseq()), (4, 14));
        assert_eq!(m.sync_crc(), 1701166286);
        assert_eq!(user.quotas[0].0, "user.alice");
        assert_eq!(user.subscriptions, ["user.alice.Projects", "user.alice"]);
        assert_eq!(user.seen[0].0, "sq7qympf562up06rbbdh62ue");
        assert!(user.exists());
    }

    #[test]
    fn agreement_is_field_by_field() {
        let items = parse(USER);
        let a = UserState::from_responses(&items)
            .unwrap()
            .mailboxes
            .remove(0);
        let b = a.clone();
        assert!(a.agrees_with(&b));
        let changed = USER.replace("HIGHESTMODSEQ 14", "HIGHESTMODSEQ 15");
        let c = UserState::from_responses(&parse(&changed))
            .unwrap()
            .mailboxes
            .remove(0);
        assert!(!a.agrees_with(&c));
        let d = a.differences(&c);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key, "HIGHESTMODSEQ");
        assert_eq!(d[0].master.as_deref(), Some("14"));
    }

    #[test]
    fn records_and_expunged_flag() {
        let wire = "* MAILBOX %(UNIQUEID u1 MBOXNAME user.a LAST_UID 2 HIGHESTMODSEQ 9 RECORD (%(UID 1 MODSEQ 4 LAST_UPDATED 1 FLAGS (\\Seen) INTERNALDATE 1 SIZE 10 GUID 483A26A489B4C95CC4F26EE12B0982A9283DF26D) %(UID 2 MODSEQ 9 LAST_UPDATED 1 FLAGS (\\Deleted \\Expunged) INTERNALDATE 1 SIZE 20 GUID 1f6c9d6251cd60a6ca462387e5304c9a2d29d5a3)))\r\nOK success\r\n";
        let m = mailboxes_from_responses(&parse(wire)).unwrap().remove(0);
        let r = m.records().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].guid, "483a26a489b4c95cc4f26ee12b0982a9283df26d");
        assert!(!r[0].expunged && r[1].expunged);
        assert_eq!(r[1].size, 20);
        assert!(m.header().get("RECORD").is_none());
        let (head, split) = m.clone().split_records().unwrap();
        assert_eq!(split, r);
        assert_eq!(head.kvlist(), &m.header());
        assert!(head.records().unwrap().is_empty());
        let bumped = r[0].with_modseq(99);
        assert_eq!(bumped.get("MODSEQ").and_then(Value::as_u64), Some(99));
    }

    #[test]
    fn malformed_mailbox_is_an_error() {
        let wire = "* MAILBOX %(MBOXNAME user.a)\r\nOK success\r\n";
        let err = mailboxes_from_responses(&parse(wire)).unwrap_err();
        assert!(err.to_string().contains("UNIQUEID"));
    }
}
