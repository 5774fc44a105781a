//! Async waits on a doorbell through a readiness descriptor, across processes: the waiter (this
//! process) announces with `poll_ready` and waits on the eventfd with `poll(2)`; the ringer
//! (a re-executed child, holding the region and the eventfd by inheritance) publishes a
//! counter and rings with `ring_readiness`. Every ring is seen (a lost one fails its 10 s
//! wait), and wake system calls never exceed announced waits.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use ringbell::doorbell::{
    Announced, BellConfig, Doorbell, Readiness, ReadinessSignal, WaitOptions,
};
use ringbell::region::{Bell, Region};
use ringbell::testing::view;
use ringbell::wire::HEADER_SIZE;

use common::{child_command, child_fds, child_role, watchdog};

/// Where the counter lives: the doorbell line's bytes past its two words.
const COUNTER: usize = HEADER_SIZE + 64;
const ROUNDS: u64 = 20_000;

#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn an_async_waiter_in_one_process_sees_every_ring_of_another() {
    const TEST: &str = "an_async_waiter_in_one_process_sees_every_ring_of_another";
    let _w = watchdog();
    if child_role().as_deref() == Some("ringer") {
        let mut fds = child_fds().into_iter();
        let region = Region::<Bell>::open(fds.next().unwrap()).unwrap();
        let readiness = ReadinessSignal::from_fd(fds.next().unwrap());
        let bell = Doorbell::new(region.clone(), HEADER_SIZE).unwrap();
        let v = view(&region);
        for i in 1..=ROUNDS {
            v.store_u64(COUNTER, i, Ordering::Release);
            bell.ring_readiness(&readiness);
            // Now and then let the waiter fall asleep.
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        println!("@wakes {}", bell.stats().wakes);
        return;
    }
    let region = Region::<Bell>::create(&BellConfig).unwrap();
    let readiness = Readiness::new().unwrap();
    let passed: OwnedFd = readiness.as_fd().try_clone_to_owned().unwrap();
    let child = child_command(TEST, "ringer", &[region.fd().as_fd(), passed.as_fd()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(passed);
    let mut bell = Doorbell::new(region.clone(), HEADER_SIZE).unwrap();
    bell.set_wait_options(WaitOptions::new().spin_budget(0));
    let v = view(&region);
    let mut waits = 0u64;
    for target in 1..=ROUNDS {
        let ready = || v.load_u64(COUNTER, Ordering::Acquire) >= target;
        while !ready() {
            match bell.poll_ready(&readiness, ready) {
                Announced::Ready => break,
                Announced::Wait => {
                    waits += 1;
                    assert!(
                        readiness.wait_timeout(Duration::from_secs(10)),
                        "a ring was lost: waiting for {target}"
                    );
                }
                Announced::RetryAfter(d) => std::thread::sleep(d),
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let wakes: u64 = text
        .split("@wakes ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("the ringer reported its wakes");
    let announced = bell.stats().sleeps;
    assert!(
        waits > 0 && wakes > 0,
        "the async path was never taken ({waits} waits, {wakes} wakes)"
    );
    assert!(
        wakes <= announced,
        "more wake system calls ({wakes}) than announced waits ({announced})"
    );
    println!("{waits} async waits, {announced} announcements, {wakes} wakes");
}
