//! Blocking calls: deadlines, closes, the wake counters, and a cross-process ping-pong in
//! which every message sleeps.

mod common;

use std::time::{Duration, Instant};

use ringbell::doorbell::{Fences, WaitOptions};
use ringbell::inspect::RegionSnapshot;
use ringbell::region::{Region, SharedMemory};
use ringbell::{RecvError, SendError};
use ringbell::{mpsc, spsc};

#[test]
fn deadlines_are_honoured() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = spsc::channel(64).unwrap();
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)).unwrap_err(),
        RecvError::Timeout
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    tx.send(0, &[0; 24]).unwrap();
    tx.send(0, &[0; 24]).unwrap();
    let t = Instant::now();
    assert_eq!(
        tx.send_timeout(1, &[0; 24], Duration::from_millis(30)),
        Err(SendError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(30));
    // A frame above the cap is refused at once, even by a blocking send.
    let t = Instant::now();
    assert!(matches!(
        tx.send(1, &[0; 25]),
        Err(SendError::TooLarge { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

/// A close wakes the blocked peer at once, not at the end of a sleep slice: the slices here
/// are ten seconds long, and each blocked call must return within one.
#[test]
fn a_close_wakes_a_blocked_peer() {
    let _watchdog = common::watchdog();
    let long = WaitOptions::new()
        .spin_budget(0)
        .slice(Duration::from_secs(10));
    let (tx, mut rx) = spsc::channel(64).unwrap();
    rx.set_wait_options(long);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
    });
    let start = Instant::now();
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();

    let (mut tx, rx) = spsc::channel(64).unwrap();
    tx.set_wait_options(long);
    tx.send(0, &[0; 24]).unwrap();
    tx.send(0, &[0; 24]).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
    });
    let start = Instant::now();
    assert_eq!(tx.send(0, &[0; 24]), Err(SendError::Closed));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    t.join().unwrap();
}

/// Streams frames to a consumer that sleeps whenever the ring runs dry: the producer makes
/// at most one wake system call per sleep the consumer announced, and the other way round.
#[test]
fn wake_calls_never_exceed_announced_sleeps() {
    let _watchdog = common::watchdog();
    let frames: u32 = if cfg!(miri) { 2_000 } else { 1_000_000 };
    for spin in [0, ringbell::doorbell::DEFAULT_SPIN_BUDGET] {
        let (mut tx, mut rx) = spsc::channel(4096).unwrap();
        let opts = WaitOptions::new().spin_budget(spin);
        tx.set_wait_options(opts);
        rx.set_wait_options(opts);
        let producer = std::thread::spawn(move || {
            for i in 0..frames {
                tx.send(i, &i.to_le_bytes()).unwrap();
            }
            tx.stats()
        });
        let mut buf = [0u8; 8];
        for i in 0..frames {
            let (tag, len) = rx.recv_into(&mut buf).unwrap();
            assert_eq!((tag, &buf[..len]), (i, &i.to_le_bytes()[..]));
        }
        let tx_stats = producer.join().unwrap();
        let rx_stats = rx.stats();
        println!("spin {spin}: producer {tx_stats:?}\n        consumer {rx_stats:?}");
        assert!(
            tx_stats.wakes <= rx_stats.sleeps,
            "producer woke {} times for {} announced sleeps",
            tx_stats.wakes,
            rx_stats.sleeps
        );
        assert!(
            rx_stats.wakes <= tx_stats.sleeps,
            "consumer woke {} times for {} announced sleeps",
            rx_stats.wakes,
            tx_stats.sleeps
        );
        // Far fewer system calls than frames: no system call per message while awake.
        assert!(tx_stats.wakes < frames as u64 / 2, "{tx_stats:?}");
    }
}

const PINGS: u32 = 100_000;

/// Two processes ping-pong 100,000 frames with spin budget 0, so every wait sleeps on the
/// futex: nothing is lost and nothing hangs, in both fence modes. The sleep slice (60 s) is
/// longer than each call's deadline (10 s), so a lost wake-up is not healed by the next slice
/// but fails the call with a timeout.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn cross_process_ping_pong_where_every_message_sleeps() {
    let _watchdog = common::watchdog();
    let mut modes = vec![Fences::Symmetric];
    if Fences::asymmetric_available() {
        modes.push(Fences::Asymmetric);
    }
    for fences in modes {
        let cfg = spsc::Config::new(4096).fences(fences);
        let ping = Region::create(&cfg).unwrap();
        let back = Region::create(&cfg).unwrap();
        let mut tx = ping.producer().unwrap();
        let mut rx = back.consumer().unwrap();
        tx.set_wait_options(sleepy());
        rx.set_wait_options(sleepy());
        let mut child =
            common::spawn_child_with_fds("ping_pong_child", "ping-pong", &[ping.fd(), back.fd()]);
        let mut buf = [0u8; 64];
        for i in 0..PINGS {
            tx.send_timeout(i, &[i as u8; 64], Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{fences:?}, ping {i}: {e}"));
            let (tag, len) = rx
                .recv_into_timeout(&mut buf, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{fences:?}, pong {i}: {e}"));
            assert_eq!((tag, len), (i, 64));
            assert_eq!(buf, [i as u8; 64]);
        }
        drop(tx);
        assert!(child.wait().unwrap().success());
        let stats = rx.stats();
        println!("{fences:?}: parent consumer: {stats:?}");
        assert!(
            stats.sleeps >= PINGS as u64 / 2,
            "the waits did not sleep: {stats:?}"
        );
    }
}

/// Every wait sleeps, and a slice outlasts every deadline.
fn sleepy() -> WaitOptions {
    WaitOptions::new()
        .spin_budget(0)
        .slice(Duration::from_secs(60))
}

#[test]
fn ping_pong_child() {
    let _watchdog = common::watchdog();
    if common::child_role().as_deref() != Some("ping-pong") {
        return;
    }
    let fds = common::child_fds();
    let mut fds = fds.into_iter();
    let ping = Region::<ringbell::region::Spsc>::open(fds.next().unwrap()).unwrap();
    let back = Region::<ringbell::region::Spsc>::open(fds.next().unwrap()).unwrap();
    let mut rx = ping.consumer().unwrap();
    let mut tx = back.producer().unwrap();
    tx.set_wait_options(sleepy());
    rx.set_wait_options(sleepy());
    let mut buf = [0u8; 64];
    loop {
        match rx.recv_into_timeout(&mut buf, Duration::from_secs(10)) {
            Ok((tag, len)) => tx
                .send_timeout(tag, &buf[..len], Duration::from_secs(10))
                .unwrap(),
            Err(RecvError::Closed) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A peer process killed with SIGKILL (no close) is noticed by a blocking call with no
/// deadline within about one sleep slice, in both directions; frames the dead producer
/// committed are delivered first.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn a_killed_peer_ends_blocking_calls_without_a_deadline() {
    let _watchdog = common::watchdog();
    use std::io::Read;
    use std::process::Stdio;
    for role in ["peer-producer", "peer-consumer"] {
        let region = Region::create(&spsc::Config::new(64)).unwrap();
        let mut cmd = common::child_command("killed_peer_child", role, &[region.fd()]);
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while byte[0] != b'!' {
            out.read_exact(&mut byte).unwrap(); // the child attached (and sent)
        }
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            child.kill().unwrap(); // SIGKILL: no close
            let killed = Instant::now();
            child.wait().unwrap();
            killed
        });
        let (ended, what) = if role == "peer-producer" {
            let mut rx = region.consumer().unwrap();
            for i in 0..2u32 {
                assert_eq!(rx.recv().unwrap().tag, i, "committed frames come first");
            }
            let err = rx.recv().unwrap_err();
            (Instant::now(), format!("{err:?}"))
        } else {
            let mut tx = region.producer().unwrap();
            let err = loop {
                if let Err(e) = tx.send(0, &[0; 24]) {
                    break e;
                }
            };
            (Instant::now(), format!("{err:?}"))
        };
        let killed = killer.join().unwrap();
        let late = ended.saturating_duration_since(killed);
        println!("{role}: {what} {late:?} after the kill");
        assert_eq!(what, "Disconnected", "{role}");
        assert!(
            late < Duration::from_millis(200),
            "{role}: noticed {late:?} after the kill"
        );
        drop(out);
    }
}

#[test]
fn killed_peer_child() {
    let _watchdog = common::watchdog();
    use std::io::Write;
    let Some(role) = common::child_role() else {
        return;
    };
    if !role.starts_with("peer-") {
        return;
    }
    let region = Region::<ringbell::region::Spsc>::open(common::child_fd()).unwrap();
    // Keep the handle alive (and never closed) until the parent kills us.
    let _handle: Box<dyn std::any::Any> = if role == "peer-producer" {
        let mut tx = region.producer().unwrap();
        tx.try_send(0, b"a").unwrap();
        tx.try_send(1, b"b").unwrap();
        Box::new(tx)
    } else {
        Box::new(region.consumer().unwrap())
    };
    std::io::stdout().write_all(b"!").unwrap();
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// A consumer that frees space but stops short of catching up — at a frame its buffer cannot
/// hold — rings the space doorbell although it freed less than a wake step, so a producer
/// blocked on the full ring goes on at once rather than at the end of its sleep slice.
#[test]
fn a_consumer_stopping_short_wakes_a_blocked_producer() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let max = tx.max_frame();
    tx.try_send(0, &[0; 56]).unwrap(); // 64 bytes
    while tx.try_send(1, &vec![1; max]).is_ok() {}
    while tx.try_send(2, &[2; 56]).is_ok() {}
    tx.set_wait_options(rung_or_asleep());
    let sender = blocked_send(move || tx.send_timeout(3, &[3; 56], Duration::from_secs(30)));
    until_a_producer_sleeps(rx.shared_memory());
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv_into(&mut buf), Ok((0, 56))); // frees 64 bytes, rings nothing
    assert_eq!(
        rx.try_recv_into(&mut buf),
        Err(RecvError::BufferTooSmall { needed: max })
    );
    woke_promptly(sender);
}

/// Asleep for a minute unless rung: a producer waiting with these options (and a 30 s
/// deadline) goes on within 10 s only if a consumer rings for it.
fn rung_or_asleep() -> WaitOptions {
    WaitOptions::new()
        .spin_budget(0)
        .slice(Duration::from_secs(60))
}

/// Runs `send` (a send that will block) on a thread; the handle gives how long it took.
fn blocked_send(
    send: impl FnOnce() -> Result<(), SendError> + Send + 'static,
) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let t = Instant::now();
        send().unwrap();
        t.elapsed()
    })
}

