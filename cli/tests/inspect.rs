//! `ringbell inspect --fd`: run as a separate process against regions this test holds, its
//! output compared with the `RegionSnapshot` the test reads itself, and the region's bytes
//! compared before and after.

mod common;

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use common::{Json, Run, fnv1a, ringbell, watchdog};
use ringbell::inspect::{RegionSnapshot, Role};
use ringbell::region::{Region, Spsc};
use ringbell::spsc;
use ringbell::wire;
use rustix::fs::{MemfdFlags, SealFlags};

/// A 4 KiB SPSC region holding three of five 40-byte frames (two received).
fn busy_region() -> (
    Region<Spsc>,
    spsc::Producer<Region<Spsc>>,
    spsc::Consumer<Region<Spsc>>,
) {
    let region = Region::<Spsc>::create(&spsc::Config::new(4096)).unwrap();
    let mut tx = region.producer().unwrap();
    let mut rx = region.consumer().unwrap();
    for i in 0..5u8 {
        tx.try_send(u32::from(i), &[i; 40]).unwrap();
    }
    rx.try_recv().unwrap();
    rx.try_recv().unwrap();
    (region, tx, rx)
}

/// `PID:FD` naming `fd` in this process.
fn pid_fd(fd: BorrowedFd<'_>) -> String {
    format!("{}:{}", std::process::id(), fd.as_raw_fd())
}

/// Every byte of the file behind `fd`, read with `pread` through `/proc/self/fd`.
fn file_bytes(fd: BorrowedFd<'_>) -> Vec<u8> {
    let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, 0).unwrap();
    bytes
}

/// The value in the text table's row `name`.
#[track_caller]
fn row<'a>(run: &'a Run, name: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|line| {
            let (head, value) = line.split_at_checked(12)?;
            (head.trim_end() == name).then(|| value.trim_start())
        })
        .unwrap_or_else(|| panic!("no row `{name}` in:\n{}", run.stdout))
}

/// A memfd holding `bytes`, sealed as ringbell seals its regions (or not at all).
fn memfd(bytes: &[u8], sealed: bool) -> OwnedFd {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create("ringbell-cli-test", flags).unwrap();
    let mut file = File::from(fd);
    file.write_all(bytes).unwrap();
    if sealed {
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&file, seals).unwrap();
    }
    file.into()
}

/// A fresh directory for this test's files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ringbell-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn assert_fails_with(run: &Run, needle: &str) {
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "not one line: {run:?}");
    assert!(run.stderr.starts_with("ringbell: "), "{run:?}");
    assert!(run.stderr.contains(needle), "no `{needle}` in {run:?}");
}

