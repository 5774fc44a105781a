//! `--only c`: a C client's call round trip next to the Rust client's, against one Rust
//! echo server, in one run.
//!
//! Both clients are processes of the same shape (connect, 1,000 warm-up calls, then N
//! blocking 64-byte calls timed one by one with a monotonic clock, sorted): the C one is
//! `capi/examples/client.c` built with the system's `cc` against `libringbell_c.a`, the
//! Rust one `capi/examples/rust_client.rs`. They alternate three times; the medians of
//! their p50 and p99 are printed with the ratio C ÷ Rust. Needs `cc`; without it, or if the
//! C library does not build, the section says so and is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Report;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds the C library, the Rust peers and the C client; returns the two client programs
/// and the server.
fn build() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let root = repo();
    run(Command::new("cargo")
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "ringbell-c",
            "--lib",
            "--examples",
        ])
        .current_dir(&root))?;
    let lib = root.join("target/release");
    let out = root.join("target/c");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let client = out.join("client-bench");
    run(Command::new("cc")
        .args([
            "-std=c11",
            "-O2",
            "-Icapi/include",
            "capi/examples/client.c",
        ])
        .arg(lib.join("libringbell_c.a"))
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
            "-o",
        ])
        .arg(&client)
        .current_dir(&root))?;
    Ok((
        client,
        lib.join("examples/rust_client"),
        lib.join("examples/rust_echo_server"),
    ))
}

/// The p50 and p99 a client printed ("..., p50 N ns, p99 M ns").
fn parse(line: &str) -> Option<(f64, f64)> {
    let after = |key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((after("p50 ")?, after("p99 ")?))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn section_c(quick: bool, r: &mut Report) {
    println!(
        "\n-- C client vs Rust client: 64 B echo calls, one at a time, to one Rust server (reactor + 2-thread pool), unpinned"
    );
    let (c_client, rust_client, server) = match build() {
        Ok(p) => p,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    // Processes the scheduler places: they inherit this thread's affinity, which the
    // comparison pinned (every process on CPU 0 made each call ~8× slower).
    super::unpin();
    let figures = measure(quick, &c_client, &rust_client, &server);
    super::pin(0);
    let Some((c50, c99, r50, r99)) = figures else {
        return;
    };
    println!(
        "{:<62} {:>9.0} ns {:>9.0} ns",
        "C client (libringbell_c.a), rb_client_call", c50, c99
    );
    println!(
        "{:<62} {:>9.0} ns {:>9.0} ns",
        "Rust client, Client::call_timeout", r50, r99
    );
    println!("{:<62} {:>12.2}", "C ÷ Rust, p50", c50 / r50);
    r.ratio("c_client_over_rust_p50", c50 / r50);
    r.figure("c_client_p50_ns", c50 as u64);
    r.figure("rust_client_p50_ns", r50 as u64);
}

/// The medians of the C and the Rust client's p50 and p99 over the rounds, or `None` if a
/// client could not run (said).
fn measure(
    quick: bool,
    c_client: &Path,
    rust_client: &Path,
    server: &Path,
) -> Option<(f64, f64, f64, f64)> {
    let dir = std::env::temp_dir().join(format!("ringbell-compare-c-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("s.sock");
    let mut srv = match Command::new(server)
        .arg(&sock)
        .arg("600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: {e}");
            return None;
        }
    };
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let n = if quick { "20000" } else { "300000" };
    let (mut c50, mut c99, mut r50, mut r99) = (vec![], vec![], vec![], vec![]);
    let rounds = if quick { 1 } else { 3 };
    for _ in 0..rounds {
        for (prog, p50, p99) in [
            (&c_client, &mut c50, &mut c99),
            (&rust_client, &mut r50, &mut r99),
        ] {
            match run(Command::new(prog).arg(&sock).args(["--bench", n])).map(|o| parse(&o)) {
                Ok(Some((a, b))) => {
                    p50.push(a);
                    p99.push(b);
                }
                Ok(None) => println!("skipped: {} printed no figures", prog.display()),
                Err(e) => println!("skipped: {e}"),
            }
        }
    }
    let _ = srv.kill();
    let _ = srv.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if c50.is_empty() || r50.is_empty() {
        return None;
    }
    Some((
        median(&mut c50),
        median(&mut c99),
        median(&mut r50),
        median(&mut r99),
    ))
}
