//! Coalescing the entries of one `log-run` into a [`Batch`], exactly as Cyrus
//! 3.6.1's `sync_do_reader` (`imap/sync_support.c`) does, and grouping the
//! result by user so that per-user order survives sharding to workers.
//!
//! What `sync_do_reader` does, and so do we:
//!
//! * Every list keeps each action once, at its first position
//!   (`sync_action_list_add`).
//! * MAILBOX, APPEND and DOUBLEMAILBOX go to one mailbox list per owning user
//!   (non-user mailboxes form one cohort). DOUBLEMAILBOX puts both names in the
//!   *first* name's list. RENAME puts both names in the old name's user list
//!   and, when the new name belongs to another user, in that list too.
//! * SIEVE is read as META; UNSUB goes to the SUB list (the engine asks the
//!   master whether the subscription exists, as `user_sub` does).
//! * USER drops META, SEEN and SUB of that user; UNUSER drops META, SEEN, SUB
//!   *and* USER of that user; META drops SEEN and SUB of that user.
//! * Processing order: mailboxes, quota, annotations, seen, subscriptions,
//!   unmailbox, meta, user, unuser.
//!
//! Deliberately *not* done, because 3.6.1 does not do it either: USER does not
//! drop the user's mailbox actions, and UNUSER does not drop mailbox, quota,
//! annotation or unmailbox actions (the replication-protocol document's "UNUSER
//! supersedes everything" describes only the per-user lists).
//!
//! Cyrus walks its per-user mailbox lists in hash order; here they come in the
//! order their user first appeared, so a batch is deterministic.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::line::LogEntry;

/// What Cyrus needs to derive a mailbox's owner from its internal name
/// (`mbname_from_intname` in `imap/mboxname.c`).
///
/// The sync log always carries *internal* names: the hierarchy separator is
/// `.` whatever `unixhierarchysep` says, and with `unixhierarchysep: yes` a `.`
/// inside a name part is stored as `^` (so user `alice.smith`'s Sent folder is
/// `user.alice^smith.Sent`). Virtual domains prefix `domain!`. A name never
/// contains `/` as a separator in the log, so no setting is needed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// `deletedprefix` (default `DELETED`).
    pub deletedprefix: String,
    /// `defaultdomain` (default `internal`): a `domain!` prefix equal to it
    /// yields a userid without `@domain`.
    pub defaultdomain: Option<String>,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            deletedprefix: "DELETED".to_owned(),
            defaultdomain: Some("internal".to_owned()),
        }
    }
}

impl Namespace {
    /// The userid owning internal mailbox name `intname`, or `None` for a
    /// shared (non-user) mailbox — Cyrus's `mboxname_to_userid`.
    ///
    /// `user.alice.Sent` → `alice`; `example.com!user.alice` → `alice@example.com`;
    /// `DELETED.user.alice.Old.6B11BB45` → `alice`; `user.alice^smith` →
    /// `alice.smith`; `shared.folder` → `None`.
    pub fn mboxname_to_userid(&self, intname: &str) -> Option<String> {
        if intname.is_empty() {
            return None;
        }
        let (domain, rest) = match intname.split_once('!') {
            Some((d, rest)) if self.defaultdomain.as_deref() != Some(d) => (Some(d), rest),
            Some((_, rest)) => (None, rest),
            None => (None, intname),
        };
        // strarray_split uses strtok: empty parts vanish.
        let mut boxes: Vec<String> = rest
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.replace('^', "."))
            .collect();
        if boxes.len() > 2 && boxes[0] == self.deletedprefix {
            boxes.remove(0);
            boxes.pop(); // the hex timestamp
        }
        if boxes.len() > 1 && boxes[0] == "user" {
            let localpart = boxes.swap_remove(1);
            return Some(match domain {
                Some(d) => format!("{localpart}@{d}"),
                None => localpart,
            });
        }
        None
    }
}

