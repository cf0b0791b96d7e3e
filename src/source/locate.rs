//! Where a master mailbox's files are. Cyrus's own `mbpath` is the authority
//! (uuid or name-based storage, metapartitions, archive partitions); it is
//! asked by uniqueid (`-p /UNIQUEID`), so the administrator's namespace
//! (`unixhierarchysep`, `altnamespace`, 8-bit names) plays no part, and for
//! many mailboxes per call.
//!
//! Each call costs a process start (about 12 ms, most of it linking
//! libcyrus), so answers are kept for the whole process — every worker,
//! every channel, across reconnects — and, once `mbpath` has shown that a
//! partition stores mailboxes by uniqueid (`<root>/uuid/<c0>/<c1>/<id>`, as
//! Cyrus's `mboxname_id_hash` builds it), the directories of the other
//! mailboxes of that partition are derived the same way. Where imapd.conf
//! itself says that new mailboxes go by uniqueid (Cyrus 3.6's default,
//! `mailbox_legacy_dirs: no`) and names the partition's roots, the layout is
//! taken from it before any `mbpath` run: the first changed mailbox of a
//! run then costs no process start either. A derived location is only a
//! guess: the reader checks the uniqueid in `cyrus.header` and each body's
//! SHA-1, and a wrong guess (a mailbox created before an upgrade, with a
//! name-based directory) sends that mailbox back to `mbpath`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// A mailbox's directories, as `mbpath -j` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// `cyrus.header`, `cyrus.index`.
    pub meta: PathBuf,
    /// Message files.
    pub data: PathBuf,
    /// Archived message files, if the partition has an archive.
    pub archive: Option<PathBuf>,
    /// Derived from the partition's uuid layout, not said by `mbpath`.
    pub derived: bool,
}

/// The roots of a partition that stores mailboxes by uniqueid.
#[derive(Debug, Clone)]
struct UuidRoots {
    meta: PathBuf,
    data: PathBuf,
    archive: Option<PathBuf>,
}

/// Everything known, per imapd.conf.
#[derive(Debug, Default)]
struct Known {
    dirs: HashMap<String, Dirs>,
    roots: HashMap<String, UuidRoots>,
    /// Mailboxes whose derived location was wrong (legacy name-based
    /// storage): only `mbpath` places them.
    underivable: HashSet<String>,
    /// Partitions whose roots imapd.conf was asked for.
    configured: HashSet<String>,
}

static LOCATIONS: Mutex<Option<HashMap<PathBuf, Known>>> = Mutex::new(None);

/// Most mailboxes remembered per imapd.conf; past it the cache starts afresh
/// (learned layouts are kept).
const LOCATIONS_MAX: usize = 100_000;

/// Mailboxes per `mbpath` call.
const MBPATH_CHUNK: usize = 256;

/// Why `mbpath` could not answer.
#[derive(Debug, thiserror::Error)]
#[error("mbpath: {0}")]
pub struct LocateError(pub String);

/// Locates mailboxes of the master whose imapd.conf is `config`.
#[derive(Debug, Clone)]
pub struct Locator {
    config: PathBuf,
    mbpath: PathBuf,
}

fn with_known<T>(config: &Path, f: impl FnOnce(&mut Known) -> T) -> T {
    let mut all = LOCATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    f(all
        .get_or_insert_with(HashMap::new)
        .entry(config.to_path_buf())
        .or_default())
}

/// `<root>/uuid/<c0>/<c1>/<uniqueid>`.
fn uuid_path(root: &Path, uniqueid: &str) -> Option<PathBuf> {
    let mut chars = uniqueid.chars();
    let (c0, c1) = (chars.next()?, chars.next()?);
    Some(
        root.join("uuid")
            .join(c0.to_string())
            .join(c1.to_string())
            .join(uniqueid),
    )
}

/// A partition's uuid roots as imapd.conf gives them, when it says that
/// new mailboxes are stored by uniqueid (`mailbox_legacy_dirs` off, Cyrus
/// 3.6's default) and `cyrus.header` and `cyrus.index` lie together: on the
/// spool partition, or both on its metapartition (`metapartition_files`).
fn configured_roots(conf: &crate::config::file::ImapdConf, partition: &str) -> Option<UuidRoots> {
    let value = |key: &str| conf.get(key).map(|e| e.value.as_str());
    let legacy = value("mailbox_legacy_dirs")
        .and_then(crate::config::value::parse_switch)
        .unwrap_or(false);
    if legacy {
        return None;
    }
    let data = PathBuf::from(value(&format!("partition-{partition}"))?);
    let meta_files: Vec<String> = value("metapartition_files")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let on_meta = |f: &str| meta_files.iter().any(|m| m == f);
    let meta = match value(&format!("metapartition-{partition}")) {
        Some(root) if on_meta("header") && on_meta("index") => PathBuf::from(root),
        // One on each side: only mbpath can say.
        Some(_) if on_meta("header") || on_meta("index") => return None,
        _ => data.clone(),
    };
    let archive = value(&format!("archivepartition-{partition}")).map(PathBuf::from);
    Some(UuidRoots {
        meta,
        data,
        archive,
    })
}

