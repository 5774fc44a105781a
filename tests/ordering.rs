//! Per-key ordering in the reactor, with client processes: read-your-writes across clients,
//! a counter hammered by several clients checked against a serial model, overlap that must
//! be observed (reads of one key, writes of different keys), and a panicking write that
//! releases its key.
//!
//! The server is the test process (a reactor with a thread pool on a thread); the clients are
//! this test binary re-executed. Requests are `[op, key, ...]`: op `r` reads, `w` writes,
//! `u` is unordered.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringbell::channel::{AnyServer, Client, Server, ServerConfig, Status, TransportKind};
use ringbell::reactor::{
    Access, Handler, Reactor, ReactorStats, Request, Responder, StopHandle, ThreadPool,
};

use common::{child_command, child_role};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";
const T: Duration = Duration::from_secs(20);

fn sock_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringbell-order-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

fn access(req: &Request) -> Access {
    let key = u64::from(req.body.get(1).copied().unwrap_or(0));
    match req.body.first() {
        Some(b'r') => Access::Read(key),
        Some(b'w') => Access::Write(key),
        _ => Access::Unordered,
    }
}

struct Serving {
    stop: StopHandle,
    thread: JoinHandle<std::io::Result<ReactorStats>>,
    path: PathBuf,
}

impl Serving {
    fn start<H: Handler>(name: &str, workers: usize, handler: H) -> Self {
        Self::start_on(TransportKind::SharedMemory, name, workers, handler)
    }

    fn start_on<H: Handler>(kind: TransportKind, name: &str, workers: usize, handler: H) -> Self {
        let path = sock_path(name);
        let cfg = ServerConfig::new().max_clients(32).transport(kind);
        let server = AnyServer::bind(&path, cfg).unwrap();
        let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(workers));
        let stop = reactor.stop_handle();
        let thread = std::thread::spawn(move || reactor.run());
        Self { stop, thread, path }
    }

    fn finish(self) -> ReactorStats {
        self.stop.stop();
        let stats = self.thread.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(self.path.parent().unwrap());
        stats
    }

    fn client(&self, test: &str, role: &str) -> std::process::Child {
        child_command(test, role, &[])
            .env(PATH_ENV, &self.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn connect() -> Client {
    Client::connect(std::env::var(PATH_ENV).unwrap()).unwrap()
}

/// A key-value store of one byte per key: `w k v` stores `v` (after a pause, so that a read
/// overlapping it would see the old value), `r k` answers the value.
struct Store(Mutex<[u8; 256]>);

impl Handler for Store {
    fn handle(&self, req: Request, res: Responder) {
        let k = usize::from(req.body[1]);
        if req.body[0] == b'w' {
            std::thread::sleep(Duration::from_millis(2));
            self.0.lock().unwrap()[k] = req.body[2];
            let _ = res.respond(b"ok");
        } else {
            let v = self.0.lock().unwrap()[k];
            let _ = res.respond(&[v]);
        }
    }
    fn access(&self, req: &Request) -> Access {
        access(req)
    }
}

/// Client A writes, is answered, then tells client B (through the parent), which reads the
/// key and must see the value — every round, with a third client reading the key all along.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn a_write_answered_to_one_client_is_seen_by_the_next_read_of_another() {
    const TEST: &str = "a_write_answered_to_one_client_is_seen_by_the_next_read_of_another";
    let _watchdog = common::watchdog();
    match child_role().as_deref() {
        Some("writer") | Some("reader") | Some("noise") => {
            use std::io::{BufRead, Write};
            let role = child_role().unwrap();
            let mut c = connect();
            if role == "noise" {
                for _ in 0..2000 {
                    c.call_timeout(b"r\x07", T).unwrap();
                }
                return;
            }
            let stdin = std::io::stdin();
            let mut out = std::io::stdout();
            for line in stdin.lock().lines() {
                let v: u8 = line.unwrap().trim().parse().unwrap();
                if role == "writer" {
                    assert_eq!(c.call_timeout(&[b'w', 7, v], T).unwrap(), b"ok");
                    writeln!(out, "@done").unwrap();
                } else {
                    let got = c.call_timeout(b"r\x07", T).unwrap();
                    writeln!(out, "@{}", got[0]).unwrap();
                }
                out.flush().unwrap();
            }
            return;
        }
        _ => {}
    }
    use std::io::{BufRead, BufReader, Write};
    let serving = Serving::start("ryw", 4, Store(Mutex::new([0; 256])));
    let mut noise = serving.client(TEST, "noise");
    let mut writer = serving.client(TEST, "writer");
    let mut reader = serving.client(TEST, "reader");
    let (mut win, mut wout) = (
        writer.stdin.take().unwrap(),
        BufReader::new(writer.stdout.take().unwrap()),
    );
    let (mut rin, mut rout) = (
        reader.stdin.take().unwrap(),
        BufReader::new(reader.stdout.take().unwrap()),
    );
    // The children's answers follow an `@` (the test harness prints too).
    let answer = |from: &mut BufReader<std::process::ChildStdout>| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                from.read_line(&mut line).unwrap() > 0,
                "a client ended early"
            );
            // The harness's "test … ... " may precede the first answer on its line.
            if let Some(at) = line.find('@') {
                return line[at + 1..].trim().to_string();
            }
        }
    };
    for v in 1..=100u8 {
        writeln!(win, "{v}").unwrap();
        assert_eq!(answer(&mut wout), "done");
        writeln!(rin, "{v}").unwrap();
        assert_eq!(
            answer(&mut rout),
            v.to_string(),
            "B read a value older than A's answered write"
        );
    }
    drop((win, rin));
    assert!(writer.wait().unwrap().success());
    assert!(reader.wait().unwrap().success());
    assert!(noise.wait().unwrap().success());
    serving.finish();
}

