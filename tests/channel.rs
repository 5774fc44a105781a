//! Channels and the reactor, with real processes where the issue asks for them.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbell::channel::BindError;
use ringbell::channel::{
    AnyServer, CallError, ChannelError, Client, Server, ServerConfig, StatsError, Status,
    TransportKind,
};
use ringbell::reactor::{
    Handler, Reactor, ReactorStats, Request, Responder, StopHandle, ThreadPool,
};
use ringbell::testing;

use common::{child_command, child_role};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";
const T: Duration = Duration::from_secs(20);

/// A fresh directory for one test's socket.
fn sock_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringbell-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

struct Serving {
    stop: StopHandle,
    thread: JoinHandle<std::io::Result<ReactorStats>>,
}

impl Serving {
    fn finish(self) -> ReactorStats {
        self.stop.stop();
        self.thread.join().unwrap().unwrap()
    }
}

fn serve(path: &PathBuf, cfg: ServerConfig, workers: usize, handler: impl Handler) -> Serving {
    let server = Server::bind(path, cfg).unwrap();
    let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(workers));
    let stop = reactor.stop_handle();
    let thread = std::thread::spawn(move || reactor.run());
    Serving { stop, thread }
}

fn echo(req: Request, res: Responder) {
    res.respond(&req.body).unwrap();
}

#[test]
fn the_socket_file_is_private_and_a_live_server_is_not_replaced() {
    let _watchdog = common::watchdog();
    use std::os::unix::fs::PermissionsExt;
    let path = sock_path("mode");
    let server = Server::bind(&path, ServerConfig::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(
        Server::bind(&path, ServerConfig::default()),
        Err(ChannelError::Bind(BindError::InUse))
    ));
    assert!(matches!(
        Server::bind_replacing(&path, ServerConfig::default()),
        Err(ChannelError::Bind(BindError::InUse))
    ));
    drop(server);
    assert!(!path.exists(), "a server removes its socket file");
}

#[test]
fn a_stale_socket_file_is_reported_and_replaced_only_on_request() {
    let _watchdog = common::watchdog();
    let path = sock_path("stale");
    // A socket file nobody listens on, as a crashed server leaves it.
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(l);
    assert!(path.exists());
    assert!(matches!(
        Server::bind(&path, ServerConfig::default()),
        Err(ChannelError::Bind(BindError::Stale))
    ));
    let s = Server::bind_replacing(&path, ServerConfig::default()).unwrap();
    assert_eq!(s.path(), path);
    // The replacement listens: a connect is no longer refused.
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    std::fs::write(path.with_extension("txt"), b"x").unwrap();
    assert!(matches!(
        Server::bind(path.with_extension("txt"), ServerConfig::default()),
        Err(ChannelError::Bind(BindError::NotASocket))
    ));
}

#[test]
fn sixteen_pipelined_requests_finished_in_reverse_arrive_in_request_order() {
    let _watchdog = common::watchdog();
    let path = sock_path("reverse");
    let parked: Arc<Mutex<Vec<(Request, Responder)>>> = Arc::default();
    let p = parked.clone();
    let serving = serve(
        &path,
        ServerConfig::default(),
        2,
        move |req: Request, res| {
            let mut v = p.lock().unwrap();
            v.push((req, res));
            if v.len() == 16 {
                // Answer the last first.
                while let Some((req, res)) = v.pop() {
                    let mut body = req.body.clone();
                    body.extend_from_slice(b"!");
                    res.respond(&body).unwrap();
                }
            }
        },
    );
    let mut client = Client::connect(&path).unwrap();
    let ids: Vec<_> = (0..16u32)
        .map(|i| client.send_request(&i.to_le_bytes()).unwrap())
        .collect();
    for (i, id) in ids.into_iter().enumerate() {
        let r = client.recv_response_timeout(T).unwrap();
        assert_eq!(r.id, id);
        assert_eq!(r.status, Status::Ok);
        let mut want = (i as u32).to_le_bytes().to_vec();
        want.push(b'!');
        assert_eq!(r.body, want);
    }
    let stats = serving.finish();
    assert_eq!(stats.requests, 16);
    assert_eq!(stats.sent, 16);
    assert!(stats.dispatched >= 15, "{stats:?}");
}