/// A (user, mailbox) pair of the SEEN and SUB lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserMailbox {
    /// The userid.
    pub userid: String,
    /// The mailbox name (for SEEN on another user's mailbox: its uniqueid).
    pub mboxname: String,
}

/// The mailboxes to sync for one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxCohort {
    /// The owning userid; `None` for the cohort of non-user mailboxes.
    pub userid: Option<String>,
    /// Internal mailbox names, each once, in first-seen order.
    pub mboxnames: Vec<String>,
}

/// One coalesced run, in Cyrus's processing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// 1. Mailboxes, per owner.
    pub mailboxes: Vec<MailboxCohort>,
    /// 2. Quota roots.
    pub quota: Vec<String>,
    /// 3. Annotations (mailbox names; `""` is the server).
    pub annotation: Vec<String>,
    /// 4. Seen states.
    pub seen: Vec<UserMailbox>,
    /// 5. Subscriptions (SUB and UNSUB alike).
    pub sub: Vec<UserMailbox>,
    /// 6. Deleted mailboxes.
    pub unmailbox: Vec<String>,
    /// 7. User metadata syncs (META and SIEVE).
    pub meta: Vec<String>,
    /// 8. Full user syncs.
    pub user: Vec<String>,
    /// 9. User deletions.
    pub unuser: Vec<String>,
}

/// One action of a [`Batch`], owned by one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncAction {
    /// Sync these mailboxes together (`sync_do_mailboxes`).
    Mailboxes(Vec<String>),
    /// Sync a quota root.
    Quota(String),
    /// Sync a mailbox's annotations.
    Annotation(String),
    /// Sync a seen state.
    Seen(UserMailbox),
    /// Sync a subscription.
    Sub(UserMailbox),
    /// Delete a mailbox on the replica (if the master has a tombstone).
    Unmailbox(String),
    /// Sync a user's metadata.
    Meta(String),
    /// Sync a whole user.
    User(String),
    /// Delete a user on the replica (if gone on the master).
    Unuser(String),
}

/// The actions of one owner, in processing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBatch {
    /// The owner; `None` for non-user mailboxes and the server annotation.
    pub userid: Option<String>,
    /// Its actions.
    pub actions: Vec<SyncAction>,
}

impl Batch {
    /// Coalesces `entries` (in log order).
    pub fn from_entries<'a>(
        namespace: &Namespace,
        entries: impl IntoIterator<Item = &'a LogEntry>,
    ) -> Batch {
        let mut builder = BatchBuilder::new(namespace.clone());
        for entry in entries {
            builder.push(entry);
        }
        builder.build()
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of actions (each mailbox name counts once per cohort).
    pub fn len(&self) -> usize {
        self.mailboxes
            .iter()
            .map(|c| c.mboxnames.len())
            .sum::<usize>()
            + self.quota.len()
            + self.annotation.len()
            + self.seen.len()
            + self.sub.len()
            + self.unmailbox.len()
            + self.meta.len()
            + self.user.len()
            + self.unuser.len()
    }

    /// The batch split by owning user, each user's actions in processing
    /// order. Users come in the order they first appear in the batch. Hand each
    /// [`UserBatch`] to one worker (see [`shard_for`]) to keep per-user order.
    pub fn by_user(&self, namespace: &Namespace) -> Vec<UserBatch> {
        let mut groups: Groups<Option<String>, SyncAction> = Groups::default();
        for cohort in &self.mailboxes {
            groups.push(
                cohort.userid.clone(),
                SyncAction::Mailboxes(cohort.mboxnames.clone()),
            );
        }
        let owner = |name: &str| namespace.mboxname_to_userid(name);
        for root in &self.quota {
            groups.push(owner(root), SyncAction::Quota(root.clone()));
        }
        for name in &self.annotation {
            groups.push(owner(name), SyncAction::Annotation(name.clone()));
        }
        for um in &self.seen {
            groups.push(Some(um.userid.clone()), SyncAction::Seen(um.clone()));
        }
        for um in &self.sub {
            groups.push(Some(um.userid.clone()), SyncAction::Sub(um.clone()));
        }
        for name in &self.unmailbox {
            groups.push(owner(name), SyncAction::Unmailbox(name.clone()));
        }
        for u in &self.meta {
            groups.push(Some(u.clone()), SyncAction::Meta(u.clone()));
        }
        for u in &self.user {
            groups.push(Some(u.clone()), SyncAction::User(u.clone()));
        }
        for u in &self.unuser {
            groups.push(Some(u.clone()), SyncAction::Unuser(u.clone()));
        }
        groups
            .into_iter()
            .map(|(userid, actions)| UserBatch { userid, actions })
            .collect()
    }
}

