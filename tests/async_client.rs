//! The async channel client (feature `tokio`) against a reactor server in another process:
//! 64 tasks × 1,000 calls on one connection each get exactly their own answers without ever
//! drawing `Busy` (the client waits at the server's `max_in_flight`), on shared memory and
//! on the socket transport; calls cancelled at random points (before sending, while queued
//! at the limit, while driving, while waiting) leave the connection correct, down to no
//! request left in flight; a killed server fails every awaiting task within 200 ms.
//!
//! The server is this test binary re-executed (`server_main`); its handler echoes, and
//! sleeps first for a body that starts with `sleep` and names microseconds.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringbell::channel::AnyServer;
use ringbell::channel::{AsyncClient, CallError, Client, ServerConfig, Status, TransportKind};
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

use common::{Rng, child_command, child_role, watchdog};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";
const TRANSPORT_ENV: &str = "RINGBELL_TEST_TRANSPORT";
const IN_FLIGHT_ENV: &str = "RINGBELL_TEST_IN_FLIGHT";

/// Not a test by itself: the body of the re-executed server processes.
#[test]
fn server_main() {
    let Some(_role) = child_role() else { return };
    let path = PathBuf::from(std::env::var_os(PATH_ENV).unwrap());
    let kind: TransportKind = std::env::var(TRANSPORT_ENV).unwrap().parse().unwrap();
    let in_flight: usize = std::env::var(IN_FLIGHT_ENV).unwrap().parse().unwrap();
    let cfg = ServerConfig::new().transport(kind).max_in_flight(in_flight);
    let server = AnyServer::bind(&path, cfg).unwrap();
    let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
        if let Some(us) = req.body.strip_prefix(b"sleep") {
            let us: u64 = std::str::from_utf8(&us[..8]).unwrap().parse().unwrap();
            std::thread::sleep(Duration::from_micros(us));
        }
        let _ = res.respond(&req.body);
    })
    .with_executor(ThreadPool::new(2));
    println!("serving");
    reactor.run().unwrap();
}

struct ServerProcess {
    process: common::KillOnDrop,
    path: PathBuf,
}

