//! Async calls (issue 17): ringbell's `AsyncClient` against its blocking `Client`, and
//! against what an async user would otherwise write — a tokio `UnixStream` server of
//! length-prefixed frames and a client that multiplexes tasks over one connection by id.
//!
//! Every client is a process of its own with tokio's default runtime (a worker per CPU,
//! threads the scheduler places); the ringbell server is the reactor with a 2-thread pool
//! answering with the request's own bytes (unpinned, in the comparison's process), the tokio
//! server a multi-threaded runtime in another process. Rounds interleave the cases.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringbell::channel::{AsyncClient, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::reactor_c1::{self, pct};

const REQ: [u8; 64] = [7u8; 64];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn write_latencies(lat: &[u32]) {
    let out: Vec<u8> = lat.iter().flat_map(|ns| ns.to_le_bytes()).collect();
    std::io::Write::write_all(&mut std::io::stdout(), &out).unwrap();
}

/// The child processes: `args[0]` is the mode, `args[1]` the socket path, then the mode's
/// numbers.
pub fn child(args: &[String]) {
    let mode = args[0].as_str();
    let path = args[1].clone();
    match mode {
        "tokio-echo-server" => tokio_echo_server(&path),
        "blocking-1" => {
            let n: usize = args[2].parse().unwrap();
            let mut c = Client::connect(&path).unwrap();
            for _ in 0..200 {
                c.call(&REQ).unwrap();
            }
            let lat: Vec<u32> = (0..n)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(c.call(&REQ).unwrap());
                    t.elapsed().as_nanos() as u32
                })
                .collect();
            write_latencies(&lat);
        }
        "async-1" => {
            let n: usize = args[2].parse().unwrap();
            let lat = runtime().block_on(async {
                let c = AsyncClient::connect(&path).await.unwrap();
                for _ in 0..200 {
                    c.call(&REQ).await.unwrap();
                }
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    std::hint::black_box(c.call(&REQ).await.unwrap());
                    lat.push(t.elapsed().as_nanos() as u32);
                }
                lat
            });
            write_latencies(&lat);
        }
        "async-64" => {
            let secs: f64 = args[2].parse().unwrap();
            let lat = runtime().block_on(async {
                let c = AsyncClient::connect(&path).await.unwrap();
                many_tasks(64, secs, move || {
                    let c = c.clone();
                    async move {
                        c.call(&REQ).await.unwrap();
                    }
                })
                .await
            });
            write_latencies(&lat);
        }
        "tokio-1" => {
            let n: usize = args[2].parse().unwrap();
            let lat = runtime().block_on(async {
                let c = Multiplexed::connect(&path).await;
                for _ in 0..200 {
                    c.call(&REQ).await;
                }
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    std::hint::black_box(c.call(&REQ).await);
                    lat.push(t.elapsed().as_nanos() as u32);
                }
                lat
            });
            write_latencies(&lat);
        }
        "tokio-64" => {
            let secs: f64 = args[2].parse().unwrap();
            let lat = runtime().block_on(async {
                let c = Arc::new(Multiplexed::connect(&path).await);
                many_tasks(64, secs, move || {
                    let c = c.clone();
                    async move {
                        c.call(&REQ).await;
                    }
                })
                .await
            });
            write_latencies(&lat);
        }
        "async-idle" => {
            // One task awaits a call the server answers after `secs`; the process's CPU
            // time over the wait, in ns.
            let secs: f64 = args[2].parse().unwrap();
            let cpu = runtime().block_on(async {
                let c = AsyncClient::connect(&path).await.unwrap();
                c.call(&REQ).await.unwrap();
                let before = process_cpu_ns();
                let t = Instant::now();
                c.call(format!("idle {secs}").as_bytes()).await.unwrap();
                let cpu = process_cpu_ns() - before;
                (cpu as f64 / t.elapsed().as_nanos() as f64 * 1e9) as u32
            });
            write_latencies(&[cpu]);
        }
        other => panic!("unknown async child {other}"),
    }
}

fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `tasks` tasks, each calling `one()` in a loop for `secs` after a short warm-up; every
/// call's round trip in ns.
async fn many_tasks<F, Fut>(tasks: usize, secs: f64, one: F) -> Vec<u32>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let one = Arc::new(one);
    for _ in 0..200 {
        one().await;
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                while Instant::now() < end {
                    let t = Instant::now();
                    one().await;
                    lat.push(t.elapsed().as_nanos() as u32);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

/// What an async user would write for requests over a Unix stream with many tasks in flight:
/// frames `[len u32][id u32][body]`, a writer shared under a lock, a reader task that hands
/// each answer to its caller's oneshot channel by id.
struct Multiplexed {
    writer: tokio::sync::Mutex<BufWriter<tokio::net::unix::OwnedWriteHalf>>,
    pending: Arc<Mutex<HashMap<u32, oneshot::Sender<Vec<u8>>>>>,
    next: std::sync::atomic::AtomicU32,
}

impl Multiplexed {
    async fn connect(path: &str) -> Self {
        let (r, w) = UnixStream::connect(path).await.unwrap().into_split();
        let pending: Arc<Mutex<HashMap<u32, oneshot::Sender<Vec<u8>>>>> = Arc::default();
        let p = pending.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                let Ok(len) = r.read_u32_le().await else {
                    return;
                };
                let id = r.read_u32_le().await.unwrap();
                let mut body = vec![0u8; len as usize - 4];
                r.read_exact(&mut body).await.unwrap();
                if let Some(tx) = p.lock().unwrap().remove(&id) {
                    let _ = tx.send(body);
                }
            }
        });
        Self {
            writer: tokio::sync::Mutex::new(BufWriter::new(w)),
            pending,
            next: Default::default(),
        }
    }

    async fn call(&self, req: &[u8]) -> Vec<u8> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        {
            let mut w = self.writer.lock().await;
            w.write_u32_le(req.len() as u32 + 4).await.unwrap();
            w.write_u32_le(id).await.unwrap();
            w.write_all(req).await.unwrap();
            w.flush().await.unwrap();
        }
        rx.await.unwrap()
    }
}