/// A counter whose write is a read-modify-write with a pause in the middle: two writes that
/// overlapped would lose an increment, and a read that overlapped a write could see a value
/// no serial order gives.
struct Counter {
    value: AtomicU64,
    writing: AtomicUsize,
    reading: AtomicUsize,
}

impl Handler for Counter {
    /// Answers the value and whether anything that must not overlap it was seen running:
    /// for a write, any other handler; for a read, a write (checked at its start and end,
    /// with a yield between, so that an overlap has room to show).
    fn handle(&self, req: Request, res: Responder) {
        let (v, beside) = if req.body[0] == b'w' {
            let mut beside = self.writing.fetch_add(1, Ordering::SeqCst) > 0;
            beside |= self.reading.load(Ordering::SeqCst) > 0;
            let v = self.value.load(Ordering::SeqCst);
            std::thread::yield_now();
            self.value.store(v + 1, Ordering::SeqCst);
            beside |= self.reading.load(Ordering::SeqCst) > 0;
            self.writing.fetch_sub(1, Ordering::SeqCst);
            (v + 1, beside)
        } else {
            self.reading.fetch_add(1, Ordering::SeqCst);
            let mut beside = self.writing.load(Ordering::SeqCst) > 0;
            let v = self.value.load(Ordering::SeqCst);
            std::thread::yield_now();
            beside |= self.writing.load(Ordering::SeqCst) > 0;
            self.reading.fetch_sub(1, Ordering::SeqCst);
            (v, beside)
        };
        let _ = res.respond(&[&v.to_le_bytes()[..], &[u8::from(beside)]].concat());
    }
    fn access(&self, req: &Request) -> Access {
        access(req)
    }
}

/// Eight client processes hammer one key with reads and writes of a counter, one request in
/// flight each. Against a serial model: the writes' results are exactly 1..=W (no lost
/// update, each write alone), no handler ever ran beside a write, and each client's view
/// never goes backwards (its later request left the ring after its earlier one was answered).
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn clients_hammering_one_key_see_a_serial_history() {
    hammer(
        TransportKind::SharedMemory,
        "clients_hammering_one_key_see_a_serial_history",
    );
}

/// The same over the socket transport: ordering is the reactor's, whatever carries the
/// frames.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn clients_hammering_one_key_over_the_socket_transport_see_a_serial_history() {
    hammer(
        TransportKind::Socket,
        "clients_hammering_one_key_over_the_socket_transport_see_a_serial_history",
    );
}