/// The root under which `path` is `uuid/<c0>/<c1>/<uniqueid>`, if it is.
fn uuid_root(path: &Path, uniqueid: &str) -> Option<PathBuf> {
    let root = path.ancestors().nth(4)?;
    (uuid_path(root, uniqueid)?.as_path() == path).then(|| root.to_path_buf())
}

impl Locator {
    /// A locator running `mbpath` on `config`.
    pub fn new(config: &Path, mbpath: &Path) -> Locator {
        Locator {
            config: config.to_path_buf(),
            mbpath: mbpath.to_path_buf(),
        }
    }

    /// The directories of mailbox `uniqueid` on `partition`, if known or
    /// derivable without running `mbpath`.
    pub fn known(&self, uniqueid: &str, partition: &str) -> Option<Dirs> {
        with_known(&self.config, |k| {
            if let Some(d) = k.dirs.get(uniqueid) {
                return Some(d.clone());
            }
            if k.underivable.contains(uniqueid) {
                return None;
            }
            if !k.roots.contains_key(partition) && k.configured.insert(partition.to_string()) {
                let conf = crate::config::file::ImapdConf::load(&self.config);
                if let Some(roots) = conf.ok().and_then(|c| configured_roots(&c, partition)) {
                    k.roots.insert(partition.to_string(), roots);
                }
            }
            let roots = k.roots.get(partition)?;
            Some(Dirs {
                meta: uuid_path(&roots.meta, uniqueid)?,
                data: uuid_path(&roots.data, uniqueid)?,
                archive: roots.archive.as_ref().and_then(|a| uuid_path(a, uniqueid)),
                derived: true,
            })
        })
    }

    /// Runs `mbpath` once for every mailbox of `mailboxes` (uniqueid,
    /// partition) that is neither known nor derivable. Mailboxes it cannot
    /// place are left out.
    pub fn locate(&self, mailboxes: &[(&str, &str)]) -> Result<(), LocateError> {
        let mut unknown: Vec<(&str, &str)> = mailboxes
            .iter()
            .copied()
            .filter(|(u, p)| u.len() >= 2 && self.known(u, p).is_none())
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for chunk in unknown.chunks(MBPATH_CHUNK) {
            self.run_mbpath(chunk)?;
        }
        Ok(())
    }

    /// The directories of `uniqueid`, running `mbpath` if needed.
    pub fn dirs(&self, uniqueid: &str, partition: &str) -> Result<Dirs, LocateError> {
        if let Some(d) = self.known(uniqueid, partition) {
            return Ok(d);
        }
        self.run_mbpath(&[(uniqueid, partition)])?;
        self.known(uniqueid, partition)
            .ok_or_else(|| LocateError(format!("no mailbox has uniqueid {uniqueid}")))
    }

    /// Forgets where `uniqueid` lives; a derived location that turned out
    /// wrong is not derived again.
    pub fn forget(&self, uniqueid: &str, derived: bool) {
        with_known(&self.config, |k| {
            k.dirs.remove(uniqueid);
            if derived {
                k.underivable.insert(uniqueid.to_string());
            }
        });
    }

