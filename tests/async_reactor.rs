//! The reactor as a task of a tokio runtime (`Reactor::run_async`, `TokioExecutor`), with
//! client processes: on a current-thread runtime (no thread of its own, none for the
//! handlers) it serves four client processes, answering some requests from tasks the handler
//! spawns; after idle gaps a call is answered at once (the median stays far below the 50 ms
//! slice it would approach if a client's ring did not reach the awaiting task); it stops on
//! its stop handle; a transport without a wait descriptor is refused.

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use ringbell::channel::{Client, Server, ServerConfig, SocketServer};
use ringbell::reactor::{Reactor, Request, Responder, TokioExecutor};

use common::{child_command, child_role, watchdog};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";
const CALLS: u32 = 1000;

/// Not a test by itself: the client processes. Calls `CALLS` times, pausing now and then so
/// that the server's task goes to wait; half the requests are answered from a task.
#[test]
fn client_main() {
    let Some(_role) = child_role() else { return };
    let path = PathBuf::from(std::env::var_os(PATH_ENV).unwrap());
    let mut c = Client::connect(&path).unwrap();
    let me = std::process::id();
    for i in 0..CALLS {
        let kind = if i % 2 == 0 { "async" } else { "plain" };
        let req = format!("{kind}:{me}:{i}");
        let got = c
            .call_timeout(req.as_bytes(), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(got, req.as_bytes());
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringbell-areactor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Inside a runtime: a reactor task serving `path` with `handler` and the runtime's tasks
/// as its executor; its stop handle and its task.
fn serve(
    path: &std::path::Path,
) -> (
    ringbell::reactor::StopHandle,
    tokio::task::JoinHandle<std::io::Result<ringbell::reactor::ReactorStats>>,
) {
    let server = Server::bind(path, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(server, handler).with_executor(TokioExecutor::current());
    let stop = reactor.stop_handle();
    (stop, tokio::spawn(async move { reactor.run_async().await }))
}

/// Answers from a spawned task for `async:` requests, inline otherwise.
fn handler(req: Request, res: Responder) {
    if req.body.starts_with(b"async:") {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(100)).await;
            let _ = res.respond(&req.body);
        });
    } else {
        let _ = res.respond(&req.body);
    }
}

#[test]
fn a_reactor_task_on_a_current_thread_runtime_serves_client_processes() {
    let _w = watchdog();
    let d = dir("serve");
    let path = d.join("s.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = rt.block_on(async {
        let (stop, serving) = serve(&path);
        let clients: Vec<Child> = (0..4)
            .map(|_| {
                child_command("client_main", "client", &[])
                    .env(PATH_ENV, &path)
                    .spawn()
                    .unwrap()
            })
            .collect();
        // The clients run in their own processes; this thread serves them meanwhile.
        let waiting = tokio::task::spawn_blocking(move || {
            clients
                .into_iter()
                .map(|mut c| c.wait().unwrap().success())
                .collect::<Vec<_>>()
        });
        let ok = waiting.await.unwrap();
        assert!(ok.iter().all(|&s| s), "a client failed: {ok:?}");
        stop.stop();
        serving.await.unwrap().unwrap()
    });
    assert_eq!(stats.requests, 4 * u64::from(CALLS));
    assert_eq!(stats.sent, stats.requests);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_idle_reactor_task_is_woken_at_once_by_a_client() {
    let _w = watchdog();
    let d = dir("idle");
    let path = d.join("s.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (stop, serving) = serve(&path);
        let p = path.clone();
        let medians = tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(&p).unwrap();
            let mut median = |body: &[u8]| common::median_call_after_idle_gaps(&mut c, body);
            // Inline, and from a spawned task (its answer wakes the reactor's task through the
            // waker, which writes the readiness socket).
            (median(b"plain:x"), median(b"async:x"))
        })
        .await
        .unwrap();
        for (what, m) in [("inline", medians.0), ("from a task", medians.1)] {
            assert!(
                m < Duration::from_millis(10),
                "answered {what}: median call after an idle gap {m:?}"
            );
        }
        stop.stop();
        serving.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn run_async_refuses_a_transport_without_a_wait_descriptor() {
    let _w = watchdog();
    let d = dir("refuse");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = SocketServer::bind(d.join("s.sock"), ServerConfig::new()).unwrap();
        let mut reactor = Reactor::new(server, handler);
        let e = reactor.run_async().await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    });
    let _ = std::fs::remove_dir_all(&d);
}

/// CPU time of this process, for the spin check below.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A client that shuts down its end of its pair in the server's readiness set (which would
/// leave the server's end readable for good, and a reactor awaiting it spinning) is
/// detached, the reactor does not spin, and another client is served throughout.
#[test]
fn a_client_that_shuts_down_its_readiness_socket_is_detached_and_nothing_spins() {
    let _w = watchdog();
    let d = dir("hostile");
    let path = d.join("s.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (stop, serving) = serve(&path);
        let p = path.clone();
        let (hostile_end, cpu_share) = tokio::task::spawn_blocking(move || {
            let mut hostile = Client::connect(&p).unwrap();
            let mut good = Client::connect(&p).unwrap();
            assert_eq!(hostile.call(b"plain:before").unwrap(), b"plain:before");
            ringbell::testing::shut_down_server_readiness(&hostile);
            // Idle now: the reactor awaits its readiness set, whose member for the hostile
            // client reads end-of-file from here on.
            let (cpu0, t0) = (process_cpu(), Instant::now());
            std::thread::sleep(Duration::from_millis(500));
            let share = (process_cpu() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
            for i in 0..20u32 {
                let body = format!("plain:{i}");
                assert_eq!(
                    good.call_timeout(body.as_bytes(), Duration::from_secs(5))
                        .unwrap(),
                    body.as_bytes()
                );
            }
            let end = hostile.call_timeout(b"plain:after", Duration::from_secs(5));
            (end, share)
        })
        .await
        .unwrap();
        // A reactor spinning on the ended socket would take a whole core.
        assert!(
            cpu_share < 0.3,
            "the process used {:.0} % of a core while idle",
            cpu_share * 100.0
        );
        assert!(
            matches!(hostile_end, Err(ringbell::channel::CallError::Disconnected)),
            "the hostile client is detached: {hostile_end:?}"
        );
        stop.stop();
        serving.await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&d);
}
