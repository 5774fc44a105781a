//! The reactor's cost and its scaling, measured interleaved in one run (not a timed test).
//!
//! `cargo bench --bench reactor` (add `-- --quick` for a short run).
//!
//! 1. **One request in flight.** One client thread calls three servers in turn, in batches,
//!    round after round: a plain serial loop written over `Server`'s own API, the reactor in
//!    serial mode, and the reactor with a thread pool (whose inline fast path should make it
//!    cost what the plain loop costs). Handler: a few hundred nanoseconds of hashing. Reports
//!    p50/p99 per server and the ratios of the p50s (target: reactor ≤ 1.1× the plain loop).
//! 2. **Scaling with a blocking handler** (it sleeps 1 ms): one client keeps 1, 2, 4, 8
//!    requests in flight; the serial reactor against the reactor with an 8-thread pool.
//!
//! Prints `ratio reactor_c1_vs_serial VALUE` (reactor with pool, p50, over the plain loop).

use std::time::Instant;

use ringbell::channel::Client;

#[path = "common/reactor_c1.rs"]
mod reactor_c1;
use reactor_c1::{T, client_process, one_in_flight, reactor};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        return client_process(&args[1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let dir = std::env::temp_dir().join(format!("ringbell-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rounds, batch) = if quick { (10, 1000) } else { (40, 5000) };

    // 1. One request in flight, interleaved.
    let mut client = std::process::Command::new(std::env::current_exe().unwrap());
    client.arg("client");
    let res = one_in_flight(&dir, rounds, batch, client);
    println!(
        "one request in flight: {rounds} rounds x {batch} calls per server, interleaved; \
         client on CPU 0, servers on CPU 1"
    );
    println!("{:<26} {:>9} {:>9}", "server", "p50 µs", "p99 µs");
    let p50: Vec<f64> = res.iter().map(|r| r.1).collect();
    for (name, a, b) in &res {
        println!("{name:<26} {a:>9.3} {b:>9.3}");
    }

    // 2. Scaling with a handler that blocks for 1 ms.
    let secs = if quick { 0.3 } else { 1.0 };
    println!();
    println!("a handler that sleeps 1 ms; one client with N requests in flight; {secs} s each");
    println!("{:<26} {:>4} {:>10}", "server", "N", "calls/s");
    for (name, pool) in [
        ("reactor, serial mode", None),
        ("reactor + 8-thread pool", Some(8)),
    ] {
        let s = reactor(&dir.join("sleepy.sock"), pool, true);
        let mut c = Client::connect(&s.path).unwrap();
        for window in [1usize, 2, 4, 8] {
            let start = Instant::now();
            let mut done = 0u64;
            let mut out = 0usize;
            while start.elapsed().as_secs_f64() < secs {
                while out < window {
                    c.send_request_timeout(&[7u8; 64], T).unwrap();
                    out += 1;
                }
                c.recv_response_timeout(T).unwrap().into_result().unwrap();
                out -= 1;
                done += 1;
            }
            while out > 0 {
                c.recv_response_timeout(T).unwrap();
                out -= 1;
            }
            println!("{name:<26} {window:>4} {:>10.0}", done as f64 / secs);
        }
        drop(c);
        s.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("ratio reactor_c1_vs_serial {:.3}", p50[2] / p50[0]);
    println!(
        "ratio reactor_serial_mode_c1_vs_serial {:.3}",
        p50[1] / p50[0]
    );
}