fn hammer(kind: TransportKind, test: &str) {
    const CLIENTS: usize = 8;
    const CALLS: usize = 400;
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("hammer") {
        use std::io::Write;
        let mut c = connect();
        assert_eq!(c.is_socket_transport(), kind == TransportKind::Socket);
        let me = std::process::id() as usize;
        let mut out = std::io::stdout().lock();
        for i in 0..CALLS {
            let write = (i * 7 + me) % 3 == 0;
            let r = c
                .call_timeout(if write { b"w\x01" } else { b"r\x01" }, T)
                .unwrap();
            let v = u64::from_le_bytes(r[..8].try_into().unwrap());
            writeln!(out, "@{} {v} {}", if write { 'w' } else { 'r' }, r[8]).unwrap();
        }
        return;
    }
    let serving = Serving::start_on(
        kind,
        &format!("hammer-{kind:?}"),
        4,
        Counter {
            value: AtomicU64::new(0),
            writing: AtomicUsize::new(0),
            reading: AtomicUsize::new(0),
        },
    );
    let children: Vec<_> = (0..CLIENTS)
        .map(|_| serving.client(test, "hammer"))
        .collect();
    let mut writes = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let mut last = 0u64;
        // The client's lines follow an `@` (the test harness prints too).
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            // The harness's "test … ... " may precede the first one on its line.
            let Some(at) = line.find('@') else {
                continue;
            };
            let line = &line[at + 1..];
            let mut f = line.split(' ');
            let (op, v, beside) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let v: u64 = v.parse().unwrap();
            assert_eq!(beside, "0", "a {op} ran beside a write");
            assert!(v >= last, "a client's view went backwards: {last} then {v}");
            last = v;
            if op == "w" {
                writes.push(v);
            }
        }
    }
    let stats = serving.finish();
    writes.sort_unstable();
    let n = writes.len() as u64;
    assert!(n > 0);
    assert_eq!(
        writes,
        (1..=n).collect::<Vec<_>>(),
        "writes lost or doubled"
    );
    assert!(
        stats.key_waits > 0,
        "nothing ever waited: the test proves nothing ({stats:?})"
    );
}

/// Handlers that wait, with a bound, until `want` of them run at once: whether they met.
struct Rendezvous {
    running: Mutex<usize>,
    met: Condvar,
    want: usize,
}

impl Rendezvous {
    fn meet(&self) -> bool {
        let mut n = self.running.lock().unwrap();
        *n += 1;
        self.met.notify_all();
        let (n, timeout) = self
            .met
            .wait_timeout_while(n, Duration::from_secs(5), |n| *n < self.want)
            .unwrap();
        drop(n);
        !timeout.timed_out()
    }
}

/// Reads of one key, and writes of different keys, must actually run at the same time: each
/// handler waits (at most 5 s) until the other is running too, which a scheduler that
/// serialises them would never let happen.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn reads_of_one_key_and_writes_of_different_keys_overlap() {
    const TEST: &str = "reads_of_one_key_and_writes_of_different_keys_overlap";
    let _watchdog = common::watchdog();
    if let Some(role) = child_role() {
        // A second client connected: the first request may run inline, and then only the
        // hand-over (which needs more than one client) lets the second run beside it.
        let _idle = connect();
        let mut c = connect();
        let pair: [&[u8]; 2] = match role.as_str() {
            "reads" => [b"r\x05", b"r\x05"],
            "writes" => [b"w\x01", b"w\x02"],
            _ => return,
        };
        // Both in flight at once; each answer says whether its handler met the other.
        c.send_request(pair[0]).unwrap();
        c.send_request(pair[1]).unwrap();
        for _ in 0..2 {
            let r = c.recv_response_timeout(T).unwrap();
            assert_eq!(r.status, Status::Ok);
            assert_eq!(
                r.body, b"met",
                "{role}: the two did not run at the same time"
            );
        }
        return;
    }
    for role in ["reads", "writes"] {
        let rv = Arc::new(Rendezvous {
            running: Mutex::new(0),
            met: Condvar::new(),
            want: 2,
        });
        let r = rv.clone();
        let serving = Serving::start(
            role,
            2,
            ringbell::reactor::ordered(access, move |_: Request, res: Responder| {
                let _ = res.respond(if r.meet() { b"met" } else { b"alone" });
            }),
        );
        let status = serving.client(TEST, role).wait().unwrap();
        serving.finish();
        assert!(status.success(), "{role}");
    }
}

