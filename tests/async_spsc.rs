//! The async SPSC ends (feature `tokio`) against a peer in another process: an async consumer
//! receives every frame of a producer child, in order, also when its `recv` futures are
//! cancelled at random; an async producer fills a ring a slow child drains; a producer
//! killed mid-stream ends the consumer's await with `Disconnected` within 200 ms. The child
//! holds the ring and the readiness descriptor by inheritance and rings with
//! `ReadinessSignal::from_fd`.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ringbell::RecvError;
use ringbell::doorbell::{Readiness, ReadinessSignal, WaitOptions};
use ringbell::region::{Region, Spsc};
use ringbell::spsc::{self, AsyncConsumer, AsyncProducer};

use common::{child_command, child_fds, child_role, watchdog};

const FRAMES: u32 = 20_000;

/// Not a test by itself: the peer processes.
#[test]
fn peer_main() {
    let Some(role) = child_role() else { return };
    let mut fds = child_fds().into_iter();
    let region = Region::<Spsc>::open(fds.next().unwrap()).unwrap();
    let signal = ReadinessSignal::from_fd(fds.next().unwrap());
    match role.as_str() {
        "producer" => {
            let mut tx = region.producer().unwrap();
            tx.set_peer_readiness(Some(signal));
            for i in 0..FRAMES {
                tx.send_timeout(i, &i.to_le_bytes(), Duration::from_secs(20))
                    .unwrap();
                // Now and then let the consumer fall asleep.
                if i % 97 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        }
        "slow-consumer" => {
            let mut rx = region.consumer().unwrap();
            rx.set_peer_readiness(Some(signal));
            let mut sum = 0u64;
            for i in 0..FRAMES {
                let f = rx.recv_timeout(Duration::from_secs(20)).unwrap();
                assert_eq!(f.tag, i);
                sum += u64::from(f.tag);
                if i % 211 == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            println!("@sum {sum}");
        }
        "doomed-producer" => {
            let mut tx = region.producer().unwrap();
            tx.set_peer_readiness(Some(signal));
            for i in 0..10u32 {
                tx.try_send(i, b"last words").unwrap();
            }
            std::io::stdout().write_all(b"!").unwrap();
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => {}
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The ring and a readiness for the parent's end; the child gets both descriptors.
fn ring_for(role: &str, cap: usize) -> (Region<Spsc>, Readiness, std::process::Child) {
    let region = Region::create(&spsc::Config::new(cap)).unwrap();
    let readiness = Readiness::new().unwrap();
    let child = child_command("peer_main", role, &[region.fd(), readiness.as_fd()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (region, readiness, child)
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_consumer_gets_every_frame_of_a_producer_process_even_when_cancelled() {
    let _w = watchdog();
    let (region, readiness, mut child) = ring_for("producer", 4096);
    let mut rx = region.consumer().unwrap();
    rx.set_wait_options(WaitOptions::new().spin_budget(0));
    runtime().block_on(async {
        let mut rx = AsyncConsumer::new(rx, readiness).unwrap();
        let mut next = 0u32;
        let mut cancelled = 0u32;
        while next < FRAMES {
            let frame = if next % 50 == 0 {
                // A future dropped while it waits must lose nothing.
                match tokio::time::timeout(Duration::from_micros(100), rx.recv()).await {
                    Ok(f) => f,
                    Err(_) => {
                        cancelled += 1;
                        continue;
                    }
                }
            } else {
                tokio::time::timeout(Duration::from_secs(20), rx.recv())
                    .await
                    .expect("a ring was lost")
            };
            let f = frame.unwrap();
            assert_eq!(f.tag, next);
            assert_eq!(f.data, next.to_le_bytes());
            next += 1;
        }
        assert_eq!(rx.recv().await, Err(RecvError::Closed));
        let stats = rx.get_ref().stats();
        println!("{cancelled} recv futures cancelled; consumer {stats:?}");
        assert!(stats.sleeps > 0, "the async path was never taken");
    });
    assert!(child.wait().unwrap().success());
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_producer_waits_for_room_a_consumer_process_frees() {
    let _w = watchdog();
    let (region, readiness, child) = ring_for("slow-consumer", 4096);
    let mut tx = region.producer().unwrap();
    tx.set_wait_options(WaitOptions::new().spin_budget(0));
    runtime().block_on(async {
        let mut tx = AsyncProducer::new(tx, readiness).unwrap();
        for i in 0..FRAMES {
            tokio::time::timeout(Duration::from_secs(20), tx.send(i, &[7u8; 100]))
                .await
                .expect("a ring was lost")
                .unwrap();
        }
        assert!(tx.get_ref().stats().sleeps > 0, "never waited for room");
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: u64 = (0..u64::from(FRAMES)).sum();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("@sum {want}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn a_killed_producer_ends_the_await_with_disconnected_after_its_frames() {
    let _w = watchdog();
    let (region, readiness, mut child) = ring_for("doomed-producer", 4096);
    let mut out = child.stdout.take().unwrap();
    let mut bang = [0u8; 1];
    out.read_exact(&mut bang).unwrap();
    let rx = region.consumer().unwrap();
    runtime().block_on(async {
        let mut rx = AsyncConsumer::new(rx, readiness).unwrap();
        for i in 0..10u32 {
            assert_eq!(rx.recv().await.unwrap().tag, i);
        }
        let killer = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(100));
            let at = Instant::now();
            child.kill().unwrap();
            child.wait().unwrap();
            at
        });
        let r = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the dead producer was never noticed");
        let ended = Instant::now();
        let killed = killer.await.unwrap();
        assert_eq!(r, Err(RecvError::Disconnected));
        let late = ended.duration_since(killed);
        assert!(late < Duration::from_millis(200), "noticed after {late:?}");
    });
}
