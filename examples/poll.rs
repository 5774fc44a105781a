//! One thread serving two rings with plain `poll(2)`, the way a C event loop (or mio, or
//! async-io) would: each ring's consumer owns a readiness descriptor, its producer rings
//! through the descriptor's signal, and the loop sleeps in one `poll` over both descriptors.
//! No thread per ring, and no system call on either side while frames keep coming.
//!
//! `cargo run --release --example poll`

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ringbell::doorbell::{Announced, Readiness};
use ringbell::spsc;

const FRAMES: u32 = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut consumers = Vec::new();
    let mut producers = Vec::new();
    for name in ["left", "right"] {
        let (mut tx, rx) = spsc::channel(64 << 10)?;
        let readiness = Readiness::new()?;
        tx.set_peer_readiness(Some(readiness.signal()));
        consumers.push((name, rx, readiness, 0u32));
        producers.push(std::thread::spawn(move || {
            for i in 0..FRAMES {
                tx.send(i, &i.to_le_bytes()).unwrap();
                if i % 1000 == 0 {
                    // Pauses, so that the loop has to sleep now and then.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }));
    }
    let start = Instant::now();
    let mut polls = 0u64;
    while consumers.iter().any(|c| c.3 < FRAMES) {
        // Take what is there, then announce on every ring that came up empty.
        let mut must_wait = false;
        let mut ready = false;
        for (_, rx, readiness, got) in consumers.iter_mut() {
            while let Ok(frame) = rx.try_recv() {
                assert_eq!(frame.tag, *got, "frames arrive in order");
                *got += 1;
            }
            if *got < FRAMES {
                match rx.poll_ready(readiness) {
                    Announced::Ready => ready = true,
                    Announced::Wait => must_wait = true,
                    Announced::RetryAfter(d) => std::thread::sleep(d),
                }
            }
        }
        if ready || !must_wait {
            // A ring filled between its drain and its announcement: take it first.
            continue;
        }
        let mut fds: Vec<rustix::event::PollFd<'_>> = consumers
            .iter()
            .map(|(_, _, r, _)| rustix::event::PollFd::new(r, rustix::event::PollFlags::IN))
            .collect();
        let slice = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        let _ = rustix::event::poll(&mut fds, Some(&slice)); // EINTR: just look again
        polls += 1;
    }
    for p in producers {
        p.join().map_err(|_| "a producer panicked")?;
    }
    let elapsed = start.elapsed();
    for (name, rx, readiness, got) in &consumers {
        let fd = readiness.as_fd();
        println!(
            "{name}: {got} frames; consumer {:?}; readiness descriptor {fd:?}",
            rx.stats()
        );
    }
    println!(
        "{} frames in {elapsed:.2?} on one thread, {polls} polls",
        2 * FRAMES
    );
    Ok(())
}