/// A write whose handler panics is answered `Panicked`, and the key is free again: the read
/// behind it, and a write after that, are answered.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn a_panicking_write_releases_its_key() {
    const TEST: &str = "a_panicking_write_releases_its_key";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        // A second client connected, for the hand-over (see the overlap test): the panicking
        // write may run inline, and the watcher then queues the other two behind it.
        let _idle = connect();
        let mut c = connect();
        // All three in flight: the read and the second write wait for the panicking write.
        c.send_request(b"w\x03panic").unwrap();
        c.send_request(b"r\x03").unwrap();
        c.send_request(b"w\x03").unwrap();
        let statuses: Vec<Status> = (0..3)
            .map(|_| c.recv_response_timeout(T).unwrap().status)
            .collect();
        assert_eq!(statuses, [Status::Panicked, Status::Ok, Status::Ok]);
        assert_eq!(c.call_timeout(b"r\x03", T).unwrap(), b"fine");
        return;
    }
    let serving = Serving::start(
        "panic",
        2,
        ringbell::reactor::ordered(access, |req: Request, res: Responder| {
            if req.body.ends_with(b"panic") {
                // Long enough for the other two to arrive and wait for the key.
                std::thread::sleep(Duration::from_millis(100));
                panic!("a write that fails");
            }
            let _ = res.respond(b"fine");
        }),
    );
    let status = serving.client(TEST, "client").wait().unwrap();
    let stats = serving.finish();
    assert!(status.success());
    assert_eq!(stats.panicked, 1);
    assert!(
        stats.key_waits >= 1,
        "nothing waited for the panicking write: {stats:?}"
    );
}

/// A classifier that panics answers its request `Panicked` (the request never runs) and
/// leaves the connection in order: the requests around it are answered, in order.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn a_panicking_classifier_answers_panicked_and_the_connection_goes_on() {
    const TEST: &str = "a_panicking_classifier_answers_panicked_and_the_connection_goes_on";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        let mut c = connect();
        for body in [&b"r\x01"[..], b"?", b"w\x01"] {
            c.send_request(body).unwrap();
        }
        let statuses: Vec<Status> = (0..3)
            .map(|_| c.recv_response_timeout(T).unwrap().status)
            .collect();
        assert_eq!(statuses, [Status::Ok, Status::Panicked, Status::Ok]);
        assert_eq!(c.call_timeout(b"r\x01", T).unwrap(), b"ok");
        return;
    }
    let serving = Serving::start(
        "classifier",
        2,
        ringbell::reactor::ordered(
            |req: &Request| {
                assert_ne!(req.body, b"?", "a classifier that fails");
                access(req)
            },
            |_: Request, res: Responder| {
                let _ = res.respond(b"ok");
            },
        ),
    );
    let status = serving.client(TEST, "client").wait().unwrap();
    let stats = serving.finish();
    assert!(status.success());
    assert_eq!(stats.panicked, 1);
}

/// An inline write that answers and then goes on running releases its key when it answers,
/// not when its handler returns: the write here waits (at most 5 s) for the read behind it
/// on its key to have run, which only that early release allows.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn a_write_releases_its_key_when_it_answers_even_inline() {
    const TEST: &str = "a_write_releases_its_key_when_it_answers_even_inline";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        let _idle = connect(); // for the hand-over (see the overlap test)
        let mut c = connect();
        // The write alone, so that it runs inline (were the read already pending, it would
        // be dispatched and the test would pass without saying anything); the read while the
        // write's handler still runs.
        c.send_request(b"w\x04").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.send_request(b"r\x04").unwrap();
        for _ in 0..2 {
            assert_eq!(c.recv_response_timeout(T).unwrap().status, Status::Ok);
        }
        return;
    }
    let read_ran = Arc::new((Mutex::new(false), Condvar::new()));
    let saw = Arc::new(Mutex::new(None));
    let (r, s) = (read_ran.clone(), saw.clone());
    let serving = Serving::start(
        "early",
        2,
        ringbell::reactor::ordered(access, move |req: Request, res: Responder| {
            if req.body[0] == b'w' {
                let _ = res.respond(b"ok");
                let (lock, cv) = &*r;
                let (ran, _) = cv
                    .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(5), |ran| !*ran)
                    .unwrap();
                *s.lock().unwrap() = Some(*ran);
            } else {
                *r.0.lock().unwrap() = true;
                r.1.notify_all();
                let _ = res.respond(b"ok");
            }
        }),
    );
    let status = serving.client(TEST, "client").wait().unwrap();
    let stats = serving.finish();
    assert!(status.success());
    assert_eq!(stats.inline, 1, "the write did not run inline: {stats:?}");
    assert_eq!(
        *saw.lock().unwrap(),
        Some(true),
        "the read behind the write ran only after the write's handler returned ({stats:?})"
    );
}

