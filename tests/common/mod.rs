//! Helpers shared by the integration tests: a seeded generator, child processes that
//! inherit a region's fd, and a reader of this process's own page residency.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// xorshift64*: small, seedable, good enough to pick sizes and bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A frame length for the cross-process streams: at least 4 (room for a checksum), mostly
/// small, one in a hundred anywhere up to `max`.
pub fn frame_len(rng: &mut Rng, max: usize) -> usize {
    if rng.below(100) == 0 {
        4 + rng.below(max as u64 - 3) as usize
    } else {
        4 + rng.below(120) as usize
    }
}

/// FNV-1a over `data`, seeded with `tag`.
pub fn checksum(tag: u32, data: &[u8]) -> u32 {
    let mut h: u32 = 0x811C_9DC5 ^ tag;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Environment variable naming the child role a test binary was re-executed for.
pub const CHILD_ROLE: &str = "RINGBELL_TEST_CHILD";
/// Environment variable carrying the inherited fd number.
pub const CHILD_FD: &str = "RINGBELL_TEST_FD";

/// Re-executes this test binary to run only `test_name`, with `role` in the environment and
/// `fd` inherited (its close-on-exec flag cleared in the child only).
pub fn spawn_child(test_name: &str, role: &str, fd: BorrowedFd<'_>) -> Child {
    spawn_child_with_fds(test_name, role, &[fd])
}

/// As [`spawn_child`], with several inherited fds (in order, see [`child_fds`]).
pub fn spawn_child_with_fds(test_name: &str, role: &str, fds: &[BorrowedFd<'_>]) -> Child {
    child_command(test_name, role, fds)
        .spawn()
        .expect("spawn child test process")
}

/// The command [`spawn_child_with_fds`] runs, to adjust before spawning.
pub fn child_command(test_name: &str, role: &str, fds: &[BorrowedFd<'_>]) -> Command {
    let raws: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let list = raws
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_FD, list);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-
    // safe system calls (fcntl F_SETFD) on fds the parent keeps open until `spawn` returns.
    unsafe {
        cmd.pre_exec(move || {
            for &raw in &raws {
                let fd = BorrowedFd::borrow_raw(raw);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    cmd
}

/// In a re-executed child: the role asked for, if this process is one.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// In a re-executed child: takes ownership of the inherited fd.
pub fn child_fd() -> OwnedFd {
    child_fds().remove(0)
}

/// In a re-executed child: takes ownership of every inherited fd, in order.
pub fn child_fds() -> Vec<OwnedFd> {
    std::env::var(CHILD_FD)
        .unwrap()
        .split(',')
        .map(|s| {
            let raw: RawFd = s.parse().unwrap();
            // SAFETY: the parent passed this fd to us by inheritance and nothing else in this
            // process owns it.
            unsafe { OwnedFd::from_raw_fd(raw) }
        })
        .collect()
}

/// Resident kilobytes of this process's mapping that starts at `addr`, from
/// `/proc/self/smaps`.
pub fn mapping_rss_kib(addr: *const u8) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let want = addr as usize;
    let mut in_mapping = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, _end)) = first.split_once('-') {
            if let Ok(start) = usize::from_str_radix(start, 16) {
                in_mapping = start == want;
                continue;
            }
        }
        if in_mapping {
            if let Some(rest) = line.strip_prefix("Rss:") {
                return rest.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
    }
    panic!("no mapping at {addr:p} in /proc/self/smaps");
}

/// Fails the whole test binary, naming the test, if it is not dropped within its bound: a
/// hung test would otherwise hold CI until its global limit and name nothing. Every test
/// that could block starts with `let _watchdog = common::watchdog();`.
///
/// Under miri (whose clock and threads are emulated) it does nothing: the check script bounds
/// the miri run as a whole.
pub struct Watchdog {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long any one test may take before its watchdog fails the run: far above the slowest
/// test's time on a loaded 2-CPU machine (a few seconds), far below CI's limit.
pub const WATCHDOG_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// A [`Watchdog`] for the calling test, with [`WATCHDOG_BOUND`].
#[track_caller]
pub fn watchdog() -> Watchdog {
    watchdog_for(WATCHDOG_BOUND)
}

/// A [`Watchdog`] that fires after `bound`.
#[track_caller]
pub fn watchdog_for(bound: std::time::Duration) -> Watchdog {
    let place = std::panic::Location::caller().to_string();
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string();
    let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let thread = (!cfg!(miri)).then(|| {
        let done = done.clone();
        std::thread::spawn(move || {
            let (lock, cv) = &*done;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, bound, |finished| !*finished)
                .unwrap_or_else(|e| e.into_inner());
            if !*guard {
                eprintln!(
                    "\nWATCHDOG: test `{test}` (started at {place}) did not finish within \
                     {bound:?}; aborting the test binary (pid {})",
                    std::process::id()
                );
                std::process::abort();
            }
        })
    });
    Watchdog { done, thread }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The median round trip of 60 calls of `body` on `client`, each after a 3 ms pause (the
/// server goes idle between them): far below the server's 50 ms slice unless a request's
/// ring fails to wake it, when it approaches the slice.
pub fn median_call_after_idle_gaps(
    client: &mut ringbell::channel::Client,
    body: &[u8],
) -> std::time::Duration {
    use std::time::{Duration, Instant};
    let mut lat: Vec<Duration> = (0..60)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(3));
            let t = Instant::now();
            let got = client.call_timeout(body, Duration::from_secs(10)).unwrap();
            assert_eq!(got, body);
            t.elapsed()
        })
        .collect();
    lat.sort();
    lat[lat.len() / 2]
}

/// A child process killed and reaped when dropped, and a directory removed with it.
pub struct KillOnDrop {
    pub child: Child,
    pub dir: std::path::PathBuf,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (at most 30 s) until a channel server answers at `path`.
pub fn wait_until_serving(path: &std::path::Path) {
    use std::time::{Duration, Instant};
    let until = Instant::now() + Duration::from_secs(30);
    while ringbell::channel::Client::connect(path).is_err() {
        assert!(Instant::now() < until, "the server never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
}