/// Asserts that the send on `sender` was woken, not left to sleep out its deadline.
fn woke_promptly(sender: std::thread::JoinHandle<Duration>) {
    let waited = sender.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "producer slept {waited:?}"
    );
}

/// Waits (at most 10 s) until a producer of the ring in `shm` has announced a sleep on the
/// space doorbell, so that what the test does next is what must wake it.
fn until_a_producer_sleeps(shm: &impl SharedMemory) {
    let start = Instant::now();
    while RegionSnapshot::read(shm).space_bell.waiters == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the producer never slept"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// As `a_consumer_stopping_short_wakes_a_blocked_producer`, for a batch receive that takes
/// frames and then stops at one its buffer cannot hold: the batch frees less than a wake
/// step, and must still ring.
#[test]
fn an_spsc_batch_stopping_short_wakes_a_blocked_producer() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let max = tx.max_frame();
    tx.try_send(0, &[0; 56]).unwrap(); // 64 bytes each
    tx.try_send(0, &[0; 56]).unwrap();
    while tx.try_send(1, &vec![1; max]).is_ok() {}
    while tx.try_send(2, &[2; 56]).is_ok() {}
    tx.set_wait_options(rung_or_asleep());
    let sender = blocked_send(move || tx.send_timeout(3, &[3; 56], Duration::from_secs(30)));
    until_a_producer_sleeps(rx.shared_memory());
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv_batch_into(&mut buf, 16, |_, _| {}), Ok(2));
    woke_promptly(sender);
}