#[test]
fn a_lone_client_is_served_inline_and_a_busy_server_dispatches() {
    let _watchdog = common::watchdog();
    let path = sock_path("inline");
    let serving = serve(&path, ServerConfig::default(), 2, echo);
    let mut client = Client::connect(&path).unwrap();
    for i in 0..200u32 {
        assert_eq!(
            client.call_timeout(&i.to_le_bytes(), T).unwrap(),
            i.to_le_bytes()
        );
    }
    // Pipelined: later requests find earlier ones in flight or pending.
    let ids: Vec<_> = (0..64u32)
        .map(|i| client.send_request(&i.to_le_bytes()).unwrap())
        .collect();
    for id in ids {
        assert_eq!(client.recv_response_timeout(T).unwrap().id, id);
    }
    let stats = serving.finish();
    assert_eq!(stats.requests, 264);
    assert!(
        stats.inline >= 200,
        "one call at a time runs inline: {stats:?}"
    );
    assert_eq!(stats.inline + stats.dispatched + stats.busy, stats.requests);
}

#[test]
fn past_its_credits_a_request_is_answered_busy_in_order() {
    let _watchdog = common::watchdog();
    let path = sock_path("busy");
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let p = parked.clone();
    let cfg = ServerConfig::default().max_in_flight(4);
    let serving = serve(&path, cfg, 1, move |_req: Request, res| {
        p.lock().unwrap().push(res);
    });
    let mut client = Client::connect(&path).unwrap();
    assert_eq!(client.max_in_flight(), 4);
    let ids: Vec<_> = (0..10)
        .map(|_| client.send_request(b"x").unwrap())
        .collect();
    // Wait until the four admitted requests are with the handler, then answer them.
    let start = Instant::now();
    while parked.lock().unwrap().len() < 4 {
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    for res in parked.lock().unwrap().drain(..) {
        res.respond(b"ok").unwrap();
    }
    let got: Vec<_> = (0..10)
        .map(|_| client.recv_response_timeout(T).unwrap())
        .collect();
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(got[..4].iter().all(|r| r.status == Status::Ok));
    assert!(got[4..].iter().all(|r| r.status == Status::Busy), "{got:?}");
    assert_eq!(
        Client::connect(&path)
            .unwrap()
            .call_timeout(b"y", Duration::from_millis(200)),
        Err(CallError::Timeout),
        "the handler parks everything",
    );
    parked.lock().unwrap().clear();
    assert_eq!(serving.finish().busy, 6);
}

#[test]
fn a_panicking_handler_and_a_dropped_responder_become_error_responses() {
    let _watchdog = common::watchdog();
    let path = sock_path("panic");
    let serving = serve(
        &path,
        ServerConfig::default(),
        2,
        |req: Request, res: Responder| match req.body.as_slice() {
            b"panic" => panic!("handler panics on purpose (test)"),
            b"drop" => drop(res),
            b"fail" => res.fail(b"no"),
            _ => res.respond(b"fine").unwrap(),
        },
    );
    let mut client = Client::connect(&path).unwrap();
    assert_eq!(
        client.call_timeout(b"panic", T),
        Err(CallError::Server(Status::Panicked))
    );
    assert_eq!(
        client.call_timeout(b"drop", T),
        Err(CallError::Server(Status::Dropped))
    );
    assert_eq!(
        client.call_timeout(b"fail", T),
        Err(CallError::Server(Status::Failed))
    );
    assert_eq!(client.call_timeout(b"ok", T).unwrap(), b"fine");
    // The same, pipelined so that the handler runs on the pool.
    let ids: Vec<_> = [&b"panic"[..], b"ok", b"drop", b"ok"]
        .iter()
        .map(|b| client.send_request(b).unwrap())
        .collect();
    let statuses: Vec<_> = ids
        .iter()
        .map(|id| {
            let r = client.recv_response_timeout(T).unwrap();
            assert_eq!(r.id, *id);
            r.status
        })
        .collect();
    assert_eq!(
        statuses,
        [Status::Panicked, Status::Ok, Status::Dropped, Status::Ok]
    );
    let stats = serving.finish();
    assert_eq!(stats.panicked, 2);
}

#[test]
fn oversized_requests_and_responses_are_typed_errors_at_once() {
    let _watchdog = common::watchdog();
    let path = sock_path("large");
    let cfg = ServerConfig::default()
        .request_ring(4096)
        .response_ring(4096)
        .max_request(100)
        .max_response(200);
    let serving = serve(&path, cfg, 1, |req: Request, res: Responder| {
        let n = req.body.len() * 3;
        if let Err(e) = res.respond(&vec![7u8; n]) {
            assert_eq!((e.len, e.max), (n, 200));
        }
    });
    let mut client = Client::connect(&path).unwrap();
    assert_eq!(client.max_request(), 100);
    assert_eq!(client.max_response(), 200);
    let start = Instant::now();
    assert_eq!(
        client.call(&[0u8; 101]),
        Err(CallError::TooLarge { len: 101, max: 100 })
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(client.call_timeout(&[0u8; 66], T).unwrap().len(), 198);
    assert_eq!(
        client.call_timeout(&[0u8; 67], T),
        Err(CallError::Server(Status::TooLarge))
    );
    assert_eq!(client.call_timeout(&[0u8; 1], T).unwrap(), [7, 7, 7]);
    serving.finish();
}

#[test]
fn a_client_that_never_reads_does_not_stall_another() {
    let _watchdog = common::watchdog();
    let path = sock_path("slow");
    let cfg = ServerConfig::default()
        .request_ring(4096)
        .response_ring(4096)
        .stash_bytes(16 << 10);
    let serving = serve(&path, cfg, 2, echo);
    let mut lazy = Client::connect(&path).unwrap();
    // Fill everything the lazy client can: its response ring, its stash, its request ring.
    let mut sent = Vec::new();
    let start = Instant::now();
    let mut last_sent = Instant::now();
    // Until the server stops taking its requests for 200 ms (try_send never reads responses).
    while last_sent.elapsed() < Duration::from_millis(200) {
        match lazy.try_send_request(&[1u8; 500]) {
            Ok(id) => {
                sent.push(id);
                last_sent = Instant::now();
            }
            Err(CallError::Full) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < T, "the lazy client is never stopped");
    }
    assert!(sent.len() > 20, "sent {}", sent.len());
    let mut busy = Client::connect(&path).unwrap();
    for i in 0..1000u32 {
        assert_eq!(
            busy.call_timeout(&i.to_le_bytes(), T).unwrap(),
            i.to_le_bytes()
        );
    }
    // The lazy client still gets an answer to every request, in order: the handler's, or
    // `Busy` for those past its credits.
    for id in sent {
        let r = lazy.recv_response_timeout(T).unwrap();
        assert_eq!(r.id, id);
        match r.status {
            Status::Ok => assert_eq!(r.body, [1u8; 500]),
            Status::Busy => assert!(r.body.is_empty()),
            s => panic!("{s:?}"),
        }
    }
    let stats = serving.finish();
    assert!(stats.paused >= 1, "{stats:?}");
    assert!(stats.max_stash_bytes <= (16 << 10) + 64 * 600, "{stats:?}");
}

#[test]
fn four_client_processes_get_exactly_their_own_responses() {
    let _watchdog = common::watchdog();
    const N: u32 = 1000;
    if child_role().as_deref() == Some("client") {
        let path = std::env::var(PATH_ENV).unwrap();
        let mut c = Client::connect(&path).unwrap();
        let me = std::process::id();
        let mut pending = std::collections::VecDeque::new();
        let mut next = 0u32;
        let mut done = 0u32;
        while done < N {
            while next < N && pending.len() < 8 {
                let mut body = me.to_le_bytes().to_vec();
                body.extend_from_slice(&next.to_le_bytes());
                body.resize(8 + (next as usize * 7) % 300, next as u8);
                pending.push_back((c.send_request(&body).unwrap(), body));
                next += 1;
            }
            let r = c.recv_response_timeout(T).unwrap();
            let (id, body) = pending.pop_front().unwrap();
            assert_eq!(r.id, id);
            assert_eq!(r.status, Status::Ok);
            // The server prepends the pid the kernel gave it for this connection.
            assert_eq!(r.body[..4], me.to_le_bytes());
            assert_eq!(r.body[4..], body[..]);
            done += 1;
        }
        return;
    }
    let path = sock_path("four");
    let seen: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    let s = seen.clone();
    let serving = serve(
        &path,
        ServerConfig::default(),
        2,
        move |req: Request, res: Responder| {
            *s.lock().unwrap().entry(req.client.pid).or_default() += 1;
            let mut out = req.client.pid.to_le_bytes().to_vec();
            out.extend_from_slice(&req.body);
            res.respond_vec(out).unwrap();
        },
    );
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            child_command(
                "four_client_processes_get_exactly_their_own_responses",
                "client",
                &[],
            )
            .env(PATH_ENV, &path)
            .spawn()
            .unwrap()
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let stats = serving.finish();
    let seen = seen.lock().unwrap();
    for pid in pids {
        assert_eq!(seen.get(&pid), Some(&(N as usize)), "{seen:?}");
    }
    assert_eq!(stats.requests, 4 * N as u64);
    assert_eq!(stats.sent, 4 * N as u64);
}

#[test]
fn a_client_killed_with_requests_in_flight_is_detached_and_others_go_on() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("victim") {
        let path = std::env::var(PATH_ENV).unwrap();
        let mut c = Client::connect(&path).unwrap();
        for _ in 0..8 {
            c.send_request(b"slow").unwrap();
        }
        println!("sent");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let path = sock_path("victim");
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let serving = serve(
        &path,
        ServerConfig::default(),
        2,
        move |req: Request, res: Responder| {
            if req.body == b"slow" {
                st.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
            res.respond(&req.body).unwrap();
        },
    );
    let mut child = child_command(
        "a_client_killed_with_requests_in_flight_is_detached_and_others_go_on",
        "victim",
        &[],
    )
    .env(PATH_ENV, &path)
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while started.load(Ordering::SeqCst) < 2 {
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut other = Client::connect(&path).unwrap();
    for i in 0..100u32 {
        assert_eq!(
            other.call_timeout(&i.to_le_bytes(), T).unwrap(),
            i.to_le_bytes()
        );
    }
    // Give the reactor a slice to see the hang-up.
    std::thread::sleep(Duration::from_millis(200));
    let stats = serving.finish();
    assert!(stats.detached >= 1, "{stats:?}");
}

#[test]
fn a_killed_server_fails_every_waiting_call_within_200ms() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
        let server = Server::bind(&path, ServerConfig::default()).unwrap();
        // Answers "quick" at once and never answers "hang": callers wait until it dies.
        let parked: Mutex<Vec<Responder>> = Mutex::new(Vec::new());
        let mut reactor = Reactor::new(server, move |req: Request, res: Responder| {
            if req.body == b"hang" {
                parked.lock().unwrap().push(res);
            } else {
                res.respond(b"quick").unwrap();
            }
        });
        reactor.run().unwrap();
        return;
    }
    let path = sock_path("server-dies");
    let mut server = child_command(
        "a_killed_server_fails_every_waiting_call_within_200ms",
        "server",
        &[],
    )
    .env(PATH_ENV, &path)
    .spawn()
    .unwrap();
    let start = Instant::now();
    let mut clients = Vec::new();
    while clients.len() < 3 {
        match Client::connect(&path) {
            Ok(c) => clients.push(c),
            Err(_) => {
                assert!(start.elapsed() < T, "server never came up");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    assert_eq!(clients[0].call_timeout(b"quick", T).unwrap(), b"quick");
    let killed = Arc::new(Mutex::new(None::<Instant>));
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let killed = killed.clone();
            std::thread::spawn(move || {
                let r = c.call(b"hang");
                let at = Instant::now();
                (
                    r,
                    at.duration_since(killed.lock().unwrap().expect("killed first")),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    {
        let mut k = killed.lock().unwrap();
        server.kill().unwrap();
        *k = Some(Instant::now());
    }
    server.wait().unwrap();
    for w in waiting {
        let (r, after) = w.join().unwrap();
        assert_eq!(r, Err(CallError::Disconnected));
        assert!(
            after < Duration::from_millis(200),
            "noticed after {after:?}"
        );
    }
}

#[test]
fn the_client_limit_is_configurable_and_refusals_are_typed() {
    let _watchdog = common::watchdog();
    let path = sock_path("limit");
    let serving = serve(&path, ServerConfig::default().max_clients(3), 1, echo);
    let mut clients: Vec<_> = (0..3).map(|_| Client::connect(&path).unwrap()).collect();
    assert!(matches!(
        Client::connect(&path),
        Err(ChannelError::ServerFull)
    ));
    for c in &mut clients {
        assert_eq!(c.call_timeout(b"a", T).unwrap(), b"a");
    }
    drop(clients.pop());
    // The server frees the slot when it sees the hang-up (within a slice).
    let start = Instant::now();
    let mut again = loop {
        match Client::connect(&path) {
            Ok(c) => break c,
            Err(ChannelError::ServerFull) => {
                assert!(start.elapsed() < T);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(again.call_timeout(b"b", T).unwrap(), b"b");
    serving.finish();
}

#[test]
fn stop_drains_what_is_in_flight() {
    let _watchdog = common::watchdog();
    let path = sock_path("stop");
    let serving = serve(
        &path,
        ServerConfig::default(),
        2,
        |req: Request, res: Responder| {
            std::thread::sleep(Duration::from_millis(20));
            res.respond(&req.body).unwrap();
        },
    );
    let mut client = Client::connect(&path).unwrap();
    let ids: Vec<_> = (0..6u8)
        .map(|i| client.send_request(&[i]).unwrap())
        .collect();
    // Let the reactor take them all, then stop it while handlers sleep.
    std::thread::sleep(Duration::from_millis(30));
    serving.stop.stop();
    let stats = serving.thread.join().unwrap().unwrap();
    for (i, id) in ids.into_iter().enumerate() {
        let r = client.recv_response_timeout(T).unwrap();
        assert_eq!((r.id, r.body), (id, vec![i as u8]));
    }
    assert_eq!(stats.sent, 6, "{stats:?}");
    assert_eq!(stats.discarded, 0);
}

#[test]
fn a_timed_out_call_does_not_confuse_the_next() {
    let _watchdog = common::watchdog();
    let path = sock_path("late");
    let serving = serve(
        &path,
        ServerConfig::default(),
        1,
        |req: Request, res: Responder| {
            if req.body == b"slow" {
                std::thread::sleep(Duration::from_millis(300));
            }
            res.respond(&req.body).unwrap();
        },
    );
    let mut client = Client::connect(&path).unwrap();
    assert_eq!(
        client.call_timeout(b"slow", Duration::from_millis(50)),
        Err(CallError::Timeout)
    );
    assert_eq!(client.call_timeout(b"next", T).unwrap(), b"next");
    serving.finish();
}

#[test]
fn a_call_after_pipelined_requests_keeps_their_responses_for_later() {
    let _watchdog = common::watchdog();
    let path = sock_path("mixed");
    let serving = serve(&path, ServerConfig::default(), 2, echo);
    let mut client = Client::connect(&path).unwrap();
    let a = client.send_request(b"a").unwrap();
    let b = client.send_request(b"b").unwrap();
    assert_eq!(client.call_timeout(b"c", T).unwrap(), b"c");
    assert_eq!(client.call_timeout(b"d", T).unwrap(), b"d");
    let ra = client.recv_response_timeout(T).unwrap();
    let rb = client.recv_response_timeout(T).unwrap();
    assert_eq!((ra.id, ra.body.as_slice()), (a, &b"a"[..]));
    assert_eq!((rb.id, rb.body.as_slice()), (b, &b"b"[..]));
    assert_eq!(client.try_recv_response(), Err(CallError::Empty));
    serving.finish();
}

#[test]
fn pipelining_past_every_buffer_without_reading_does_not_deadlock() {
    let _watchdog = common::watchdog();
    let path = sock_path("overpipe");
    let cfg = ServerConfig::default()
        .request_ring(1024)
        .response_ring(1024)
        .stash_bytes(0)
        .max_in_flight(4096);
    let serving = serve(&path, cfg, 1, echo);
    let mut client = Client::connect(&path).unwrap();
    let ids: Vec<_> = (0..2000u32)
        .map(|i| client.send_request_timeout(&i.to_le_bytes(), T).unwrap())
        .collect();
    for (i, id) in ids.into_iter().enumerate() {
        let r = client.recv_response_timeout(T).unwrap();
        assert_eq!((r.id, r.status), (id, Status::Ok));
        assert_eq!(r.body, (i as u32).to_le_bytes());
    }
    let stats = serving.finish();
    assert!(stats.paused > 0, "{stats:?}");
}

#[test]
fn a_stopped_reactor_disconnects_its_clients_and_refuses_new_ones() {
    let _watchdog = common::watchdog();
    let path = sock_path("shutdown");
    let serving = serve(&path, ServerConfig::default(), 1, echo);
    let mut client = Client::connect(&path).unwrap();
    assert_eq!(client.call_timeout(b"x", T).unwrap(), b"x");
    serving.finish();
    let start = Instant::now();
    assert_eq!(client.call_timeout(b"y", T), Err(CallError::Disconnected));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(Client::connect(&path).is_err());
    assert!(!path.exists());
}

#[test]
fn a_client_that_scribbles_on_the_shared_doorbell_header_does_not_lock_out_others() {
    let _watchdog = common::watchdog();
    let path = sock_path("scribble");
    let serving = serve(&path, ServerConfig::default(), 1, echo);
    let hostile = Client::connect(&path).unwrap();
    // The hostile client maps the server's bell region (fd 0 of the greeting) writable: wipe
    // its header as a hostile process could.
    testing::scribble_on_bell_header(&hostile);
    let mut other = Client::connect(&path).unwrap();
    assert_eq!(other.call_timeout(b"ok", T).unwrap(), b"ok");
    drop(hostile);
    serving.finish();
}

#[test]
fn clients_of_another_user_are_refused_unless_allowed() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("nobody") {
        // Become uid/gid 65534 on this thread (the one that connects: the kernel records the
        // connecting task's credentials).
        rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(65534)).unwrap();
        rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
        let path = std::env::var(PATH_ENV).unwrap();
        match Client::connect(&path) {
            Ok(mut c) => {
                let answer = c.call_timeout(b"hi", T);
                // Statistics are for the server's own user only, even among admitted ones.
                let stats = match c.server_stats(T) {
                    Err(StatsError::Refused(_)) => "refused".to_owned(),
                    other => format!("{other:?}"),
                };
                println!("verdict: admitted {answer:?} stats {stats}");
            }
            Err(ChannelError::NotAdmitted) => println!("verdict: refused"),
            Err(e) => println!("verdict: error {e}"),
        }
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let verdict = |cfg: ServerConfig, name: &str, open_file: bool| {
        use std::os::unix::fs::PermissionsExt;
        let path = sock_path(name);
        std::fs::set_permissions(
            path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let serving = serve(&path, cfg, 1, echo);
        if open_file {
            // Let the other user reach the socket at all: the uid check is what is tested.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let out = child_command(
            "clients_of_another_user_are_refused_unless_allowed",
            "nobody",
            &[],
        )
        .env(PATH_ENV, &path)
        .output()
        .unwrap();
        assert!(out.status.success());
        serving.finish();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The harness prints the test's name on the same line.
        match text.find("verdict: ") {
            Some(at) => text[at + 9..].lines().next().unwrap_or("").to_owned(),
            None => text,
        }
    };
    // The socket file (0600, root's) keeps another user out before any check of ours.
    let v = verdict(ServerConfig::default(), "uid-file", false);
    assert!(
        v.contains("Permission denied") || v.contains("permission denied"),
        "{v}"
    );
    // With the file opened up, the server refuses the uid itself...
    assert_eq!(
        verdict(ServerConfig::default(), "uid-refused", true),
        "refused"
    );
    // ...unless it admits it.
    let v = verdict(
        ServerConfig::default().allow_uid(65534),
        "uid-allowed",
        true,
    );
    assert!(v.starts_with("admitted Ok("), "{v}");
    assert!(v.ends_with("stats refused"), "{v}");
}

/// A statistics request is answered by the reactor, never by the handler, in the
/// connection's turn: it lists every connection with its identity, rings and what the
/// reactor holds for it.
#[test]
fn server_stats_list_connections_and_never_reach_the_handler() {
    let _watchdog = common::watchdog();
    for transport in [TransportKind::SharedMemory, TransportKind::Socket] {
        let path = sock_path(&format!("stats-{transport:?}"));
        let handled = Arc::new(AtomicUsize::new(0));
        let held: Arc<Mutex<Vec<Responder>>> = Arc::default();
        let (h, k) = (handled.clone(), held.clone());
        let server = AnyServer::bind(&path, ServerConfig::default().transport(transport)).unwrap();
        let mut reactor = Reactor::new(server, move |req: Request, res: Responder| {
            h.fetch_add(1, Ordering::SeqCst);
            match &req.body[..] {
                b"hold" => k.lock().unwrap().push(res),
                body => res.respond(body).unwrap(),
            }
        })
        .with_executor(ThreadPool::new(2));
        let stop = reactor.stop_handle();
        let thread = std::thread::spawn(move || reactor.run());
        let mut a = Client::connect(&path).unwrap();
        for _ in 0..3 {
            assert_eq!(a.call_timeout(b"x", T).unwrap(), b"x");
        }
        let hold = a.send_request(b"hold").unwrap();
        let deadline = Instant::now() + T;
        while held.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the held request never reached the handler"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut b = Client::connect(&path).unwrap();
        let before = handled.load(Ordering::SeqCst);
        let stats = b.server_stats(T).unwrap();
        assert_eq!(handled.load(Ordering::SeqCst), before, "the handler saw it");
        assert_eq!((stats.pid, stats.requests), (std::process::id(), 4));
        assert_eq!(stats.uid, rustix::process::geteuid().as_raw());
        assert_eq!((stats.total_connections, stats.connections.len()), (2, 2));
        assert_eq!(stats.in_flight, 1);
        // The server's doorbell counters on shared memory; the socket transport has none.
        assert_eq!(
            stats.wait.is_some(),
            transport == TransportKind::SharedMemory
        );
        let slot_a = a.slot() as usize;
        let ca = stats
            .connections
            .iter()
            .find(|c| c.conn.slot == slot_a)
            .unwrap();
        assert_eq!(
            (ca.pid, ca.in_flight, ca.paused),
            (std::process::id(), 1, false)
        );
        assert_eq!(ca.transport, Some(transport));
        let age = std::time::SystemTime::now().duration_since(ca.connected.unwrap());
        assert!(age.unwrap() < T, "connected {:?}", ca.connected);
        match transport {
            TransportKind::SharedMemory => {
                let req = ca.request_ring.expect("a request ring");
                let res = ca.response_ring.expect("a response ring");
                assert!(req.capacity >= 4096 && req.used == 0, "{req:?}");
                assert!(res.capacity >= 4096 && res.used <= res.capacity, "{res:?}");
            }
            _ => assert!(ca.request_ring.is_none() && ca.response_ring.is_none()),
        }
        // Answer the held request: nothing in flight any more, and the next statistics say so.
        held.lock()
            .unwrap()
            .pop()
            .unwrap()
            .respond(b"done")
            .unwrap();
        let r = a.recv_response_timeout(T).unwrap();
        assert_eq!((r.id, &r.body[..]), (hold, &b"done"[..]));
        let after = b.server_stats(T).unwrap();
        assert_eq!((after.in_flight, after.requests, after.sent), (0, 4, 5));
        assert!(after.connections.iter().all(|c| c.in_flight == 0));
        drop((a, b));
        stop.stop();
        thread.join().unwrap().unwrap();
    }
}

/// A server buffer shorter than the next request is the caller's mistake, reported as such:
/// the request stays, the client stays attached, and a long enough buffer then takes it. It
/// used to be reported as a corrupt ring, and the innocent client was detached.
#[test]
fn a_short_request_buffer_is_reported_and_the_client_stays() {
    let _watchdog = common::watchdog();
    use ringbell::channel::RecvRequestError;
    let path = sock_path("short-buffer");
    let mut server = Server::bind(&path, ServerConfig::new()).unwrap();
    let client = std::thread::spawn({
        let path = path.clone();
        move || {
            let mut c = Client::connect(&path).unwrap();
            c.call_timeout(b"0123456789", T).unwrap()
        }
    });
    while server.clients() == 0 {
        server.accept_pending().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut short = [0u8; 4];
    let conn = loop {
        match server.try_recv_request(&mut short) {
            Err(RecvRequestError::Empty) => std::thread::sleep(Duration::from_millis(1)),
            Err(RecvRequestError::BufferTooSmall { conn, needed }) => {
                assert_eq!(needed, 10);
                break conn;
            }
            other => panic!("expected BufferTooSmall, got {other:?}"),
        }
    };
    assert_eq!(server.clients(), 1, "the client was detached");
    let mut buf = vec![0u8; server.max_request()];
    let req = server.try_recv_request(&mut buf).unwrap();
    assert_eq!((req.conn, &buf[..req.len]), (conn, &b"0123456789"[..]));
    server
        .try_send_response(req.conn, req.id, Status::Ok, b"done")
        .unwrap();
    assert_eq!(client.join().unwrap(), b"done");
}

#[test]
fn a_call_whose_deadline_is_shorter_than_a_slice_still_notices_a_killed_server() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
        let server = Server::bind(&path, ServerConfig::default()).unwrap();
        Reactor::new(server, echo).run().unwrap();
        return;
    }
    let path = sock_path("short-deadline");
    let mut server = child_command(
        "a_call_whose_deadline_is_shorter_than_a_slice_still_notices_a_killed_server",
        "server",
        &[],
    )
    .env(PATH_ENV, &path)
    .spawn()
    .unwrap();
    let start = Instant::now();
    let mut client = loop {
        match Client::connect(&path) {
            Ok(c) => break c,
            Err(_) => {
                assert!(start.elapsed() < T, "server never came up");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_eq!(client.call_timeout(b"x", T).unwrap(), b"x");
    server.kill().unwrap();
    server.wait().unwrap();
    // Each deadline ends inside the first sleep slice, so only the check made at the deadline
    // can see the hang-up: without it every call would time out against a dead server.
    for _ in 0..3 {
        assert_eq!(
            client.call_timeout(b"y", Duration::from_millis(1)),
            Err(CallError::Disconnected)
        );
    }
}

/// A response cap below the statistics' fixed part (200 bytes) refuses them with a reason
/// instead of sending a `TooLarge` answer.
#[test]
fn stats_that_cannot_fit_the_response_cap_are_refused_with_a_reason() {
    let _watchdog = common::watchdog();
    let path = sock_path("stats-small");
    let serving = serve(&path, ServerConfig::default().max_response(100), 1, echo);
    let mut c = Client::connect(&path).unwrap();
    match c.server_stats(T) {
        Err(StatsError::Refused(why)) => assert!(why.contains("response cap"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The connection goes on.
    assert_eq!(c.call_timeout(b"x", T).unwrap(), b"x");
    drop(c);
    serving.finish();
}
