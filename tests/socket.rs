//! The socket transport: the same reactor and handlers over length-prefixed frames on the
//! Unix socket. Pipelining and responses larger than the socket's buffer, the in-flight
//! limit, a hostile client's oversized frame (only its connection ends), and a client
//! process killed mid-call (detached; the others go on). Ordering over the socket is in
//! `tests/ordering.rs`; a supervised socket server's death in `tests/supervisor.rs`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringbell::channel::{
    AnyServer, CallError, Client, ServerConfig, SocketServer, Status, Transport, TransportKind,
};
use ringbell::reactor::{Reactor, ReactorStats, Request, Responder, StopHandle, ThreadPool};
use ringbell::wire::{CLIENT_HELLO_LEN, CLIENT_HELLO_MAGIC, HELLO_LEN};

use common::{child_command, child_role, watchdog};

const T: Duration = Duration::from_secs(20);

fn sock_path(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringbell-sock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("s.sock")
}

/// Echoes; `big N` answers N bytes; `slow` sleeps 300 ms first.
fn handler(req: Request, res: Responder) {
    if let Some(n) = req.body.strip_prefix(b"big ") {
        let n: usize = std::str::from_utf8(n).unwrap().parse().unwrap();
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let _ = res.respond_vec(body);
        return;
    }
    if req.body == b"slow" {
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = res.respond(&req.body);
}

fn serve(
    path: &PathBuf,
    cfg: ServerConfig,
) -> (
    StopHandle,
    std::thread::JoinHandle<std::io::Result<ReactorStats>>,
) {
    let server = AnyServer::bind(path, cfg.transport(TransportKind::Socket)).unwrap();
    assert_eq!(server.kind(), TransportKind::Socket);
    let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(2));
    let stop = reactor.stop_handle();
    (stop, std::thread::spawn(move || reactor.run()))
}

#[test]
fn pipelined_requests_and_responses_larger_than_the_socket_buffer_arrive_whole_and_in_order() {
    let _w = watchdog();
    let path = sock_path("pipeline");
    let cfg = ServerConfig::new().response_ring(4 << 20);
    let (stop, serving) = serve(&path, cfg);
    let mut c = Client::connect(&path).unwrap();
    assert!(c.is_socket_transport());
    assert_eq!(c.max_response(), (4 << 20) / 2 - 8);
    let mut ids = Vec::new();
    for i in 0..40u32 {
        let req = match i % 4 {
            0 => format!("big {}", 1 << 20).into_bytes(),
            _ => i.to_le_bytes().to_vec(),
        };
        ids.push((c.send_request_timeout(&req, T).unwrap(), req));
    }
    for (id, req) in ids {
        let r = c.recv_response_timeout(T).unwrap();
        assert_eq!(r.id, id);
        assert_eq!(r.status, Status::Ok);
        if req.starts_with(b"big ") {
            assert_eq!(r.body.len(), 1 << 20);
            assert!(
                r.body
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i % 251) as u8)
            );
        } else {
            assert_eq!(r.body, req);
        }
    }
    let too_big = vec![0u8; c.max_request() + 1];
    assert!(matches!(
        c.call_timeout(&too_big, T),
        Err(CallError::TooLarge { .. })
    ));
    assert_eq!(c.call_timeout(b"still fine", T).unwrap(), b"still fine");
    stop.stop();
    serving.join().unwrap().unwrap();
}

#[test]
fn past_the_in_flight_limit_a_socket_client_is_answered_busy() {
    let _w = watchdog();
    let path = sock_path("busy");
    let (stop, serving) = serve(&path, ServerConfig::new().max_in_flight(2));
    let mut c = Client::connect(&path).unwrap();
    assert_eq!(c.max_in_flight(), 2);
    for _ in 0..5 {
        c.send_request_timeout(b"slow", T).unwrap();
    }
    let statuses: Vec<Status> = (0..5)
        .map(|_| c.recv_response_timeout(T).unwrap().status)
        .collect();
    let busy = statuses.iter().filter(|s| **s == Status::Busy).count();
    assert!(busy >= 1, "{statuses:?}");
    assert!(statuses.contains(&Status::Ok), "{statuses:?}");
    stop.stop();
    serving.join().unwrap().unwrap();
}