#[test]
fn inspect_fd_of_a_live_region_prints_what_its_snapshot_says() {
    let _watchdog = watchdog();
    let (region, tx, rx) = busy_region();
    let snap = RegionSnapshot::read(&region);
    assert_eq!(
        snap.used(),
        Some(3 * 48),
        "three 40-byte frames, 8-byte record headers"
    );
    let target = pid_fd(region.fd());
    let pid = std::process::id();
    let owner = |role| match role {
        Role::Held(owner) => owner,
        other => panic!("role {other:?}"),
    };

    let run = ringbell(&["inspect", "--fd", &target]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    let proc_path = format!("/proc/{pid}/fd/{}", region.fd().as_raw_fd());
    assert_eq!(row(&run, "region"), proc_path);
    assert!(row(&run, "read").starts_with("live"), "{}", run.stdout);
    assert_eq!(row(&run, "length"), format!("{} bytes", region.len()));
    assert_eq!(row(&run, "magic"), "ok");
    assert_eq!(row(&run, "ready"), "yes");
    assert_eq!(row(&run, "version"), snap.version.to_string());
    assert_eq!(row(&run, "kind"), "spsc");
    assert_eq!(row(&run, "capacity"), "4096 bytes");
    assert_eq!(row(&run, "frame cap"), format!("{} bytes", tx.max_frame()));
    assert_eq!(row(&run, "registry"), "0 slots");
    let producer = owner(snap.producer);
    assert_eq!(
        row(&run, "producer"),
        format!("held by owner {:#x} (pid {pid})", producer.get())
    );
    assert!(row(&run, "consumer").ends_with(&format!("(pid {pid})")));
    assert_eq!(row(&run, "write pos"), snap.write_pos.to_string());
    assert_eq!(row(&run, "read pos"), snap.read_pos.to_string());
    assert_eq!(row(&run, "used"), "144 of 4096 bytes");
    assert_eq!(
        row(&run, "data bell"),
        format!(
            "sequence {}, waiters {}",
            snap.data_bell.sequence, snap.data_bell.waiters
        )
    );
    assert_eq!(row(&run, "reservation"), "0x0");
    assert_eq!(row(&run, "verdict"), "consistent");

    let run = ringbell(&["inspect", "--fd", &target, "--json"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one JSON object on one line");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("region").str(), proc_path);
    assert_eq!(j.get("live"), &Json::Bool(true));
    assert_eq!(j.get("len").u64(), region.len() as u64);
    assert_eq!(j.get("magic_ok"), &Json::Bool(true));
    assert_eq!(j.get("kind").str(), "spsc");
    assert_eq!(j.get("capacity").u64(), snap.capacity);
    assert_eq!(j.get("frame_cap").u64(), u64::from(snap.frame_cap));
    assert_eq!(j.get("flags").u64(), u64::from(snap.flags));
    assert_eq!(j.get("producer").str(), "held");
    assert_eq!(
        j.get("producer_owner").str(),
        format!("{:#x}", producer.get())
    );
    assert_eq!(j.get("producer_pid").u64(), u64::from(pid));
    assert_eq!(j.get("consumer_pid").u64(), u64::from(pid));
    assert_eq!(j.get("write_pos").u64(), snap.write_pos);
    assert_eq!(j.get("read_pos").u64(), snap.read_pos);
    assert_eq!(j.get("used").u64(), 144);
    assert_eq!(
        j.get("data_bell_sequence").u64(),
        u64::from(snap.data_bell.sequence)
    );
    assert_eq!(
        j.get("space_bell_waiters").u64(),
        u64::from(snap.space_bell.waiters)
    );
    assert_eq!(j.get("bell_sequence"), &Json::Null);
    assert_eq!(j.get("consistent"), &Json::Bool(true));
    assert_eq!(j.get("error"), &Json::Null);

    // The roles as they change: a closed consumer shows as closed.
    drop(rx);
    let run = ringbell(&["inspect", "--fd", &target]);
    assert_eq!(row(&run, "consumer"), "closed");
}

#[test]
fn inspect_leaves_every_byte_of_the_region_unchanged() {
    let _watchdog = watchdog();
    let (region, _tx, _rx) = busy_region();
    let before = file_bytes(region.fd());
    assert_eq!(before.len(), region.len(), "the whole region");
    let target = pid_fd(region.fd());
    for args in [
        &["inspect", "--fd", &target][..],
        &["inspect", "--fd", &target, "--json"],
        &[
            "inspect",
            &format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                region.fd().as_raw_fd()
            ),
        ],
    ] {
        let run = ringbell(args);
        assert_eq!(run.code(), Some(0), "{args:?}: {run:?}");
    }
    let after = file_bytes(region.fd());
    assert_eq!(fnv1a(&before), fnv1a(&after), "inspect changed the region");
    assert_eq!(before, after);
}

#[test]
fn an_unsealed_copy_is_read_from_a_copy_and_says_so() {
    let _watchdog = watchdog();
    let (region, _tx, _rx) = busy_region();
    let snap = RegionSnapshot::read(&region);
    let dir = TempDir::new("copy");
    let path = dir.file("region", &file_bytes(region.fd()));

    let run = ringbell(&["inspect", "--fd", &path]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(
        row(&run, "read").starts_with("(copied, not live)"),
        "{}",
        run.stdout
    );
    assert_eq!(row(&run, "write pos"), snap.write_pos.to_string());
    assert_eq!(row(&run, "verdict"), "consistent");

    // The same without `--fd`: a path that is not a socket is a region.
    let run = ringbell(&["inspect", &path, "--json"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("live"), &Json::Bool(false));
    assert_eq!(j.get("capacity").u64(), snap.capacity);
    assert_eq!(j.get("read_pos").u64(), snap.read_pos);

    // An unsealed memfd is copied too: it could be shrunk under a mapping.
    let fd = memfd(&file_bytes(region.fd()), false);
    let run = ringbell(&["inspect", "--fd", &pid_fd(fd.as_fd())]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(row(&run, "read").starts_with("(copied, not live)"));
}

#[test]
fn short_garbage_and_missing_files_fail_with_one_line_and_no_panic() {
    let _watchdog = watchdog();
    let dir = TempDir::new("bad");
    let garbage: Vec<u8> = (0..64 << 10)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    let short = dir.file("short", &[0xFF; 100]);
    assert_fails_with(
        &ringbell(&["inspect", "--fd", &short]),
        "smaller than a header",
    );
    let empty = dir.file("empty", &[]);
    assert_fails_with(&ringbell(&["inspect", &empty]), "region of 0 bytes");

    let bad = dir.file("garbage", &garbage);
    let run = ringbell(&["inspect", "--fd", &bad]);
    assert_fails_with(&run, "not a ringbell region");
    assert_eq!(row(&run, "magic"), "bad", "the snapshot is still printed");
    let run = ringbell(&["inspect", "--fd", &bad, "--json"]);
    assert_fails_with(&run, "not a ringbell region");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("consistent"), &Json::Bool(false));
    assert!(j.get("error").str().contains("not a ringbell region"));

    // The same through the live path: sealed memfds of garbage, short and long.
    let sealed = memfd(&garbage, true);
    let run = ringbell(&["inspect", "--fd", &pid_fd(sealed.as_fd())]);
    assert_fails_with(&run, "not a ringbell region");
    assert!(row(&run, "read").starts_with("live"));
    let sealed_short = memfd(&garbage[..1000], true);
    let run = ringbell(&["inspect", "--fd", &pid_fd(sealed_short.as_fd())]);
    assert_fails_with(&run, "region of 1000 bytes is smaller than a header");

    let missing = format!("{}:999999", std::process::id());
    assert_fails_with(&ringbell(&["inspect", "--fd", &missing]), "cannot open");
    let tmp = dir.0.to_str().unwrap().to_owned();
    assert_fails_with(&ringbell(&["inspect", "--fd", &tmp]), "not a regular file");
    // A FIFO nobody writes: refused at once, not waited on.
    let fifo = dir.0.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    assert_fails_with(&ringbell(&["inspect", fifo]), "not a regular file");
}

#[test]
fn a_live_region_whose_positions_disagree_is_read_again_then_reported() {
    let _watchdog = watchdog();
    let (region, _tx, _rx) = busy_region();
    let snap = RegionSnapshot::read(&region);
    // A copy whose read position is past its write position, in a sealed memfd.
    let mut bytes = file_bytes(region.fd());
    let ahead = snap.write_pos + 8;
    bytes[wire::READ_POS_OFF..wire::READ_POS_OFF + 8].copy_from_slice(&ahead.to_ne_bytes());
    let fd = memfd(&bytes, true);

    let run = ringbell(&["inspect", "--fd", &pid_fd(fd.as_fd()), "--json"]);
    assert_fails_with(&run, "inconsistent positions");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("live"), &Json::Bool(true));
    assert_eq!(j.get("reads").u64(), 8, "read again before reporting");
    assert_eq!(j.get("read_pos").u64(), ahead);
    assert_eq!(j.get("used"), &Json::Null);
    assert_eq!(j.get("consistent"), &Json::Bool(false));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let _watchdog = watchdog();
    for args in [
        &[][..],
        &["frobnicate"],
        &["inspect"],
        &["inspect", "--verbose", "x"],
        &["inspect", "--fd"],
        &["bench", "--seconds", "soon"],
        &["bench", "--size", "0"],
    ] {
        let run = ringbell(args);
        assert_eq!(run.code(), Some(2), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        assert!(run.stderr.starts_with("ringbell: "), "{args:?}: {run:?}");
        assert!(run.stderr.contains("usage: ringbell"), "{args:?}: {run:?}");
    }
    for args in [&["--help"][..], &["help"], &["inspect", "--help"]] {
        let run = ringbell(args);
        assert_eq!(run.code(), Some(0), "{args:?}: {run:?}");
        assert!(
            run.stdout.starts_with("usage: ringbell"),
            "{args:?}: {run:?}"
        );
        assert!(run.stderr.is_empty());
    }
}