/// A tokio server of length-prefixed frames that answers each with its own bytes, in order,
/// a task per connection.
fn tokio_echo_server(path: &str) {
    runtime().block_on(async {
        let listener = UnixListener::bind(path).unwrap();
        println!("listening");
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut w = BufWriter::new(w);
                let mut buf = Vec::new();
                loop {
                    let Ok(len) = r.read_u32_le().await else {
                        return;
                    };
                    buf.resize(len as usize, 0);
                    if r.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    if w.write_u32_le(len).await.is_err() || w.write_all(&buf).await.is_err() {
                        return;
                    }
                    // Flush when no more requests are buffered: answers to a burst go out
                    // together.
                    if r.buffer().is_empty() && w.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn run_child(args: &[&str]) -> Vec<u32> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child", "async"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "async child {args:?} failed");
    out.stdout
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

fn wait_for(path: &Path) {
    let until = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(Instant::now() < until, "the server never listened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Answers with the request's own bytes, or after the seconds an `idle S` request names.
fn echo_or_idle(req: ringbell::reactor::Request, res: ringbell::reactor::Responder) {
    if let Some(s) = req.body.strip_prefix(b"idle ") {
        let secs: f64 = std::str::from_utf8(s).unwrap().parse().unwrap();
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
    let _ = res.respond(&req.body);
}

pub struct AsyncFigures {
    /// (case, p50 µs, p99 µs, calls/s or NaN)
    pub rows: Vec<(&'static str, f64, f64, f64)>,
    pub idle_cpu_percent: f64,
}

/// The cases, `rounds` rounds interleaved; each round's 1-in-flight cases make `n` calls, its
/// 64-in-flight cases call for `secs`.
pub fn run(dir: &Path, rounds: usize, n: usize, secs: f64, idle_secs: f64) -> AsyncFigures {
    // Threads the scheduler places: the server's threads and the client processes inherit
    // this thread's affinity, which the comparison pinned.
    super::unpin();
    let ring = reactor_c1::reactor_with(&dir.join("async.sock"), Some(2), echo_or_idle, None);
    let tokio_path = dir.join("tokio.sock");
    let mut tokio_server = Command::new(std::env::current_exe().unwrap())
        .args(["child", "async", "tokio-echo-server"])
        .arg(&tokio_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&tokio_path);
    let rp = ring.path.to_str().unwrap().to_string();
    let tp = tokio_path.to_str().unwrap().to_string();
    let ns = n.to_string();
    let ss = secs.to_string();
    let cases: [(&'static str, Vec<&str>, bool); 5] = [
        (
            "ringbell Client::call (blocking), 1 in flight",
            vec!["blocking-1", &rp, &ns],
            false,
        ),
        (
            "ringbell AsyncClient::call, 1 in flight",
            vec!["async-1", &rp, &ns],
            false,
        ),
        (
            "tokio UnixStream, length-prefixed, 1 in flight",
            vec!["tokio-1", &tp, &ns],
            false,
        ),
        (
            "ringbell AsyncClient::call, 64 tasks on one connection",
            vec!["async-64", &rp, &ss],
            true,
        ),
        (
            "tokio UnixStream, 64 tasks multiplexed on one connection",
            vec!["tokio-64", &tp, &ss],
            true,
        ),
    ];
    let mut lat: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (k, (_, args, _)) in cases.iter().enumerate() {
            lat[k].extend(run_child(args));
        }
    }
    let idle = run_child(&["async-idle", &rp, &idle_secs.to_string()]);
    let _ = tokio_server.kill();
    let _ = tokio_server.wait();
    ring.finish();
    super::pin(0);
    let rows = cases
        .iter()
        .zip(&mut lat)
        .map(|((name, _, timed), l)| {
            let rate = match timed {
                true => l.len() as f64 / (secs * rounds as f64),
                false => f64::NAN,
            };
            (*name, pct(l, 0.5), pct(l, 0.99), rate)
        })
        .collect();
    AsyncFigures {
        rows,
        idle_cpu_percent: f64::from(idle[0]) / 1e9 * 100.0,
    }
}