#[test]
fn a_frame_longer_than_the_limit_ends_that_connection_only() {
    let _w = watchdog();
    let path = sock_path("hostile");
    let (stop, serving) = serve(&path, ServerConfig::new());
    let mut good = Client::connect(&path).unwrap();
    // A hand-made client: a proper hello, then a header announcing 1 GiB.
    let mut raw = UnixStream::connect(&path).unwrap();
    raw.set_read_timeout(Some(T)).unwrap();
    let mut hello = [0u8; CLIENT_HELLO_LEN];
    hello[..4].copy_from_slice(&CLIENT_HELLO_MAGIC);
    raw.write_all(&hello).unwrap();
    let mut greeting = [0u8; HELLO_LEN];
    raw.read_exact(&mut greeting).unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&(1u32 << 30).to_ne_bytes());
    frame.extend_from_slice(&0u32.to_ne_bytes());
    raw.write_all(&frame).unwrap();
    // The server closes that connection (read returns 0), and serves the other.
    let mut rest = Vec::new();
    let t = Instant::now();
    let n = raw.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "the server answered a violation");
    assert!(t.elapsed() < T);
    assert_eq!(good.call_timeout(b"hello", T).unwrap(), b"hello");
    stop.stop();
    serving.join().unwrap().unwrap();
}

/// Not a test by itself: a client process that sends `slow` and waits (it is killed).
#[test]
fn doomed_client_main() {
    if child_role().as_deref() != Some("doomed") {
        return;
    }
    let mut c = Client::connect(std::env::var("RINGBELL_TEST_SOCKET").unwrap()).unwrap();
    println!("@connected");
    let _ = c.call(b"slow");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_socket_client_killed_mid_call_is_detached_and_the_others_go_on() {
    let _w = watchdog();
    let path = sock_path("killed");
    let server = SocketServer::bind(&path, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(2));
    let stop = reactor.stop_handle();
    let (conns_tx, conns_rx) = std::sync::mpsc::channel::<bool>();
    let serving = std::thread::spawn(move || {
        // Polls the reactor by hand so that the test can read the connection count.
        let mut most = 0;
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            reactor.poll();
            let n = reactor.transport().connections();
            most = most.max(n);
            if most >= 2 && n == 1 {
                let _ = conns_tx.send(true);
                break;
            }
        }
        let _ = conns_tx.send(false);
        reactor.run()
    });
    let mut survivor = Client::connect(&path).unwrap();
    let mut doomed = child_command("doomed_client_main", "doomed", &[])
        .env("RINGBELL_TEST_SOCKET", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = doomed.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("@connected") {
        assert_eq!(out.read(&mut byte).unwrap(), 1, "the client died early");
        seen.push(byte[0]);
    }
    std::thread::sleep(Duration::from_millis(50));
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    assert!(
        conns_rx.recv_timeout(T * 2).unwrap(),
        "the killed client was never detached"
    );
    assert_eq!(survivor.call_timeout(b"after", T).unwrap(), b"after");
    stop.stop();
    serving.join().unwrap().unwrap();
}

/// With no doorbell to hand a slow inline run over, the reactor keeps other clients off its
/// own thread's handler runs: a 300 ms request of one client does not hold up another's.
#[test]
fn a_slow_request_of_one_socket_client_does_not_hold_up_another() {
    let _w = watchdog();
    let path = sock_path("slow");
    let (stop, serving) = serve(&path, ServerConfig::new());
    let mut fast = Client::connect(&path).unwrap();
    let mut slow = Client::connect(&path).unwrap();
    // Both connected (the server learns of the second at its next housekeeping).
    assert_eq!(fast.call_timeout(b"warm", T).unwrap(), b"warm");
    assert_eq!(slow.call_timeout(b"warm", T).unwrap(), b"warm");
    slow.send_request_timeout(b"slow", T).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // the slow one is running
    let t = Instant::now();
    assert_eq!(fast.call_timeout(b"quick", T).unwrap(), b"quick");
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_millis(200),
        "the quick call waited {waited:?} behind the slow one"
    );
    assert_eq!(slow.recv_response_timeout(T).unwrap().body, b"slow");
    stop.stop();
    serving.join().unwrap().unwrap();
}
