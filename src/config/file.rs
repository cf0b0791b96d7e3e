//! The imapd.conf reader: lines, comments, continuations and `@include`, with the
//! same acceptance rules as Cyrus's `config_read_file` (lib/libconfig.c).
//!
//! This layer knows nothing about what keys mean; it yields every `key: value` pair
//! with the file and line it came from, in file order.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigErrorKind, Location};

/// One `key: value` line of imapd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, lower-cased as Cyrus does.
    pub key: String,
    /// The value with leading and trailing white space removed; never empty.
    pub value: String,
    /// Where the line is (for a continued line: its first physical line).
    pub location: Location,
    /// True when the raw bytes were not valid UTF-8 and were converted lossily.
    pub lossy: bool,
}

/// A parsed imapd.conf, includes resolved, every key present at most once.
#[derive(Debug, Clone, Default)]
pub struct ImapdConf {
    /// The file that was read first (the `-C` argument).
    pub path: PathBuf,
    entries: Vec<Entry>,
    by_key: HashMap<String, usize>,
    files: Vec<PathBuf>,
}

impl ImapdConf {
    /// Reads `path` and everything it `@include`s.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut conf = ImapdConf {
            path: path.to_path_buf(),
            ..ImapdConf::default()
        };
        let mut seen_files = HashSet::new();
        conf.read_file(path, None, &mut seen_files)?;
        Ok(conf)
    }

    /// Parses imapd.conf text that is not on disk; `@include` is still resolved
    /// against the file system. `name` is used in locations.
    pub fn parse_str(name: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut conf = ImapdConf {
            path: name.to_path_buf(),
            ..ImapdConf::default()
        };
        let mut seen_files = HashSet::new();
        seen_files.insert(name.to_path_buf());
        conf.files.push(name.to_path_buf());
        conf.parse_bytes(name, text.as_bytes(), &mut seen_files)?;
        Ok(conf)
    }

    /// The entry for `key` (lower case), if the file has it.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.by_key.get(key).map(|&i| &self.entries[i])
    }

    /// Every entry in file order (includes expanded in place).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every file that was read: the main file first, then includes in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn read_file(
        &mut self,
        path: &Path,
        included_from: Option<&Location>,
        seen_files: &mut HashSet<PathBuf>,
    ) -> Result<(), ConfigError> {
        let at = |kind| ConfigError::new(included_from.cloned(), kind);
        // Cyrus refuses to read one file twice (an include loop would never end).
        if !seen_files.insert(path.to_path_buf()) {
            return Err(at(ConfigErrorKind::IncludedTwice {
                path: path.to_path_buf(),
            }));
        }
        let bytes = fs::read(path).map_err(|source| {
            at(ConfigErrorKind::Open {
                path: path.to_path_buf(),
                source,
            })
        })?;
        self.files.push(path.to_path_buf());
        self.parse_bytes(path, &bytes, seen_files)
    }

    fn parse_bytes(
        &mut self,
        file: &Path,
        bytes: &[u8],
        seen_files: &mut HashSet<PathBuf>,
    ) -> Result<(), ConfigError> {
        for logical in logical_lines(bytes) {
            let location = Location {
                file: file.to_path_buf(),
                line: logical.first_line,
            };
            let Some(parsed) = parse_line(&logical.text)
                .map_err(|kind| ConfigError::new(Some(location.clone()), kind))?
            else {
                continue;
            };
            let (value, lossy) = match String::from_utf8(parsed.value.to_vec()) {
                Ok(v) => (v, false),
                Err(_) => (String::from_utf8_lossy(parsed.value).into_owned(), true),
            };
            if parsed.key == "@include" {
                let target = PathBuf::from(&value);
                self.read_file(&target, Some(&location), seen_files)?;
                continue;
            }
            if parsed.key.starts_with('@') {
                return Err(ConfigError::new(
                    Some(location),
                    ConfigErrorKind::InvalidDirective {
                        directive: parsed.key,
                    },
                ));
            }
            if let Some(&first) = self.by_key.get(&parsed.key) {
                return Err(ConfigError::new(
                    Some(location),
                    ConfigErrorKind::Duplicate {
                        key: parsed.key,
                        first: self.entries[first].location.clone(),
                    },
                ));
            }
            self.by_key.insert(parsed.key.clone(), self.entries.len());
            self.entries.push(Entry {
                key: parsed.key,
                value,
                location,
                lossy,
            });
        }
        Ok(())
    }
}

/// A line after joining `\`-continuations.
struct LogicalLine {
    first_line: usize,
    text: Vec<u8>,
}

/// Splits the file into lines, joining a line that ends in `\` with the next one
/// (the backslash and the line break are dropped, as Cyrus does).
fn logical_lines(bytes: &[u8]) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut physical = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, raw)) = physical.next() {
        // The piece after a final newline is not a line.
        if physical.peek().is_none() && raw.is_empty() {
            break;
        }
        let line = current.get_or_insert_with(|| LogicalLine {
            first_line: index + 1,
            text: Vec::new(),
        });
        let has_newline = physical.peek().is_some();
        if has_newline && raw.last() == Some(&b'\\') {
            line.text.extend_from_slice(&raw[..raw.len() - 1]);
            continue;
        }
        line.text.extend_from_slice(raw);
        if let Some(done) = current.take() {
            out.push(done);
        }
    }
    if let Some(rest) = current {
        out.push(rest);
    }
    out
}

struct ParsedLine<'a> {
    key: String,
    value: &'a [u8],
}