    fn run_mbpath(&self, mailboxes: &[(&str, &str)]) -> Result<(), LocateError> {
        let out = std::process::Command::new(&self.mbpath)
            .arg("-C")
            .arg(&self.config)
            // -7: the argument as it is; -j: JSON; -p /ID: by uniqueid.
            .args(["-7", "-j", "-p"])
            .args(mailboxes.iter().map(|(u, _)| format!("/{u}")))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| LocateError(e.to_string()))?;
        // One JSON object per mailbox found, in argument order; those it
        // cannot find are named on stderr (and the exit status is not 0).
        let mut found = Vec::new();
        for json in
            serde_json::Deserializer::from_slice(&out.stdout).into_iter::<serde_json::Value>()
        {
            let json = json.map_err(|e| LocateError(format!("unreadable answer: {e}")))?;
            let path = |key: &str| {
                json.get(key)
                    .and_then(serde_json::Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(PathBuf::from)
            };
            let (Some(meta), Some(data)) = (path("meta"), path("data")) else {
                return Err(LocateError("no meta or data path in its answer".into()));
            };
            found.push(Dirs {
                meta,
                data,
                archive: path("archive"),
                derived: false,
            });
        }
        if found.is_empty() && !out.status.success() {
            return Err(LocateError(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        // Every mailbox answered: the answers pair with the arguments in
        // order. Otherwise only answers whose directory is named after the
        // uniqueid can be paired; the rest are asked for one by one later.
        let all = found.len() == mailboxes.len() && out.status.success();
        let paired: Vec<((&str, &str), Dirs)> = if all {
            mailboxes.iter().copied().zip(found).collect()
        } else {
            found
                .into_iter()
                .filter_map(|d| {
                    let m = mailboxes.iter().find(|(u, _)| d.meta.ends_with(u))?;
                    Some((*m, d))
                })
                .collect()
        };
        with_known(&self.config, |k| {
            if k.dirs.len() + paired.len() > LOCATIONS_MAX {
                k.dirs.clear();
            }
            for ((uniqueid, partition), d) in paired {
                if !k.roots.contains_key(partition)
                    && let (Some(meta), Some(data)) =
                        (uuid_root(&d.meta, uniqueid), uuid_root(&d.data, uniqueid))
                {
                    let archive = d.archive.as_ref().and_then(|a| uuid_root(a, uniqueid));
                    k.roots.insert(
                        partition.to_string(),
                        UuidRoots {
                            meta,
                            data,
                            archive,
                        },
                    );
                }
                k.dirs.insert(uniqueid.to_string(), d);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_paths_as_cyrus_builds_them() {
        let root = Path::new("/var/spool/cyrus");
        let p = uuid_path(root, "jdke9uh2jufj1zxopvhzx6tc").unwrap();
        assert_eq!(
            p,
            Path::new("/var/spool/cyrus/uuid/j/d/jdke9uh2jufj1zxopvhzx6tc")
        );
        assert_eq!(
            uuid_root(&p, "jdke9uh2jufj1zxopvhzx6tc").as_deref(),
            Some(root)
        );
        // Name-based (legacy) storage has no uuid root.
        assert_eq!(
            uuid_root(Path::new("/var/spool/cyrus/a/user/alice"), "jdke9uh2"),
            None
        );
        assert_eq!(uuid_path(root, "j"), None);
    }

    #[test]
    fn layouts_are_learned_per_partition_and_wrong_guesses_not_repeated() {
        let config = PathBuf::from("/nonexistent/test-layouts/imapd.conf");
        let loc = Locator::new(&config, Path::new("/nonexistent/mbpath"));
        with_known(&config, |k| {
            k.roots.insert(
                "default".into(),
                UuidRoots {
                    meta: "/m".into(),
                    data: "/d".into(),
                    archive: None,
                },
            );
        });
        let d = loc.known("abcdef", "default").unwrap();
        assert!(d.derived);
        assert_eq!(d.meta, Path::new("/m/uuid/a/b/abcdef"));
        assert_eq!(d.data, Path::new("/d/uuid/a/b/abcdef"));
        assert!(loc.known("abcdef", "other").is_none());
        loc.forget("abcdef", true);
        assert!(loc.known("abcdef", "default").is_none());
        // Not derivable any more, and mbpath (absent here) cannot say: an
        // error, which makes the reader use the protocol.
        assert!(loc.dirs("abcdef", "default").is_err());
    }

    fn roots(text: &str, partition: &str) -> Option<UuidRoots> {
        let conf =
            crate::config::file::ImapdConf::parse_str(Path::new("imapd.conf"), text).unwrap();
        configured_roots(&conf, partition)
    }

    #[test]
    fn roots_come_from_imapd_conf_where_it_says_enough() {
        let r = roots("partition-default: /var/spool/cyrus/mail\n", "default").unwrap();
        assert_eq!(r.meta, Path::new("/var/spool/cyrus/mail"));
        assert_eq!(r.data, Path::new("/var/spool/cyrus/mail"));
        assert!(r.archive.is_none());
        // Another partition, or none named: nothing to derive from.
        assert!(roots("partition-default: /a\n", "other").is_none());
        // Legacy directories for new mailboxes: mbpath decides.
        assert!(
            roots(
                "partition-default: /a\nmailbox_legacy_dirs: yes\n",
                "default"
            )
            .is_none()
        );
        // Header and index on the metapartition, archive beside.
        let r = roots(
            "partition-p2: /d\nmetapartition-p2: /m\nmetapartition_files: header index cache\narchivepartition-p2: /arch\n",
            "p2",
        )
        .unwrap();
        assert_eq!(
            (r.meta.as_path(), r.data.as_path()),
            (Path::new("/m"), Path::new("/d"))
        );
        assert_eq!(r.archive.as_deref(), Some(Path::new("/arch")));
        // A metapartition that holds no header or index changes nothing.
        let r = roots("partition-p2: /d\nmetapartition-p2: /m\n", "p2").unwrap();
        assert_eq!(r.meta, Path::new("/d"));
        // Header and index apart: only mbpath can say.
        assert!(
            roots(
                "partition-p2: /d\nmetapartition-p2: /m\nmetapartition_files: index\n",
                "p2"
            )
            .is_none()
        );
    }
}