/// Serial mode runs every request on the reactor thread, also one that waited for its key:
/// here a write answers later from a thread of its own, and the read behind it must still
/// run on the reactor thread.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn in_serial_mode_a_request_that_waited_for_its_key_runs_on_the_reactor_thread() {
    const TEST: &str =
        "in_serial_mode_a_request_that_waited_for_its_key_runs_on_the_reactor_thread";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        let mut c = connect();
        c.send_request(b"w\x06").unwrap();
        c.send_request(b"r\x06").unwrap();
        for _ in 0..2 {
            assert_eq!(c.recv_response_timeout(T).unwrap().status, Status::Ok);
        }
        return;
    }
    let threads = Arc::new(Mutex::new(Vec::new()));
    let t = threads.clone();
    let path = sock_path("serial");
    let server = Server::bind(&path, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(
        server,
        ringbell::reactor::ordered(access, move |req: Request, res: Responder| {
            if req.body[0] == b'w' {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = res.respond(b"later");
                });
            } else {
                t.lock()
                    .unwrap()
                    .push(std::thread::current().name().map(str::to_string));
                let _ = res.respond(b"ok");
            }
        }),
    )
    .with_executor(ThreadPool::new(2))
    .serial(true);
    let stop = reactor.stop_handle();
    let serving = std::thread::Builder::new()
        .name("reactor".into())
        .spawn(move || reactor.run())
        .unwrap();
    let mut child = child_command(TEST, "client", &[])
        .env(PATH_ENV, &path)
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    stop.stop();
    let stats = serving.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert_eq!(*threads.lock().unwrap(), [Some("reactor".to_string())]);
    assert_eq!(stats.key_waits, 1, "{stats:?}");
}

/// Past a key's queue bound a request is answered `Busy` at once, and nothing is lost: every
/// other request is answered.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes")]
fn past_its_queue_bound_a_key_answers_busy() {
    const TEST: &str = "past_its_queue_bound_a_key_answers_busy";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        // A second client connected, for the hand-over (see the overlap test).
        let _idle = connect();
        let mut c = connect();
        // One write runs (and blocks until all four are classified), two wait (the bound),
        // the fourth is Busy.
        for _ in 0..4 {
            c.send_request(b"w\x09").unwrap();
        }
        let statuses: Vec<Status> = (0..4)
            .map(|_| c.recv_response_timeout(T).unwrap().status)
            .collect();
        // Responses go out in request order: the Busy one waits behind the three.
        assert_eq!(statuses, [Status::Ok, Status::Ok, Status::Ok, Status::Busy]);
        return;
    }
    // The handlers wait until the reactor has classified all four requests.
    let seen = Arc::new((Mutex::new(0usize), Condvar::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let path = sock_path("bound");
    let server = Server::bind(&path, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(
        server,
        ringbell::reactor::ordered(
            move |req: &Request| {
                *s1.0.lock().unwrap() += 1;
                s1.1.notify_all();
                access(req)
            },
            move |_: Request, res: Responder| {
                let (lock, cv) = &*s2;
                let all = cv
                    .wait_timeout_while(lock.lock().unwrap(), T, |n| *n < 4)
                    .unwrap();
                drop(all);
                let _ = res.respond(b"ok");
            },
        ),
    )
    .with_executor(ThreadPool::new(2))
    .key_queue_limit(2);
    let stop = reactor.stop_handle();
    let thread = std::thread::spawn(move || reactor.run());
    let mut child = child_command(TEST, "client", &[])
        .env(PATH_ENV, &path)
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    stop.stop();
    let stats = thread.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    assert_eq!(stats.busy, 1);
    assert_eq!(stats.key_waits, 2);
}