/// Parses one logical line. `Ok(None)` for blank lines and comments.
fn parse_line(text: &[u8]) -> Result<Option<ParsedLine<'_>>, ConfigErrorKind> {
    let text = text.trim_ascii_start();
    // A comment is a line whose first non-blank character is `#`; a `#` later in
    // the line is part of the value (libconfig.c reads no trailing comments).
    if text.is_empty() || text[0] == b'#' {
        return Ok(None);
    }
    let directive = text[0] == b'@';
    let start = usize::from(directive);
    let key_len = text[start..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .count();
    let key_end = start + key_len;
    if key_len == 0 || text.get(key_end) != Some(&b':') {
        let shown = String::from_utf8_lossy(&text[..text.len().min(60)]).into_owned();
        return Err(ConfigErrorKind::InvalidKey { line: shown });
    }
    let key = String::from_utf8_lossy(&text[..key_end]).to_ascii_lowercase();
    let value = text[key_end + 1..].trim_ascii();
    if value.is_empty() {
        return Err(ConfigErrorKind::EmptyValue { key });
    }
    Ok(Some(ParsedLine { key, value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ImapdConf, ConfigError> {
        ImapdConf::parse_str(Path::new("imapd.conf"), text)
    }

    fn value(conf: &ImapdConf, key: &str) -> String {
        conf.get(key).map(|e| e.value.clone()).unwrap_or_default()
    }

    #[test]
    fn key_value_comments_and_blanks() {
        let conf = parse("# comment\n\n  configdirectory:   /var/imap  \n\tSync_Host: r.example\n")
            .unwrap();
        assert_eq!(value(&conf, "configdirectory"), "/var/imap");
        assert_eq!(value(&conf, "sync_host"), "r.example");
        assert_eq!(conf.get("sync_host").unwrap().location.line, 4);
        assert_eq!(conf.entries().len(), 2);
    }

    #[test]
    fn hash_inside_a_value_is_kept() {
        let conf = parse("sync_authname: cyrus # admin account\n").unwrap();
        assert_eq!(value(&conf, "sync_authname"), "cyrus # admin account");
    }

    #[test]
    fn empty_value_is_an_error_with_line() {
        let err = parse("a: 1\nsync_host:   \n").unwrap_err();
        assert_eq!(err.location.as_ref().unwrap().line, 2);
        assert!(matches!(err.kind, ConfigErrorKind::EmptyValue { ref key } if key == "sync_host"));
    }

    #[test]
    fn duplicate_is_an_error_even_with_other_case() {
        let err = parse("sync_host: a\nSYNC_HOST: b\n").unwrap_err();
        assert_eq!(err.location.as_ref().unwrap().line, 2);
        match err.kind {
            ConfigErrorKind::Duplicate { key, first } => {
                assert_eq!(key, "sync_host");
                assert_eq!(first.line, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_kept() {
        let conf = parse("chan2_sync_host: x\nsome-vendor_key: y\n").unwrap();
        assert_eq!(value(&conf, "chan2_sync_host"), "x");
        assert_eq!(value(&conf, "some-vendor_key"), "y");
    }

    #[test]
    fn bad_key_characters_and_space_before_colon() {
        for text in [
            "sync.host: x\n",
            "sync_host : x\n",
            ": x\n",
            "sync_host x\n",
            "ä: 1\n",
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err.kind, ConfigErrorKind::InvalidKey { .. }),
                "{text:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn continuation_joins_lines() {
        let conf = parse("sasl_mech_list: PLAIN \\\n SCRAM-SHA-256\nnext: 1\n").unwrap();
        assert_eq!(value(&conf, "sasl_mech_list"), "PLAIN  SCRAM-SHA-256");
        assert_eq!(conf.get("next").unwrap().location.line, 3);
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let conf = parse("a: 1\r\nb: 2").unwrap();
        assert_eq!(value(&conf, "a"), "1");
        assert_eq!(value(&conf, "b"), "2");
    }

    #[test]
    fn unknown_directive_is_an_error() {
        let err = parse("@import: x\n").unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::InvalidDirective { .. }));
    }

    #[test]
    fn include_reads_other_file_and_detects_loops() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("imapd.conf");
        let inc = dir.path().join("sync.conf");
        fs::write(&main, format!("a: 1\n@include: {}\nb: 2\n", inc.display())).unwrap();
        fs::write(&inc, "sync_host: r\n").unwrap();
        let conf = ImapdConf::load(&main).unwrap();
        assert_eq!(value(&conf, "sync_host"), "r");
        assert_eq!(conf.get("sync_host").unwrap().location.file, inc);
        assert_eq!(conf.files().len(), 2);

        fs::write(&inc, format!("@include: {}\n", main.display())).unwrap();
        let err = ImapdConf::load(&main).unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::IncludedTwice { .. }));
        assert_eq!(err.location.unwrap().file, inc);
    }

    #[test]
    fn missing_include_names_the_including_line() {
        let err = parse("a: 1\n@include: /nonexistent/cyrsync.conf\n").unwrap_err();
        assert_eq!(err.location.as_ref().unwrap().line, 2);
        assert!(matches!(err.kind, ConfigErrorKind::Open { .. }));
    }

    #[test]
    fn eight_bit_values_are_kept_lossily() {
        let mut conf = ImapdConf::default();
        let mut seen = HashSet::new();
        conf.parse_bytes(Path::new("x"), b"motd: caf\xe9\n", &mut seen)
            .unwrap();
        assert!(conf.get("motd").unwrap().lossy);
    }
}
