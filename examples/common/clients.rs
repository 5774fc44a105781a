//! What the client-process examples share (`demo`, `ordering`): starting a server process,
//! running N client processes that each print their round trips, and the figures over them.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error>;

/// Calls per second and round-trip percentiles over every client of one point.
pub struct Point {
    pub calls_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Starts `exe` with `args` (a server that binds `path`), runs `f` once its socket file is
/// there, then kills the server and removes the socket file, whatever `f` returned.
pub fn with_server(
    exe: &Path,
    args: &[&str],
    path: &Path,
    f: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let mut server = start_server(exe, args, path)?;
    let result = f();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(path);
    result
}

/// Starts `exe` with `args` (a server that binds `path`) and waits, at most 10 s, for its
/// socket file.
fn start_server(exe: &Path, args: &[&str], path: &Path) -> Result<Child, Error> {
    let mut server = Command::new(exe).args(args).spawn()?;
    let up = Instant::now();
    while !path.exists() {
        if up.elapsed() > Duration::from_secs(10) {
            let _ = server.kill();
            return Err("the server did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(server)
}

/// Writes round trips (ns, `u32` little-endian) to stdout: a client's report.
pub fn report(lat: &[u32]) -> Result<(), Error> {
    let out: Vec<u8> = lat.iter().flat_map(|ns| ns.to_le_bytes()).collect();
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(())
}

/// Runs `clients` processes of `exe` with `args`, each calling for `secs` seconds and then
/// reporting its round trips; the figures over all of them.
pub fn run_clients(exe: &Path, args: &[&str], clients: usize, secs: f64) -> Result<Point, Error> {
    let mut children: Vec<Child> = (0..clients)
        .map(|_| Command::new(exe).args(args).stdout(Stdio::piped()).spawn())
        .collect::<Result<_, _>>()?;
    let mut all = Vec::new();
    for ch in &mut children {
        let mut bytes = Vec::new();
        ch.stdout
            .take()
            .ok_or("no stdout")?
            .read_to_end(&mut bytes)?;
        if !ch.wait()?.success() {
            return Err("a client failed".into());
        }
        all.extend(
            bytes
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
        );
    }
    if all.is_empty() {
        return Err("no calls completed".into());
    }
    all.sort_unstable();
    let pct = |p: f64| f64::from(all[((all.len() - 1) as f64 * p) as usize]) / 1000.0;
    Ok(Point {
        calls_per_s: all.len() as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}