/// Which of `workers` workers handles `userid` (stable across runs and
/// platforms: FNV-1a of the userid; `None` hashes like the empty string).
pub fn shard_for(userid: Option<&str>, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in userid.unwrap_or("").bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `workers`, so it fits in usize.
    usize::try_from(hash % workers as u64).unwrap_or(0)
}

/// Collects entries one by one (so a long `log-run` need not be held in
/// memory as lines) and coalesces them on [`build`](Self::build).
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    namespace: Namespace,
    mailboxes: Groups<Option<String>, String>,
    user: OrderedSet<String>,
    unuser: OrderedSet<String>,
    meta: OrderedSet<String>,
    unmailbox: OrderedSet<String>,
    quota: OrderedSet<String>,
    annotation: OrderedSet<String>,
    seen: OrderedSet<UserMailbox>,
    sub: OrderedSet<UserMailbox>,
    entries: usize,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new(namespace: Namespace) -> Self {
        BatchBuilder {
            namespace,
            ..BatchBuilder::default()
        }
    }

    /// Number of entries pushed so far.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Adds one entry, in log order.
    pub fn push(&mut self, entry: &LogEntry) {
        self.entries += 1;
        let um = |userid: &String, mboxname: &String| UserMailbox {
            userid: userid.clone(),
            mboxname: mboxname.clone(),
        };
        match entry {
            LogEntry::User { userid } => self.user.insert(userid.clone()),
            LogEntry::Unuser { userid } => self.unuser.insert(userid.clone()),
            LogEntry::Meta { userid } | LogEntry::Sieve { userid } => {
                self.meta.insert(userid.clone())
            }
            LogEntry::Append { mboxname } | LogEntry::Mailbox { mboxname } => {
                let owner = self.namespace.mboxname_to_userid(mboxname);
                self.mailboxes.push_unique(owner, mboxname.clone());
            }
            LogEntry::DoubleMailbox { first, second } => {
                // Both into the first name's list "so that the order doesn't
                // get lost" (sync_do_reader).
                let owner = self.namespace.mboxname_to_userid(first);
                self.mailboxes.push_unique(owner.clone(), first.clone());
                self.mailboxes.push_unique(owner, second.clone());
            }
            LogEntry::Rename { from, to } => {
                let owner1 = self.namespace.mboxname_to_userid(from);
                let owner2 = self.namespace.mboxname_to_userid(to);
                self.mailboxes.push_unique(owner1.clone(), from.clone());
                self.mailboxes.push_unique(owner1.clone(), to.clone());
                if owner1 != owner2 {
                    self.mailboxes.push_unique(owner2.clone(), from.clone());
                    self.mailboxes.push_unique(owner2, to.clone());
                }
            }
            LogEntry::Unmailbox { mboxname } => self.unmailbox.insert(mboxname.clone()),
            LogEntry::Quota { root } => self.quota.insert(root.clone()),
            LogEntry::Annotation { mboxname } => self.annotation.insert(mboxname.clone()),
            LogEntry::Seen { userid, mboxname } => self.seen.insert(um(userid, mboxname)),
            LogEntry::Sub { userid, mboxname } | LogEntry::Unsub { userid, mboxname } => {
                self.sub.insert(um(userid, mboxname))
            }
        }
    }

    /// Applies Cyrus's supersession rules and returns the batch.
    pub fn build(self) -> Batch {
        let users: HashSet<&String> = self.user.items.iter().collect();
        let unusers: HashSet<&String> = self.unuser.items.iter().collect();
        // Cyrus's META loop also walks META entries already dropped by USER or
        // UNUSER, so every logged META user drops its SEEN and SUB.
        let metas: HashSet<&String> = self.meta.items.iter().collect();
        let per_user_gone = |u: &String| users.contains(u) || unusers.contains(u);
        let seen_sub_gone = |x: &UserMailbox| per_user_gone(&x.userid) || metas.contains(&x.userid);
        Batch {
            mailboxes: self
                .mailboxes
                .into_iter()
                .map(|(userid, mboxnames)| MailboxCohort { userid, mboxnames })
                .collect(),
            quota: self.quota.items.clone(),
            annotation: self.annotation.items.clone(),
            seen: self
                .seen
                .items
                .iter()
                .filter(|x| !seen_sub_gone(x))
                .cloned()
                .collect(),
            sub: self
                .sub
                .items
                .iter()
                .filter(|x| !seen_sub_gone(x))
                .cloned()
                .collect(),
            unmailbox: self.unmailbox.items.clone(),
            meta: self
                .meta
                .items
                .iter()
                .filter(|u| !per_user_gone(u))
                .cloned()
                .collect(),
            user: self
                .user
                .items
                .iter()
                .filter(|u| !unusers.contains(u))
                .cloned()
                .collect(),
            unuser: self.unuser.items.clone(),
        }
    }
}