/// The MPSC batch, stopping at a frame its buffer cannot hold.
#[test]
fn an_mpsc_batch_stopping_at_a_large_frame_wakes_a_blocked_producer() {
    let _watchdog = common::watchdog();
    let (mut rx, region) = mpsc::channel(4096).unwrap();
    let mut tx = region.producer().unwrap();
    let max = tx.max_frame();
    tx.try_send(0, &[0; 56]).unwrap(); // 64 bytes each
    tx.try_send(0, &[0; 56]).unwrap();
    while tx.try_send(1, &vec![1; max]).is_ok() {}
    while tx.try_send(2, &[2; 56]).is_ok() {}
    let mut blocked = region.producer().unwrap();
    blocked.set_wait_options(rung_or_asleep());
    let sender = blocked_send(move || blocked.send_timeout(3, &[3; 56], Duration::from_secs(30)));
    until_a_producer_sleeps(rx.shared_memory());
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv_batch_into(&mut buf, 16, |_, _| {}), Ok(2));
    woke_promptly(sender);
}

/// The MPSC batch, stopping at a record another producer claimed and has not committed: the
/// space it took before the claim must be published and rung for, not left to the end of the
/// batch's next call.
#[test]
fn an_mpsc_batch_stopping_at_an_uncommitted_claim_wakes_a_blocked_producer() {
    let _watchdog = common::watchdog();
    let (mut rx, region) = mpsc::channel(4096).unwrap();
    rx.set_stall_timeout(Duration::from_secs(60)); // the claim is never skipped here
    let mut tx = region.producer().unwrap();
    tx.try_send(0, &[0; 56]).unwrap(); // 64 bytes each
    tx.try_send(0, &[0; 56]).unwrap();
    let mut stuck = region.producer().unwrap();
    ringbell::testing::mpsc_claim_and_stop(&mut stuck, 56).unwrap();
    while tx.try_send(2, &[2; 56]).is_ok() {}
    let mut blocked = region.producer().unwrap();
    blocked.set_wait_options(rung_or_asleep());
    let sender = blocked_send(move || blocked.send_timeout(3, &[3; 56], Duration::from_secs(30)));
    until_a_producer_sleeps(rx.shared_memory());
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv_batch_into(&mut buf, 16, |_, _| {}), Ok(2));
    woke_promptly(sender);
}

