//! One reactor serving shared-memory and socket-transport clients at once (`DualServer`),
//! with real processes: four client processes of each transport and an async client call
//! concurrently and each get their own answers; a server idle in its `poll(2)` is woken at
//! once by either transport's request and by a worker's finished answer (the median call
//! after an idle gap stays far below the server's 50 ms slice, which it would approach if a
//! ring of a shared-memory client did not reach the poll).

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ringbell::channel::{AsyncClient, Client, DualServer, ServerConfig};
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

use common::{child_command, child_role, watchdog};

const SHM_ENV: &str = "RINGBELL_TEST_SHM";
const SOCK_ENV: &str = "RINGBELL_TEST_SOCK";
const CALLS: u32 = 2000;

/// Not a test by itself: the server and client processes.
#[test]
fn process_main() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "server" => {
            let shm = PathBuf::from(std::env::var_os(SHM_ENV).unwrap());
            let sock = PathBuf::from(std::env::var_os(SOCK_ENV).unwrap());
            let server = DualServer::bind(&shm, &sock, ServerConfig::new()).unwrap();
            let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
                if let Some(us) = req.body.strip_prefix(b"sleep") {
                    let us: u64 = std::str::from_utf8(&us[..8]).unwrap().parse().unwrap();
                    std::thread::sleep(Duration::from_micros(us));
                }
                let _ = res.respond(&req.body);
            })
            .with_executor(ThreadPool::new(2));
            reactor.run().unwrap();
        }
        "client" => {
            let path = PathBuf::from(std::env::var_os(SHM_ENV).unwrap());
            let mut c = Client::connect(&path).unwrap();
            let me = std::process::id();
            for i in 0..CALLS {
                let req = format!("{me}:{i}:{}", "x".repeat((i % 97) as usize));
                let got = c
                    .call_timeout(req.as_bytes(), Duration::from_secs(30))
                    .unwrap_or_else(|e| {
                        panic!("call {i} (socket {}): {e}", c.is_socket_transport())
                    });
                assert_eq!(got, req.as_bytes());
            }
            println!("@transport {}", c.is_socket_transport());
        }
        _ => {}
    }
}

struct Running {
    process: common::KillOnDrop,
    shm: PathBuf,
    sock: PathBuf,
}

fn start(name: &str) -> Running {
    let d = std::env::temp_dir().join(format!("ringbell-dual-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (shm, sock) = (d.join("shm.sock"), d.join("plain.sock"));
    let child = child_command("process_main", "server", &[])
        .env(SHM_ENV, &shm)
        .env(SOCK_ENV, &sock)
        .spawn()
        .unwrap();
    for p in [&shm, &sock] {
        common::wait_until_serving(p);
    }
    Running {
        process: common::KillOnDrop { child, dir: d },
        shm,
        sock,
    }
}

#[test]
fn one_reactor_serves_shared_memory_and_socket_clients_at_once() {
    let _w = watchdog();
    let server = start("both");
    let clients: Vec<(bool, Child)> = (0..8)
        .map(|k| {
            let socket = k % 2 == 1;
            let path = if socket { &server.sock } else { &server.shm };
            let child = child_command("process_main", "client", &[])
                .env(SHM_ENV, path)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            (socket, child)
        })
        .collect();
    // An async client on the shared-memory path meanwhile.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = AsyncClient::connect(&server.shm).await.unwrap();
        let tasks: Vec<_> = (0..16u32)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0..500u32 {
                        let req = [t.to_le_bytes(), i.to_le_bytes()].concat();
                        assert_eq!(c.call(&req).await.unwrap(), req);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for (socket, child) in clients {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a client failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("@transport {socket}")),
            "a client of the {} path: {text}",
            if socket { "socket" } else { "shared-memory" }
        );
    }
}

/// Calls made after idle gaps (the server asleep in its poll): the median must be far below
/// the slice, whichever transport the call came on and whether a worker answered it.
#[test]
fn an_idle_dual_server_wakes_at_once_for_either_transport() {
    let _w = watchdog();
    let server = start("idle");
    let mut shm = Client::connect(&server.shm).unwrap();
    let mut sock = Client::connect(&server.sock).unwrap();
    assert!(!shm.is_socket_transport() && sock.is_socket_transport());
    for (name, c) in [("shared memory", &mut shm), ("socket", &mut sock)] {
        // Served inline, and by a pool worker (its answer comes back through the waker).
        for body in [&b"ping"[..], &b"sleep00000200worker"[..]] {
            let m = common::median_call_after_idle_gaps(c, body);
            assert!(
                m < Duration::from_millis(10),
                "{name}, {}: median call after an idle gap {m:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

/// CPU time of process `pid` (user + system), from `/proc/PID/stat`.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name's closing parenthesis: fields 3.. ; utime and stime are 14, 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// A shared-memory client that shuts down its end of its pair in the server's readiness set
/// (the server's end would read end-of-file for good, and a `poll` on it return at once) is
/// detached; the dual server does not spin; the other clients are served throughout.
#[test]
fn a_client_that_shuts_down_its_readiness_socket_is_detached_and_the_server_does_not_spin() {
    let _w = watchdog();
    let server = start("hostile");
    let mut hostile = Client::connect(&server.shm).unwrap();
    let mut good = Client::connect(&server.sock).unwrap();
    assert_eq!(hostile.call(b"before").unwrap(), b"before");
    ringbell::testing::shut_down_server_readiness(&hostile);
    let pid = server.process.child.id();
    let (cpu0, t0) = (cpu_of(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(1000));
    let share = (cpu_of(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.3,
        "the idle server used {:.0} % of a core",
        share * 100.0
    );
    for i in 0..20u32 {
        let body = i.to_le_bytes();
        assert_eq!(
            good.call_timeout(&body, Duration::from_secs(5)).unwrap(),
            body
        );
    }
    let end = hostile.call_timeout(b"after", Duration::from_secs(5));
    assert!(
        matches!(end, Err(ringbell::channel::CallError::Disconnected)),
        "the hostile client is detached: {end:?}"
    );
}