/// A list that keeps each item once, at its first position.
#[derive(Debug, Clone)]
struct OrderedSet<T> {
    items: Vec<T>,
    seen: HashSet<T>,
}

impl<T> Default for OrderedSet<T> {
    fn default() -> Self {
        OrderedSet {
            items: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

impl<T: Eq + Hash + Clone> OrderedSet<T> {
    fn insert(&mut self, item: T) {
        if self.seen.insert(item.clone()) {
            self.items.push(item);
        }
    }
}

/// Values grouped by key, keys in first-seen order.
#[derive(Debug, Clone)]
struct Groups<K, V> {
    keys: HashMap<K, usize>,
    groups: Vec<(K, Vec<V>)>,
    unique: HashSet<(usize, V)>,
}

impl<K, V> Default for Groups<K, V> {
    fn default() -> Self {
        Groups {
            keys: HashMap::new(),
            groups: Vec::new(),
            unique: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Eq + Hash + Clone> Groups<K, V> {
    fn index(&mut self, key: K) -> usize {
        if let Some(&i) = self.keys.get(&key) {
            return i;
        }
        self.groups.push((key.clone(), Vec::new()));
        self.keys.insert(key, self.groups.len() - 1);
        self.groups.len() - 1
    }

    fn push(&mut self, key: K, value: V) {
        let i = self.index(key);
        self.groups[i].1.push(value);
    }

    fn push_unique(&mut self, key: K, value: V) {
        let i = self.index(key);
        if self.unique.insert((i, value.clone())) {
            self.groups[i].1.push(value);
        }
    }
}

impl<K, V> IntoIterator for Groups<K, V> {
    type Item = (K, Vec<V>);
    type IntoIter = std::vec::IntoIter<(K, Vec<V>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.groups.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synclog::line::parse_line;

    fn entries(text: &str) -> Vec<LogEntry> {
        text.lines()
            .filter_map(|l| parse_line(l.as_bytes()).unwrap())
            .collect()
    }

    fn batch(text: &str) -> Batch {
        Batch::from_entries(&Namespace::default(), &entries(text))
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn um(u: &str, m: &str) -> UserMailbox {
        UserMailbox {
            userid: u.to_owned(),
            mboxname: m.to_owned(),
        }
    }

    #[test]
    fn userid_from_internal_names() {
        let ns = Namespace::default();
        let cases = [
            ("user.alice", Some("alice")),
            ("user.alice.Sent", Some("alice")),
            ("user.alice.My Folder", Some("alice")),
            ("user.alice^smith.Sent", Some("alice.smith")),
            ("example.com!user.alice", Some("alice@example.com")),
            (
                "example.com!user.alice.Sent.2024",
                Some("alice@example.com"),
            ),
            ("internal!user.alice", Some("alice")),
            ("DELETED.user.alice.Renamed.6B11BB45", Some("alice")),
            ("DELETED.user.alice.6B11BB45", Some("alice")),
            (
                "example.com!DELETED.user.bob.X.6B11BB45",
                Some("bob@example.com"),
            ),
            ("user..alice", Some("alice")),
            ("shared.folder", None),
            ("shared", None),
            ("user", None),
            ("DELETED.shared.6B11BB45", None),
            ("", None),
            ("epf7isfmd3s8jybnj1asxa5o", None),
        ];
        for (name, want) in cases {
            assert_eq!(ns.mboxname_to_userid(name).as_deref(), want, "{name}");
        }
        let custom = Namespace {
            deletedprefix: "Trash".into(),
            defaultdomain: Some("example.com".into()),
        };
        assert_eq!(
            custom
                .mboxname_to_userid("example.com!Trash.user.a.X.1")
                .as_deref(),
            Some("a")
        );
    }

    /// The default-channel log of shared/traces/40_synclog_examples.txt.
    #[test]
    fn trace_40_coalesces() {
        let b = batch(
            "MAILBOX \"user.alice.My Folder\"\n\
             SUB alice \"user.alice.My Folder\"\n\
             MAILBOX user.alice\n\
             RENAME \"user.alice.My Folder\" user.alice.Renamed\n\
             MAILBOX \"user.alice.My Folder\"\n\
             MAILBOX user.alice.Renamed\n\
             RENAME \"user.alice.My Folder\" user.alice.Renamed\n\
             MAILBOX \"user.alice.My Folder\"\n\
             MAILBOX user.alice.Renamed\n\
             MAILBOX \"user.alice.My Folder\"\n\
             RENAME user.alice.Renamed DELETED.user.alice.Renamed.6B11BB45\n\
             MAILBOX user.alice.Renamed\n\
             MAILBOX DELETED.user.alice.Renamed.6B11BB45\n\
             RENAME user.alice.Renamed DELETED.user.alice.Renamed.6B11BB45\n\
             MAILBOX user.alice.Renamed\n\
             MAILBOX DELETED.user.alice.Renamed.6B11BB45\n\
             MAILBOX user.alice.Renamed\n\
             APPEND user.alice\n\
             MAILBOX user.alice\n\
             QUOTA user.alice\n\
             MAILBOX user.bob\n\
             SEEN bob epf7isfmd3s8jybnj1asxa5o\n\
             MAILBOX user.alice\n",
        );
        assert_eq!(
            b.mailboxes,
            vec![
                MailboxCohort {
                    userid: Some("alice".into()),
                    mboxnames: v(&[
                        "user.alice.My Folder",
                        "user.alice",
                        "user.alice.Renamed",
                        "DELETED.user.alice.Renamed.6B11BB45",
                    ]),
                },
                MailboxCohort {
                    userid: Some("bob".into()),
                    mboxnames: v(&["user.bob"]),
                },
            ]
        );
        assert_eq!(b.quota, v(&["user.alice"]));
        assert_eq!(b.sub, vec![um("alice", "user.alice.My Folder")]);
        assert_eq!(b.seen, vec![um("bob", "epf7isfmd3s8jybnj1asxa5o")]);
        assert!(b.user.is_empty() && b.meta.is_empty() && b.unuser.is_empty());
        assert_eq!(b.len(), 8);
    }

    #[test]
    fn supersession_rules() {
        let b = batch(
            "SEEN alice user.alice\n\
             SUB alice user.alice.A\n\
             META alice\n\
             SIEVE bob\n\
             SEEN bob user.bob\n\
             UNSUB carol user.carol.X\n\
             SEEN carol user.carol\n\
             USER carol\n\
             META carol\n\
             USER dave\n\
             META dave\n\
             UNUSER dave\n\
             SEEN erin user.erin\n\
             UNUSER erin\n\
             MAILBOX user.dave.Sent\n\
             USER frank\n\
             USER frank\n",
        );
        // META drops SEEN/SUB; SIEVE is META; USER drops META/SEEN/SUB;
        // UNUSER drops USER too; mailbox actions stay.
        assert_eq!(b.meta, v(&["alice", "bob"]));
        assert!(b.seen.is_empty(), "{:?}", b.seen);
        assert!(b.sub.is_empty(), "{:?}", b.sub);
        assert_eq!(b.user, v(&["carol", "frank"]));
        assert_eq!(b.unuser, v(&["dave", "erin"]));
        assert_eq!(b.mailboxes.len(), 1);
        assert_eq!(b.mailboxes[0].mboxnames, v(&["user.dave.Sent"]));
    }

    #[test]
    fn mailbox_append_merge_and_cross_user_moves() {
        let b = batch(
            "APPEND user.alice\n\
             APPEND user.alice\n\
             MAILBOX user.alice\n\
             DOUBLEMAILBOX user.bob.Src user.alice\n\
             RENAME user.carol.Old user.dave.New\n\
             MAILBOX shared.news\n\
             APPEND example.com!user.alice\n",
        );
        let cohorts: Vec<(Option<&str>, Vec<&str>)> = b
            .mailboxes
            .iter()
            .map(|c| {
                (
                    c.userid.as_deref(),
                    c.mboxnames.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            cohorts,
            vec![
                (Some("alice"), vec!["user.alice"]),
                (Some("bob"), vec!["user.bob.Src", "user.alice"]),
                (Some("carol"), vec!["user.carol.Old", "user.dave.New"]),
                (Some("dave"), vec!["user.carol.Old", "user.dave.New"]),
                (None, vec!["shared.news"]),
                (Some("alice@example.com"), vec!["example.com!user.alice"]),
            ]
        );
    }

    #[test]
    fn by_user_keeps_processing_order() {
        let ns = Namespace::default();
        let b = batch(
            "USER alice\n\
             UNMAILBOX user.alice.Gone\n\
             MAILBOX user.alice.X\n\
             QUOTA user.alice\n\
             ANNOTATION \"\"\n\
             SUB bob user.bob.Y\n\
             MAILBOX user.bob\n",
        );
        let groups = b.by_user(&ns);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].userid.as_deref(), Some("alice"));
        assert_eq!(
            groups[0].actions,
            vec![
                SyncAction::Mailboxes(v(&["user.alice.X"])),
                SyncAction::Quota("user.alice".into()),
                SyncAction::Unmailbox("user.alice.Gone".into()),
                SyncAction::User("alice".into()),
            ]
        );
        assert_eq!(groups[1].userid.as_deref(), Some("bob"));
        assert_eq!(
            groups[1].actions,
            vec![
                SyncAction::Mailboxes(v(&["user.bob"])),
                SyncAction::Sub(um("bob", "user.bob.Y")),
            ]
        );
        assert_eq!(groups[2].userid, None);
        assert_eq!(
            groups[2].actions,
            vec![SyncAction::Annotation(String::new())]
        );
        let total: usize = groups.iter().map(|g| g.actions.len()).sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_for(Some("alice"), 1), 0);
        assert_eq!(shard_for(Some("alice"), 4), shard_for(Some("alice"), 4));
        let used: HashSet<usize> = (0..100)
            .map(|i| shard_for(Some(&format!("user{i}")), 4))
            .collect();
        assert_eq!(used.len(), 4);
        assert!((0..50).all(|i| shard_for(Some(&format!("u{i}")), 3) < 3));
    }
}