/// The watchdog every test starts with fails a hung test, naming it, within its bound: a
/// child copy of this binary runs a test that never finishes under a 300 ms watchdog.
#[test]
#[cfg_attr(miri, ignore = "runs a child process")]
fn the_watchdog_fails_a_hung_test_and_names_it() {
    let _watchdog = common::watchdog();
    if common::child_role().as_deref() == Some("hang") {
        let _short = common::watchdog_for(Duration::from_millis(300));
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let start = Instant::now();
    let out = common::child_command("the_watchdog_fails_a_hung_test_and_names_it", "hang", &[])
        .output()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the hung child ran too long"
    );
    assert!(!out.status.success(), "a hung test passed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WATCHDOG: test `the_watchdog_fails_a_hung_test_and_names_it`"),
        "the watchdog did not name the test: {stderr}"
    );
}

/// Pins the calling thread to CPU 0.
fn on_cpu_0() {
    let mut set = rustix::thread::CpuSet::new();
    set.set(0);
    rustix::thread::sched_setaffinity(None, &set).unwrap();
}

/// Two threads that may run only on the same CPU: neither can make progress while the other
/// spins, so their blocking calls give the CPU away (yields) rather than spin it away or
/// sleep and wake for every ring-full (doorbell module docs, "Yielding").
#[test]
fn threads_sharing_one_cpu_yield_to_each_other() {
    let _watchdog = common::watchdog();
    const N: u32 = 200_000;
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let producer = std::thread::spawn(move || {
        on_cpu_0();
        for i in 0..N {
            tx.send_timeout(i, &[0; 56], Duration::from_secs(20))
                .unwrap();
        }
        tx.stats()
    });
    let consumer = std::thread::spawn(move || {
        on_cpu_0();
        let mut buf = [0u8; 64];
        for i in 0..N {
            let (tag, _) = rx
                .recv_into_timeout(&mut buf, Duration::from_secs(20))
                .unwrap();
            assert_eq!(tag, i);
        }
        rx.stats()
    });
    let total = producer.join().unwrap() + consumer.join().unwrap();
    eprintln!("one CPU, {N} frames through a 4 KiB ring: {total:?}");
    assert!(total.yields > 0, "no yields: {total:?}");
    // Each side gives the CPU away instead of sleeping: a sleep (and the wake it costs the
    // other side) at most once per 8 yields.
    assert!(
        total.sleeps * 8 <= total.yields,
        "sleeps instead of yields: {total:?}"
    );
}
