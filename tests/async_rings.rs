//! The async fan-in and the async MPSC consumer (feature `tokio`) against producer
//! processes: every frame of three producers arrives, in each producer's order, while the
//! producers pause now and then so that the consumer's task has to sleep; a producer killed
//! while the fan-in awaits is reported within 200 ms; a producer killed between its claim
//! and its commit is skipped by the async MPSC consumer after the stall timeout. The
//! children ring through the consumer's readiness descriptor (inherited,
//! `ReadinessSignal::from_fd`).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ringbell::doorbell::{BellConfig, Readiness, ReadinessSignal, WaitOptions};
use ringbell::fanin::{AsyncFanIn, FanIn, FanInError, RingId};
use ringbell::mpsc::{self, PidfdLiveness};
use ringbell::region::{Bell, Mpsc, Region, Spsc};
use ringbell::{OwnerId, spsc, testing};

use common::{child_command, child_fds, child_role, watchdog};

const FRAMES: u32 = 20_000;
const PRODUCERS: usize = 3;

/// Not a test by itself: the producer processes.
#[test]
fn producer_main() {
    let Some(role) = child_role() else { return };
    let mut fds = child_fds().into_iter();
    if let Some(k) = role.strip_prefix("fanin-") {
        let ring = Region::<Spsc>::open(fds.next().unwrap()).unwrap();
        let bell = Region::<Bell>::open(fds.next().unwrap()).unwrap();
        let signal = ReadinessSignal::from_fd(fds.next().unwrap());
        let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique()).unwrap();
        tx.set_peer_readiness(Some(signal));
        if k == "doomed" {
            for i in 0..10u32 {
                tx.try_send(i, b"last words").unwrap();
            }
            std::io::stdout().write_all(b"!").unwrap();
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        for i in 0..FRAMES {
            tx.send_timeout(i, &i.to_le_bytes(), Duration::from_secs(20))
                .unwrap();
            if i % 101 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    } else if let Some(k) = role.strip_prefix("mpsc-") {
        let region = Region::<Mpsc>::open(fds.next().unwrap()).unwrap();
        let signal = ReadinessSignal::from_fd(fds.next().unwrap());
        let mut tx = mpsc::Producer::attach(region, OwnerId::unique()).unwrap();
        tx.set_peer_readiness(Some(signal));
        if k == "dying" {
            testing::mpsc_claim_and_stop(&mut tx, 32).unwrap();
            std::io::stdout().write_all(b"!").unwrap();
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let k: u32 = k.parse().unwrap();
        for i in 0..FRAMES {
            tx.send_timeout((k << 24) | i, &i.to_le_bytes(), Duration::from_secs(20))
                .unwrap();
            if i % 101 == 0 {
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn spawn(role: &str, fds: &[std::os::fd::BorrowedFd<'_>]) -> Child {
    child_command("producer_main", role, fds)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's stdout up to its `!` (it holds what the test needs).
fn wait_for_mark(child: &mut Child) {
    let mut out = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while byte[0] != b'!' {
        out.read_exact(&mut byte).unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_fanin_gets_every_frame_of_three_producer_processes() {
    let _w = watchdog();
    let bell = Region::create(&BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), PRODUCERS).unwrap();
    // No spinning, and slices so long that a ring that did not reach the task's wait would
    // hold the test past its watchdog.
    fanin.set_wait_options(
        WaitOptions::new()
            .spin_budget(0)
            .slice(Duration::from_secs(60)),
    );
    let readiness = Readiness::new().unwrap();
    let mut children = Vec::new();
    for k in 0..PRODUCERS {
        let ring = Region::create(&spsc::Config::new(4096).shared_bell()).unwrap();
        fanin.add(ring.clone(), OwnerId::unique()).unwrap();
        children.push(spawn(
            &format!("fanin-{k}"),
            &[ring.fd(), bell.fd(), readiness.as_fd()],
        ));
    }
    let stats = runtime().block_on(async {
        let mut fanin = AsyncFanIn::new(fanin, readiness).unwrap();
        let mut next = [0u32; PRODUCERS];
        let mut closed = 0;
        while closed < PRODUCERS {
            match fanin.recv().await {
                Ok((RingId(k), f)) => {
                    assert_eq!(f.tag, next[k], "producer {k}: out of order");
                    assert_eq!(f.data, f.tag.to_le_bytes());
                    next[k] += 1;
                }
                Err(FanInError::Closed(RingId(k))) => {
                    assert_eq!(next[k], FRAMES, "producer {k} closed early");
                    closed += 1;
                }
                Err(e) => panic!("{e} at {next:?}"),
            }
        }
        fanin.get_ref().stats()
    });
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // The producers' pauses made the task wait on the descriptor (not only spin).
    assert!(stats.sleeps > 0, "{stats:?}");
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_fanin_reports_a_killed_producer_within_200_ms() {
    let _w = watchdog();
    let bell = Region::create(&BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 2).unwrap();
    let readiness = Readiness::new().unwrap();
    let ring = Region::create(&spsc::Config::new(4096).shared_bell()).unwrap();
    let id = fanin.add(ring.clone(), OwnerId::unique()).unwrap();
    let mut child = spawn("fanin-doomed", &[ring.fd(), bell.fd(), readiness.as_fd()]);
    wait_for_mark(&mut child);
    runtime().block_on(async {
        let mut fanin = AsyncFanIn::new(fanin, readiness).unwrap();
        for i in 0..10u32 {
            assert_eq!(fanin.recv().await.unwrap().1.tag, i);
        }
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            child.kill().unwrap();
            let at = Instant::now();
            child.wait().unwrap();
            at
        });
        let r = fanin.recv().await;
        let noticed = Instant::now();
        let killed = killer.join().unwrap();
        assert_eq!(r.map(|(id, _)| id), Err(FanInError::Disconnected(id)));
        let took = noticed.saturating_duration_since(killed);
        assert!(took < Duration::from_millis(200), "noticed after {took:?}");
    });
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_mpsc_consumer_gets_every_frame_of_three_producer_processes() {
    let _w = watchdog();
    let region = Region::create(&mpsc::Config::new(4096)).unwrap();
    let mut rx =
        mpsc::Consumer::attach(region.clone(), OwnerId::unique(), mpsc::NeverDead).unwrap();
    // As for the fan-in: a lost ring would hold the test past its watchdog.
    rx.set_wait_options(
        WaitOptions::new()
            .spin_budget(0)
            .slice(Duration::from_secs(60)),
    );
    let readiness = Readiness::new().unwrap();
    let children: Vec<Child> = (0..PRODUCERS)
        .map(|k| spawn(&format!("mpsc-{k}"), &[region.fd(), readiness.as_fd()]))
        .collect();
    let stats = runtime().block_on(async {
        let mut rx = mpsc::AsyncConsumer::new(rx, readiness).unwrap();
        let mut next = [0u32; PRODUCERS];
        for _ in 0..PRODUCERS as u32 * FRAMES {
            let f = rx.recv().await.unwrap();
            let (k, i) = ((f.tag >> 24) as usize, f.tag & 0xFF_FFFF);
            assert_eq!(i, next[k], "producer {k}: out of order");
            assert_eq!(f.data, i.to_le_bytes());
            next[k] += 1;
        }
        rx.get_ref().stats()
    });
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert!(stats.sleeps > 0, "{stats:?}");
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_mpsc_consumer_skips_a_producer_killed_mid_claim() {
    let _w = watchdog();
    let region = Region::create(&mpsc::Config::new(64 << 10)).unwrap();
    let live = PidfdLiveness::new();
    let mut rx = mpsc::Consumer::attach(region.clone(), OwnerId::unique(), &live).unwrap();
    let stall = Duration::from_millis(100);
    rx.set_stall_timeout(stall);
    let readiness = Readiness::new().unwrap();
    let mut child = spawn("mpsc-dying", &[region.fd(), readiness.as_fd()]);
    live.watch(child.id()).unwrap();
    wait_for_mark(&mut child);
    let mut survivor = mpsc::Producer::attach(region.clone(), OwnerId::unique()).unwrap();
    survivor.set_peer_readiness(Some(readiness.signal()));
    runtime().block_on(async {
        let mut rx = mpsc::AsyncConsumer::new(rx, readiness).unwrap();
        for i in 0..100u32 {
            survivor.try_send(i, &[i as u8; 32]).unwrap();
        }
        // The dead record blocks while its producer lives.
        assert!(
            tokio::time::timeout(stall * 2, rx.recv()).await.is_err(),
            "skipped a live producer's record"
        );
        child.kill().unwrap();
        let killed = Instant::now();
        child.wait().unwrap();
        for i in 0..100u32 {
            let f = rx.recv().await.unwrap();
            assert_eq!((f.tag, &f.data[..]), (i, &[i as u8; 32][..]));
        }
        let resumed = killed.elapsed();
        assert!(resumed < stall * 10, "took {resumed:?}");
        assert_eq!(rx.get_ref().skipped(), 1);
    });
}
