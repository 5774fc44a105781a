//! `ringbell bench`: two real processes, short phases, every run bounded.

mod common;

use std::time::{Duration, Instant};

use common::{Json, ringbell, ringbell_with, watchdog};

#[test]
fn bench_json_reports_positive_figures() {
    let _watchdog = watchdog();
    let run = ringbell(&["bench", "--seconds", "0.2", "--json"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one JSON object on one line");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("ring_bytes").u64(), 64 << 10);
    assert_eq!(j.get("frame_bytes").u64(), 64);
    assert_ne!(
        j.get("parent_pid").u64(),
        j.get("peer_pid").u64(),
        "two processes"
    );
    for key in [
        "round_trips",
        "rtt_p50_ns",
        "rtt_p99_ns",
        "rtt_min_ns",
        "rtt_max_ns",
        "frames",
    ] {
        assert!(j.get(key).u64() > 0, "{key}: {j:?}");
    }
    for key in [
        "round_trip_seconds",
        "stream_seconds",
        "frames_per_second",
        "megabytes_per_second",
    ] {
        assert!(j.get(key).f64() > 0.0, "{key}: {j:?}");
    }
    let (min, p50, p99, max) = (
        j.get("rtt_min_ns").u64(),
        j.get("rtt_p50_ns").u64(),
        j.get("rtt_p99_ns").u64(),
        j.get("rtt_max_ns").u64(),
    );
    assert!(min <= p50 && p50 <= p99 && p99 <= max, "{j:?}");
    // Each phase ran about as long as asked (bounded above by the slowest machine we allow).
    assert!(j.get("stream_seconds").f64() >= 0.2, "{j:?}");
    assert!(j.get("round_trip_seconds").f64() >= 0.2, "{j:?}");
}

#[test]
fn bench_prints_a_table_for_other_sizes() {
    let _watchdog = watchdog();
    let run = ringbell(&["bench", "--seconds", "0.1", "--size", "1K", "--ring", "1M"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[0].contains("two 1 MiB SPSC rings"), "{}", lines[0]);
    assert!(lines[0].contains("1024-byte frames"), "{}", lines[0]);
    assert!(lines[2].starts_with("round trip") && lines[2].contains("p99"));
    assert!(lines[3].starts_with("throughput") && lines[3].contains("MB/s"));
}

#[test]
fn bench_refuses_a_frame_above_the_ring_cap() {
    let _watchdog = watchdog();
    let run = ringbell(&["bench", "--size", "40K", "--ring", "64K"]);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("above the frame cap"), "{run:?}");
    let run = ringbell(&["bench", "--ring", "1000"]);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("ringbell: cannot create a 1000-byte ring"),
        "{run:?}"
    );
}

#[test]
fn a_peer_that_dies_mid_run_is_an_error_not_a_hang() {
    let _watchdog = watchdog();
    for after in ["1", "5000"] {
        let start = Instant::now();
        let run = ringbell_with(
            &["bench", "--seconds", "5"],
            &[("RINGBELL_BENCH_PEER_EXIT_AFTER", after)],
        );
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains("exit status: 3"), "{run:?}");
        assert!(run.stderr.contains("died"), "{run:?}");
        // Seen between sleep slices, long before the 10 s call timeout or the 5 s phase.
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
    }
}
