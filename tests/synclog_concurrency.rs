//! Several writer *processes* append to one sync log with Cyrus's protocol
//! (open, fcntl lock, inode check, write, fsync, unlock) while the reader keeps
//! doing the rename hand-off: every line arrives exactly once, in each
//! writer's order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cyrsync::synclog::{LogEntry, Reader, Writer};

const WRITERS: usize = 4;
const LINES_PER_WRITER: usize = 25_000;
const CHILD_ENV: &str = "CYRSYNC_TEST_SYNCLOG_WRITER";

/// Entry number `i` of writer `id`: mixes kinds and names that need quoting.
fn entry(id: usize, i: usize) -> LogEntry {
    match i % 4 {
        0 => LogEntry::Mailbox {
            mboxname: format!("user.w{id}.n{i}"),
        },
        1 => LogEntry::Mailbox {
            mboxname: format!("user.w{id}.My \"Folder\" {{{i}}}"),
        },
        2 => LogEntry::Seen {
            userid: format!("w{id}"),
            mboxname: format!("n{i}"),
        },
        _ => LogEntry::Rename {
            from: format!("user.w{id}.a b"),
            to: format!("user.w{id}.n{i}"),
        },
    }
}

/// Which (writer, number) an entry stands for.
fn decode(e: &LogEntry) -> (usize, usize) {
    let num = |s: &str| -> usize {
        let digits: String = s
            .chars()
            .rev()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.chars().rev().collect::<String>().parse().unwrap()
    };
    let writer = |s: &str| -> usize {
        let rest = s.split('w').nth(1).unwrap();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    match e {
        LogEntry::Mailbox { mboxname } => (writer(mboxname), num(mboxname)),
        LogEntry::Seen { userid, mboxname } => (writer(userid), num(mboxname)),
        LogEntry::Rename { to, .. } => (writer(to), num(to)),
        other => panic!("unexpected entry {other:?}"),
    }
}

/// Not a test: the body of one writer process, started by
/// `concurrent_writer_processes_and_reader` through this test binary.
#[test]
#[ignore = "helper process for concurrent_writer_processes_and_reader"]
fn writer_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let id: usize = parts.next().unwrap().parse().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let path = PathBuf::from(parts.next().unwrap());
    let writer = Writer::new(path);
    for i in 0..count {
        writer.append(&[entry(id, i)]).unwrap();
        // Pace the writers a little so the reader keeps up and hands off
        // thousands of times, each a chance to catch a writer mid-protocol.
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

fn scratch_dir() -> tempfile::TempDir {
    // tmpfs where there is one: 100 000 fsyncs on a disk would take minutes.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[test]
fn concurrent_writer_processes_and_reader() {
    let dir = scratch_dir();
    let reader = Reader::for_channel(dir.path(), None);
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let mut children: Vec<Child> = (0..WRITERS)
        .map(|id| {
            Command::new(&exe)
                .args(["writer_process", "--exact", "--ignored", "--test-threads=1"])
                .env(
                    CHILD_ENV,
                    format!("{id}|{LINES_PER_WRITER}|{}", reader.log_path().display()),
                )
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();

    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut total = 0usize;
    let mut runs = 0usize;
    loop {
        // Decide "writers finished" before looking for work, so a last write
        // cannot slip between an empty begin() and the exit check.
        let finished = children.iter_mut().all(|c| c.try_wait().unwrap().is_some());
        match reader.begin().unwrap() {
            Some(mut run) => {
                runs += 1;
                while let Some(e) = run.next_entry().unwrap() {
                    let (writer, i) = decode(&e);
                    assert_eq!(e, entry(writer, i), "content changed in transit");
                    let expected = next.entry(writer).or_default();
                    assert_eq!(
                        i, *expected,
                        "writer {writer}: got #{i}, expected #{expected} (lost or duplicated)"
                    );
                    *expected += 1;
                    total += 1;
                }
                assert!(run.take_malformed().is_empty(), "torn or interleaved line");
                run.finish().unwrap();
            }
            None if finished => break,
            None => std::thread::yield_now(),
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "stuck after {total} lines"
        );
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer process failed");
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{total} lines from {WRITERS} writer processes in {runs} hand-offs, {:.2} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(total, WRITERS * LINES_PER_WRITER);
    for id in 0..WRITERS {
        assert_eq!(next.get(&id), Some(&LINES_PER_WRITER), "writer {id}");
    }
    assert!(
        runs > 100,
        "only {runs} hand-offs: the reader did not race the writers"
    );
    assert!(!reader.log_path().exists() && !reader.log_run_path().exists());
}
