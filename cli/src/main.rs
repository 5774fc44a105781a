//! `ringbell`: look at ringbell regions and servers from the outside, and measure two
//! processes talking through ringbell rings.
//!
//! Install with `cargo install --path cli`. Every subcommand prints a table, or with `--json`
//! one JSON object on stdout. An error is one line, `ringbell: <what>`, on stderr with exit
//! status 1; a command line it does not understand prints the usage on stderr with status 2.
//! Bad input never panics it.
//!
//! # `ringbell inspect --fd PID:FD`
//!
//! The header of a region another process has open as descriptor `FD` (the command opens
//! `/proc/PID/fd/FD` read-only), or in any file (`--fd PATH`). It never writes the region and
//! never faults on it: see [`region`] for how. A sealed memfd is read live; any other file is
//! copied first. A header that fails its checks is still printed (table or JSON), then the
//! check's error follows on stderr, with exit status 1.
//!
//! ```text
//! $ ringbell inspect --fd 17001:3
//! region       /proc/17001/fd/3
//! read         live (read-only mapping of a sealed memfd)
//! length       66560 bytes
//! magic        ok
//! ready        yes
//! version      1
//! kind         spsc
//! capacity     65536 bytes
//! frame cap    32760 bytes
//! flags        0x4 (asymmetric fences)
//! registry     0 slots
//! producer     held by owner 0x4000000100004267 (pid 16999)
//! consumer     held by owner 0x4000000100004269 (pid 17001)
//! write pos    333970144
//! read pos     333970072
//! used         72 of 65536 bytes
//! data bell    sequence 7136, waiters 0
//! space bell   sequence 0, waiters 0
//! reservation  0x0
//! verdict      consistent
//! ```
//!
//! With `--json`, one flat object: `region`, `live`, `reads`, `len`, `magic_ok`, `ready`,
//! `version`, `kind`, `capacity`, `frame_cap`, `flags`, `registry_slots`, `producer`
//! (`free`, `held` or `closed`), `producer_owner`, `producer_pid`, the same three for
//! `consumer`, `write_pos`, `read_pos`, `used`, `data_bell_sequence`, `data_bell_waiters`,
//! `space_bell_sequence`, `space_bell_waiters`, `bell_sequence`, `bell_waiters`,
//! `reservation`, `consistent` and `error` (`null` when consistent).
//!
//! # `ringbell inspect PATH`
//!
//! If `PATH` is a Unix socket, the statistics of the channel server listening there (see
//! [`server`]); otherwise the region in the file `PATH`, as with `--fd`.
//!
//! # `ringbell bench`
//!
//! Round trips, then one-way throughput, between this process and a child process (this same
//! executable) over two SPSC rings in sealed memfds; see [`mod@bench`].
//!
//! ```text
//! $ ringbell bench --seconds 2
//! ringbell bench: 2 processes (pids 16999 and 17001), two 64 KiB SPSC rings in sealed memfds, 64-byte frames
//! phase            count   seconds  result
//! round trip     4663457     2.000  p50 0.25 µs  p99 0.50 µs  (min 0.14 µs, max 5493.27 µs)
//! throughput    30730752     2.000  15.37 M frames/s  983.4 MB/s
//! ```
//!
//! With `--json`, one flat object: `parent_pid`, `peer_pid`, `ring_bytes`, `frame_bytes`,
//! `round_trips`, `round_trip_seconds`, `rtt_p50_ns`, `rtt_p99_ns`, `rtt_min_ns`,
//! `rtt_max_ns`, `frames`, `stream_seconds`, `frames_per_second`, `megabytes_per_second`.

// Unsafe code is confined to `region` (the read-only mapping, the header copy), which opts in.
#![deny(unsafe_code)]

mod args;
mod bench;
mod histogram;
mod json;
mod region;
mod server;

use std::io::Write as _;
use std::process::ExitCode;

use args::{Command, Target, USAGE};

/// An error to report as one line, `ringbell: <what>`, with exit status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

/// A [`Failure`] with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        $crate::Failure(format!($($arg)*))
    };
}

/// What a subcommand produced: text for stdout (possibly empty) and, if it failed, the
/// error to report after it. A subcommand can do both: `inspect` prints an inconsistent
/// region and then fails.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Everything to print on stdout.
    pub stdout: String,
    /// The error to print on stderr, making the exit status 1.
    pub failure: Option<Failure>,
}

impl Outcome {
    /// Nothing printed, just the error.
    pub fn failed(failure: Failure) -> Self {
        Self {
            stdout: String::new(),
            failure: Some(failure),
        }
    }

    /// `stdout`, no error.
    pub fn printed(stdout: String) -> Self {
        Self {
            stdout,
            failure: None,
        }
    }
}

impl From<Result<String, Failure>> for Outcome {
    fn from(r: Result<String, Failure>) -> Self {
        match r {
            Ok(stdout) => Self::printed(stdout),
            Err(failure) => Self::failed(failure),
        }
    }
}

fn main() -> ExitCode {
    let command = match args::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprint!("ringbell: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Help => Outcome::printed(USAGE.to_owned()),
        Command::Version => Outcome::printed(format!("ringbell {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Inspect {
            target: Target::Region(path),
            json,
        } => region::run(&path, json),
        Command::Inspect {
            target: Target::Path(path),
            json,
        } => {
            use std::os::unix::fs::FileTypeExt as _;
            match std::fs::metadata(&path) {
                Ok(meta) if meta.file_type().is_socket() => server::run(&path, json).into(),
                _ => region::run(&path, json),
            }
        }
        Command::Bench(opts) => bench::run(&opts).into(),
        Command::BenchPeer {
            requests,
            responses,
        } => bench::peer(requests, responses)
            .map(|()| String::new())
            .into(),
    };
    report(outcome)
}

/// Prints an outcome and turns it into the exit status.
fn report(outcome: Outcome) -> ExitCode {
    let mut failure = outcome.failure;
    if !outcome.stdout.is_empty() {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out
            .write_all(outcome.stdout.as_bytes())
            .and_then(|()| out.flush())
        {
            // Not a panic, as `println!` would make it (a closed pipe, a full disk).
            failure.get_or_insert(fail!("cannot write the output: {e}"));
        }
    }
    match failure {
        None => ExitCode::SUCCESS,
        Some(Failure(what)) => {
            // A single line, whatever the message holds.
            let what = what.replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "ringbell: {what}");
            ExitCode::FAILURE
        }
    }
}