fn start_server(name: &str, kind: &str, in_flight: usize) -> ServerProcess {
    let d = std::env::temp_dir().join(format!("ringbell-async-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("s.sock");
    let child = child_command("server_main", "serve", &[])
        .env(PATH_ENV, &path)
        .env(TRANSPORT_ENV, kind)
        .env(IN_FLIGHT_ENV, in_flight.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until_serving(&path);
    ServerProcess {
        process: common::KillOnDrop { child, dir: d },
        path,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A request body of task `task`'s call `i`, of a varying length.
fn body(task: u32, i: u32, rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&task.to_le_bytes());
    b.extend_from_slice(&i.to_le_bytes());
    let pad = rng.below(200) as usize;
    b.extend((0..pad).map(|k| (k as u8).wrapping_add(task as u8)));
    b
}

fn many_tasks_each_get_their_own_answers(kind: &str, calls: u32) {
    let server = start_server(&format!("many-{kind}"), kind, 8);
    let rt = runtime();
    rt.block_on(async {
        let client = AsyncClient::connect(&server.path).await.unwrap();
        assert_eq!(client.max_in_flight(), 8);
        let tasks: Vec<_> = (0..64u32)
            .map(|task| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut rng = Rng::new(u64::from(task) + 1);
                    for i in 0..calls {
                        let req = body(task, i, &mut rng);
                        match client.call(&req).await {
                            Ok(answer) => assert_eq!(answer, req, "task {task} call {i}"),
                            Err(CallError::Server(Status::Busy)) => {
                                panic!("task {task} call {i} drew Busy: the limit was not kept")
                            }
                            Err(e) => panic!("task {task} call {i}: {e}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(client.in_flight(), 0);
    });
}

#[test]
fn sixty_four_tasks_times_a_thousand_calls_each_get_their_own_answers() {
    let _w = watchdog();
    many_tasks_each_get_their_own_answers("shm", 1000);
}

#[test]
fn sixty_four_tasks_on_the_socket_transport_each_get_their_own_answers() {
    let _w = watchdog();
    many_tasks_each_get_their_own_answers("socket", 200);
}

/// Drops call futures at random points — unpolled, after a random delay (sent and waiting,
/// queued at the limit, or driving) by a timeout, by a `select!` or by aborting their task,
/// or never — while other tasks call on; afterwards the
/// connection answers correctly and, once a last call is answered, no request is in flight
/// (the server answers each connection in order, so every abandoned answer came first and
/// was discarded).
fn cancelled_calls_leave_the_connection_correct(kind: &str, rounds: u32) {
    let server = start_server(&format!("cancel-{kind}"), kind, 4);
    let rt = runtime();
    rt.block_on(async {
        let client = AsyncClient::connect(&server.path).await.unwrap();
        let tasks: Vec<_> = (0..8u32)
            .map(|task| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut rng = Rng::new(0xC0FFEE + u64::from(task));
                    let mut kept = 0u32;
                    for i in 0..rounds {
                        let sleep_us = rng.below(300);
                        let mut req = format!("sleep{sleep_us:08}").into_bytes();
                        req.extend_from_slice(&body(task, i, &mut rng));
                        let t = Duration::from_micros(rng.below(400));
                        match rng.below(6) {
                            // Made and dropped without a poll: nothing is sent.
                            0 => drop(client.call(&req)),
                            // Dropped at a random point of its wait.
                            1 => {
                                let _ = tokio::time::timeout(t, client.call(&req)).await;
                            }
                            // Dropped by a `select!` whose other branch won: unlike a
                            // timeout, the call may be dropped after it was woken (to drive,
                            // say) and before it ran again.
                            2 => {
                                tokio::select! {
                                    _ = client.call(&req) => {}
                                    _ = tokio::time::sleep(t) => {}
                                }
                            }
                            // Aborted in a task of its own.
                            3 => {
                                let c = client.clone();
                                let r = req.clone();
                                let h = tokio::spawn(async move { c.call(&r).await });
                                tokio::time::sleep(t).await;
                                h.abort();
                                let _ = h.await;
                            }
                            // Kept: its answer must be its own.
                            _ => {
                                assert_eq!(client.call(&req).await.unwrap(), req);
                                kept += 1;
                            }
                        }
                    }
                    kept
                })
            })
            .collect();
        let mut kept = 0;
        for t in tasks {
            kept += t.await.unwrap();
        }
        assert!(kept > 0);
        let last = b"sleep00000000last".to_vec();
        assert_eq!(client.call(&last).await.unwrap(), last);
        assert_eq!(
            client.in_flight(),
            0,
            "an abandoned request was left in flight"
        );
    });
}

#[test]
fn cancelled_calls_at_random_points_leave_the_connection_correct() {
    let _w = watchdog();
    cancelled_calls_leave_the_connection_correct("shm", 400);
}

#[test]
fn cancelled_calls_on_the_socket_transport_leave_the_connection_correct() {
    let _w = watchdog();
    cancelled_calls_leave_the_connection_correct("socket", 150);
}

fn killed_server_fails_awaiting_tasks(kind: &str) {
    let mut server = start_server(&format!("kill-{kind}"), kind, 16);
    let rt = runtime();
    rt.block_on(async {
        let client = AsyncClient::connect(&server.path).await.unwrap();
        // Eight calls the server sits on for a minute.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    let r = client.call(b"sleep60000000").await;
                    (r, Instant::now())
                })
            })
            .collect();
        // Let them all be sent and waiting.
        let until = Instant::now() + Duration::from_secs(20);
        while client.in_flight() < 8 {
            assert!(Instant::now() < until, "the calls were never sent");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let killed = Instant::now();
        server.process.child.kill().unwrap();
        for t in tasks {
            let (r, at) = t.await.unwrap();
            assert!(
                matches!(r, Err(CallError::Disconnected)),
                "a killed server gives Disconnected, not {r:?}"
            );
            let took = at.duration_since(killed);
            assert!(took < Duration::from_millis(200), "noticed after {took:?}");
        }
        // Later calls fail at once too.
        assert!(client.call(b"again").await.is_err());
        assert!(client.is_disconnected());
    });
}

#[test]
fn a_killed_server_fails_every_awaiting_task_within_200_ms() {
    let _w = watchdog();
    killed_server_fails_awaiting_tasks("shm");
}

#[test]
fn a_killed_socket_server_fails_every_awaiting_task_within_200_ms() {
    let _w = watchdog();
    killed_server_fails_awaiting_tasks("socket");
}

/// The blocking and the async client on one server, one after the other: a blocking call
/// made while the async client's driver waits is answered, and the async client is not
/// confused by what it does not own.
#[test]
fn an_async_and_a_blocking_client_share_a_server() {
    let _w = watchdog();
    let server = start_server("mixed", "shm", 8);
    let rt = runtime();
    let path = Arc::new(server.path.clone());
    rt.block_on(async {
        let client = AsyncClient::connect(&*path).await.unwrap();
        let slow = {
            let client = client.clone();
            tokio::spawn(async move { client.call(b"sleep00050000slow").await })
        };
        let p = path.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(&*p).unwrap();
            (0..100u32)
                .map(|i| c.call(&i.to_le_bytes()).unwrap())
                .collect::<Vec<_>>()
        });
        let answers = blocking.await.unwrap();
        assert_eq!(answers.len(), 100);
        assert_eq!(slow.await.unwrap().unwrap(), b"sleep00050000slow");
    });
}

/// A waker that records that it was woken.
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Flag {
    fn new() -> Arc<Self> {
        Arc::new(Self(false.into()))
    }
    fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// The driver's hand-off, step by step: three calls wait (the first drives); the driver is
/// dropped, which wakes one of the others to drive; that one is dropped before it runs (a
/// `select!` or an abort can do that) — and the last call must be woken to drive, or nobody
/// would ever look at the ring for it.
#[test]
fn dropping_the_woken_successor_hands_the_driving_on() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let _w = watchdog();
    let server = start_server("handoff", "shm", 8);
    let rt = runtime();
    rt.block_on(async {
        let client = AsyncClient::connect(&server.path).await.unwrap();
        let flags = [Flag::new(), Flag::new(), Flag::new()];
        let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
        let reqs: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("sleep00200000-{i}").into_bytes())
            .collect();
        let mut calls: Vec<Option<std::pin::Pin<Box<_>>>> = reqs
            .iter()
            .map(|r| Some(Box::pin(client.call(r))))
            .collect();
        for (k, call) in calls.iter_mut().enumerate() {
            let mut cx = Context::from_waker(&wakers[k]);
            assert!(call.as_mut().unwrap().as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(client.in_flight(), 3);
        for f in &flags {
            f.take();
        }
        // The first call drove: dropping it wakes one of the others.
        calls[0] = None;
        let woken: Vec<usize> = (1..3).filter(|&k| flags[k].take()).collect();
        assert_eq!(woken.len(), 1, "one successor is woken: {woken:?}");
        let (gone, last) = (woken[0], 3 - woken[0]);
        // Dropped before it ran: the last one must be told to drive.
        calls[gone] = None;
        assert!(
            flags[last].take(),
            "dropping the woken successor left nobody to drive"
        );
        let answer = calls[last].take().unwrap().await;
        assert_eq!(answer.unwrap(), reqs[last]);
    });
}
