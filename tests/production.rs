//! The server layer under ordinary production conditions, with real processes: signals,
//! connect storms, descriptor limits, fork, long socket paths and forked helpers.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbell::channel::{
    BindError, CallError, ChannelError, Client, ClientOptions, MAX_SOCKET_PATH, Server,
    ServerConfig,
};
use ringbell::doorbell::WaitOptions;
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

use common::{child_command, child_role};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";
const T: Duration = Duration::from_secs(20);

/// A fresh directory for one test's socket.
/// The socket path a child role was given (`PATH_ENV`).
fn given_path() -> PathBuf {
    PathBuf::from(std::env::var(PATH_ENV).unwrap())
}

/// This test binary re-run as `role` of `test`, told the socket `path`: a server reads its
/// stdin to know when to stop, a client writes what it reports to its stdout.
fn role_command(test: &str, role: &str, path: &Path) -> std::process::Command {
    let mut cmd = child_command(test, role, &[]);
    cmd.env(PATH_ENV, path);
    match role {
        "server" => cmd.stdin(Stdio::piped()),
        _ => cmd.stdout(Stdio::piped()),
    };
    cmd
}

fn sock_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringbell-prod-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

fn echo(req: Request, res: Responder) {
    let _ = res.respond(&req.body);
}

/// Connects, retrying while the server process is still starting.
fn connect_when_up(path: &Path) -> Client {
    let start = Instant::now();
    loop {
        match Client::connect(path) {
            Ok(c) => return c,
            Err(e) => {
                assert!(start.elapsed() < T, "the server never came up: {e}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Waits for a child process at most `bound`; kills it and fails if it is still running.
fn wait_bounded(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process {} still running after {bound:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// In a server child: serves `path` with `reactor` until the parent closes our stdin.
fn serve_until_stdin_closes<E: ringbell::reactor::Executor + Send + 'static>(
    mut reactor: Reactor<Server, fn(Request, Responder), E>,
) -> ringbell::reactor::ReactorStats {
    let stop = reactor.stop_handle();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        stop.stop();
    });
    reactor.run().unwrap()
}

// ---------------------------------------------------------------- signals

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs a do-nothing handler for `SIGUSR1` without `SA_RESTART`: every blocking system
/// call the signal lands in returns `EINTR` (the harshest case for the crate).
fn install_handler() {
    // SAFETY: a zeroed `sigaction` with a valid handler and an empty mask is a valid argument;
    // the handler does nothing, so it is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// A thread that sends `SIGUSR1` to `targets` every ~20 µs until dropped.
struct SignalStorm {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl SignalStorm {
    fn at(targets: Vec<libc::pthread_t>) -> Self {
        install_handler();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for &t in &targets {
                    // SAFETY: `t` is a thread of this process that outlives the storm (the
                    // caller drops the storm before it ends); a dead one gives ESRCH.
                    if unsafe { libc::pthread_kill(t, libc::SIGUSR1) } == 0 {
                        sent += 1;
                    }
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            sent
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Ends the storm; the number of signals sent.
    fn end(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Signals to the client's thread and to the server's reactor thread (in another process,
/// its sleep slice 1 ms so that it polls its clients a thousand times a second) while a
/// client calls, checks `is_disconnected`, and new clients connect: no live peer is taken for
/// dead, no live idle client is detached, no connect fails, every call is answered.
#[test]
fn a_signal_storm_makes_no_live_peer_look_dead() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = given_path();
        let cfg =
            ServerConfig::new().wait_options(WaitOptions::new().slice(Duration::from_millis(1)));
        let server = Server::bind(&path, cfg).unwrap();
        let reactor = Reactor::new(server, echo as fn(Request, Responder));
        // SAFETY: `pthread_self` has no preconditions.
        let storm = SignalStorm::at(vec![unsafe { libc::pthread_self() }]);
        let stats = serve_until_stdin_closes(reactor);
        let sent = storm.end();
        println!("server: {} signals, {stats:?}", sent);
        return;
    }
    let path = sock_path("signals");
    let mut server = role_command(
        "a_signal_storm_makes_no_live_peer_look_dead",
        "server",
        &path,
    )
    .spawn()
    .unwrap();
    let mut idle: Vec<Client> = (0..4).map(|_| connect_when_up(&path)).collect();
    let mut busy = connect_when_up(&path);
    // SAFETY: `pthread_self` has no preconditions.
    let storm = SignalStorm::at(vec![unsafe { libc::pthread_self() }]);
    let start = Instant::now();
    let (mut calls, mut connects) = (0u64, 0u64);
    while start.elapsed() < Duration::from_millis(1500) {
        assert!(!busy.is_disconnected(), "a live server looked gone");
        let body = calls.to_le_bytes();
        assert_eq!(
            busy.call_timeout(&body, T),
            Ok(body.to_vec()),
            "call {calls}"
        );
        calls += 1;
        if calls % 64 == 0 {
            let mut fresh = Client::connect(&path).expect("a connect under signals");
            assert_eq!(fresh.call_timeout(b"new", T), Ok(b"new".to_vec()));
            connects += 1;
        }
    }
    let sent = storm.end();
    for (i, c) in idle.iter_mut().enumerate() {
        assert!(!c.is_disconnected(), "idle client {i} was detached");
        assert_eq!(c.call_timeout(b"still here", T), Ok(b"still here".to_vec()));
    }
    drop(server.stdin.take());
    assert!(wait_bounded(&mut server, T).success());
    assert!(
        calls > 100 && connects > 0 && sent > 1000,
        "{calls} calls, {connects} connects, {sent} signals"
    );
}

// ---------------------------------------------------------------- connect storms

/// Six threads connect and vanish as fast as they can while a connected client keeps
/// calling: every call is answered, none times out, and in every second of the storm the
/// client completes calls at no less than a hundredth of its calm rate.
const STORMERS: usize = 6;

#[test]
fn a_connect_storm_does_not_starve_connected_clients() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = given_path();
        let server = Server::bind(&path, ServerConfig::new()).unwrap();
        serve_until_stdin_closes(Reactor::new(server, echo as fn(Request, Responder)));
        return;
    }
    let path = sock_path("storm");
    let mut server = role_command(
        "a_connect_storm_does_not_starve_connected_clients",
        "server",
        &path,
    )
    .spawn()
    .unwrap();
    let mut client = connect_when_up(&path);
    // Calls completed in one second, before the storm: what the storm is measured against.
    let calls_in = |client: &mut Client, d: Duration| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < d {
            assert_eq!(
                client.call_timeout(b"x", Duration::from_secs(2)),
                Ok(b"x".to_vec())
            );
            n += 1;
        }
        n
    };
    let calm = calls_in(&mut client, Duration::from_secs(1));
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let stormers: Vec<_> = (0..STORMERS)
        .map(|_| {
            let (stop, attempts, path) = (stop.clone(), attempts.clone(), path.clone());
            std::thread::spawn(move || {
                // Most connect and vanish at once (the cheapest storm: the server's accept
                // never runs dry); one in eight goes as far as the greeting.
                let opts = ClientOptions::new().connect_timeout(Duration::from_millis(200));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if n % 8 == 7 {
                        drop(Client::connect_with(&path, opts));
                    } else {
                        drop(std::os::unix::net::UnixStream::connect(&path));
                    }
                    n += 1;
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let per_second: Vec<u64> = (0..3)
        .map(|_| calls_in(&mut client, Duration::from_secs(1)))
        .collect();
    stop.store(true, Ordering::Relaxed);
    for s in stormers {
        s.join().unwrap();
    }
    drop(server.stdin.take());
    assert!(wait_bounded(&mut server, T).success());
    let attempts = attempts.load(Ordering::Relaxed);
    assert!(attempts > 50, "the storm made only {attempts} connects");
    // Counts, not latencies: in every second of the storm the client completes at least a
    // hundredth of what it did in a calm second (a starved one completes a handful).
    assert!(
        per_second.iter().all(|&n| n >= (calm / 100).max(10)),
        "calls per second: {calm} calm, {per_second:?} in the storm ({attempts} connects)"
    );
}

/// A client whose process was killed is replaced at once by a new one: the newcomer gets the
/// dead one's slot, not `ServerFull`, because the server reaps before it accepts.
#[test]
fn a_client_replacing_a_killed_one_is_not_refused() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        let path = given_path();
        let mut client = Client::connect(&path).unwrap();
        assert_eq!(client.call_timeout(b"up", T), Ok(b"up".to_vec()));
        println!("up");
        std::thread::sleep(Duration::from_secs(60)); // until killed
        return;
    }
    let path = sock_path("replace");
    let server = Server::bind(&path, ServerConfig::new().max_clients(1)).unwrap();
    let mut reactor = Reactor::new(server, echo);
    let stop = reactor.stop_handle();
    let serving = std::thread::spawn(move || reactor.run());
    for round in 0..5 {
        let mut old = role_command(
            "a_client_replacing_a_killed_one_is_not_refused",
            "client",
            &path,
        )
        .spawn()
        .unwrap();
        let mut lines = BufReader::new(old.stdout.take().unwrap()).lines();
        while !lines
            .next()
            .expect("the old client's 'up'")
            .unwrap()
            .ends_with("up")
        {}
        old.kill().unwrap();
        old.wait().unwrap();
        // At once: the dead client's hang-up and this connect reach the server together.
        let mut new = Client::connect(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            new.call_timeout(b"hi", T),
            Ok(b"hi".to_vec()),
            "round {round}"
        );
    }
    stop.stop();
    serving.join().unwrap().unwrap();
}

/// Per-process and per-user limits refuse with a typed error; the clients already admitted
/// go on.
#[test]
fn per_process_and_per_user_limits_refuse_with_a_typed_error() {
    let _watchdog = common::watchdog();
    for (name, cfg) in [
        (
            "per-process",
            ServerConfig::new().max_clients_per_process(2),
        ),
        ("per-uid", ServerConfig::new().max_clients_per_uid(2)),
    ] {
        let path = sock_path(name);
        let server = Server::bind(&path, cfg).unwrap();
        let mut reactor = Reactor::new(server, echo);
        let stop = reactor.stop_handle();
        let serving = std::thread::spawn(move || reactor.run());
        let mut a = connect_when_up(&path);
        let mut b = Client::connect(&path).unwrap();
        assert!(
            matches!(Client::connect(&path), Err(ChannelError::LimitReached)),
            "{name}"
        );
        assert_eq!(a.call_timeout(b"a", T), Ok(b"a".to_vec()));
        assert_eq!(b.call_timeout(b"b", T), Ok(b"b".to_vec()));
        drop(a);
        // The slot comes back once the server has reaped the closed connection.
        let start = Instant::now();
        let mut c = loop {
            match Client::connect(&path) {
                Ok(c) => break c,
                Err(ChannelError::LimitReached) if start.elapsed() < T => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{name}: {e}"),
            }
        };
        assert_eq!(c.call_timeout(b"c", T), Ok(b"c".to_vec()));
        stop.stop();
        serving.join().unwrap().unwrap();
    }
}

/// A server whose descriptor limit leaves room for two clients refuses the third with
/// `ServerOutOfResources` — a typed refusal, not a failure halfway through the handshake —
/// and goes on serving the two.
#[test]
fn a_server_short_of_descriptors_refuses_with_a_typed_error() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = given_path();
        let server = Server::bind(&path, ServerConfig::new()).unwrap();
        // Room for what is open now, the server's reserve of 16, and two clients of six
        // descriptors each (socket, two rings, the client's readiness socket, its pair in
        // the server's readiness set, pidfd).
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let limit = open + 16 + 2 * 6;
        let rl = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: limit.max(1024) as libc::rlim_t,
        };
        // SAFETY: `rl` is a valid rlimit; lowering our own soft limit has no other effect.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
        serve_until_stdin_closes(Reactor::new(server, echo as fn(Request, Responder)));
        return;
    }
    let path = sock_path("fds");
    let mut server = role_command(
        "a_server_short_of_descriptors_refuses_with_a_typed_error",
        "server",
        &path,
    )
    .spawn()
    .unwrap();
    let mut a = connect_when_up(&path);
    let mut b = Client::connect(&path).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            Client::connect(&path),
            Err(ChannelError::ServerOutOfResources)
        ));
    }
    assert_eq!(a.call_timeout(b"a", T), Ok(b"a".to_vec()));
    assert_eq!(b.call_timeout(b"b", T), Ok(b"b".to_vec()));
    drop(server.stdin.take());
    assert!(wait_bounded(&mut server, T).success());
}

// ---------------------------------------------------------------- socket paths

/// A path of 108 bytes (no room for the NUL) is refused at bind with a typed error; one of
/// 107 works end to end.
#[test]
fn a_socket_path_too_long_to_reach_is_refused_at_bind() {
    let _watchdog = common::watchdog();
    let dir = sock_path("long").parent().unwrap().to_path_buf();
    let base = dir.as_os_str().len() + 1; // the separator
    assert!(
        base + 8 < MAX_SOCKET_PATH,
        "the temporary directory's path is too long"
    );
    let named = |len: usize| dir.join("x".repeat(len - base));
    let too_long = named(MAX_SOCKET_PATH + 1);
    assert!(matches!(
        Server::bind(&too_long, ServerConfig::new()),
        Err(ChannelError::Bind(BindError::PathTooLong {
            len: 108,
            max: 107
        }))
    ));
    assert!(!too_long.exists());
    assert!(matches!(
        Client::connect(&too_long),
        Err(ChannelError::PathTooLong { len: 108, max: 107 })
    ));
    let longest = named(MAX_SOCKET_PATH);
    let server = Server::bind(&longest, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(server, echo);
    let stop = reactor.stop_handle();
    let serving = std::thread::spawn(move || reactor.run());
    let mut c = connect_when_up(&longest);
    assert_eq!(c.call_timeout(b"far", T), Ok(b"far".to_vec()));
    stop.stop();
    serving.join().unwrap().unwrap();
}

// ---------------------------------------------------------------- fork

/// Forks; the child runs `f` and leaves with its result as exit status, running no
/// destructor (the parent's threads do not exist in the child). The parent gets the status.
fn in_forked_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` (which keeps to this crate's fork-aware handles) and
    // `_exit`s without unwinding or running destructors.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let start = Instant::now();
            loop {
                let mut status = 0;
                // SAFETY: waits for our own child; `status` is a valid out-pointer.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    assert!(
                        libc::WIFEXITED(status),
                        "forked child did not exit: {status}"
                    );
                    return libc::WEXITSTATUS(status);
                }
                if start.elapsed() > T {
                    // SAFETY: kills and reaps our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    panic!("forked child hung");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// A `Server`, a `Client`, a `Reactor` with its pool, inherited by a forked child: the child
/// cannot use them (typed errors), dropping them there neither hangs nor touches the parent's
/// socket file or connections, and the parent goes on serving.
#[test]
fn handles_inherited_across_fork_neither_act_nor_disturb_the_parent() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() != Some("forker") {
        // Fork only from a process of our own: this test binary's other threads must not be
        // copied into a child mid-test.
        let mut me = child_command(
            "handles_inherited_across_fork_neither_act_nor_disturb_the_parent",
            "forker",
            &[],
        )
        .spawn()
        .unwrap();
        assert!(wait_bounded(&mut me, T).success());
        return;
    }
    let path = sock_path("fork");
    let mut server = Server::bind(&path, ServerConfig::new()).unwrap();
    // A client waits in the backlog: a child that accepts would take it.
    let waiting = std::thread::spawn({
        let path = path.clone();
        move || Client::connect(&path)
    });
    std::thread::sleep(Duration::from_millis(50));
    let code = in_forked_child(|| {
        if !matches!(server.accept_pending(), Err(ChannelError::Forked)) {
            return 1;
        }
        // SAFETY: in the child only, which never touches `server` again: its inherited copy.
        drop(unsafe { std::ptr::read(&server) });
        0
    });
    assert_eq!(code, 0, "the child could accept, or its drop failed");
    assert!(
        path.exists(),
        "the child's drop removed the parent's socket file"
    );
    let start = Instant::now();
    while server.clients() == 0 {
        server.accept_pending().unwrap();
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut client = waiting.join().unwrap().unwrap();
    assert_eq!(
        client.server_pid(),
        std::process::id(),
        "greeted by another process"
    );

    // Now serve, with a pool, and fork again: the child's reactor must not run, its pool must
    // not be joined, its client must not call.
    let mut reactor = Reactor::new(server, echo).with_executor(ThreadPool::new(2));
    let code = in_forked_child(|| {
        if reactor.run().is_ok() {
            return 2;
        }
        if client.call_timeout(b"child", Duration::from_secs(1)) != Err(CallError::Forked) {
            return 3;
        }
        // SAFETY: in the child only, which never touches them again: the inherited copies.
        unsafe {
            drop(std::ptr::read(&client));
            drop(std::ptr::read(&reactor));
        }
        0
    });
    assert_eq!(code, 0, "the forked child's handles misbehaved");
    let stop = reactor.stop_handle();
    let serving = std::thread::spawn(move || reactor.run());
    assert_eq!(client.call_timeout(b"parent", T), Ok(b"parent".to_vec()));
    let mut another = Client::connect(&path).unwrap();
    assert_eq!(another.call_timeout(b"new", T), Ok(b"new".to_vec()));
    stop.stop();
    serving.join().unwrap().unwrap();
}

// ---------------------------------------------------------------- forked helpers

/// A server whose handler forked a helper (no exec) that keeps the connection sockets open
/// is killed: a call waiting on it returns `Disconnected` within 200 ms all the same.
#[test]
fn a_killed_server_is_noticed_while_its_forked_helper_holds_the_socket() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = given_path();
        let server = Server::bind(&path, ServerConfig::new()).unwrap();
        fn handler(req: Request, res: Responder) {
            match &req.body[..] {
                b"fork" => {
                    // SAFETY: the helper only sleeps and exits; it inherits every descriptor.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        // SAFETY: async-signal-safe calls only, then exit.
                        unsafe {
                            libc::sleep(60);
                            libc::_exit(0);
                        }
                    }
                    let _ = res.respond(pid.to_string().as_bytes());
                }
                b"hang" => std::mem::forget(res), // never answered
                _ => {
                    let _ = res.respond(&req.body);
                }
            }
        }
        serve_until_stdin_closes(Reactor::new(server, handler as fn(Request, Responder)));
        return;
    }
    let path = sock_path("helper-server");
    let mut server = role_command(
        "a_killed_server_is_noticed_while_its_forked_helper_holds_the_socket",
        "server",
        &path,
    )
    .spawn()
    .unwrap();
    let mut client = connect_when_up(&path);
    let helper: i32 = String::from_utf8(client.call_timeout(b"fork", T).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    let waiting = std::thread::spawn(move || {
        let r = client.call(b"hang");
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    server.kill().unwrap();
    let killed = Instant::now();
    server.wait().unwrap();
    let (r, at) = waiting.join().unwrap();
    // SAFETY: the helper is our grandchild; killing it by pid is harmless if it is gone.
    unsafe { libc::kill(helper, libc::SIGKILL) };
    assert_eq!(r, Err(CallError::Disconnected));
    let after = at.saturating_duration_since(killed);
    assert!(
        after < Duration::from_millis(200),
        "noticed {after:?} after the kill"
    );
}

/// A client process that forked a helper holding its socket is killed: the server detaches
/// it (its pidfd says it died) although its socket never hangs up.
#[test]
fn a_killed_client_is_detached_while_its_forked_helper_holds_the_socket() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("client") {
        let path = given_path();
        let mut client = Client::connect(&path).unwrap();
        assert_eq!(client.call_timeout(b"up", T), Ok(b"up".to_vec()));
        // SAFETY: the helper only sleeps and exits; it inherits the connection's socket.
        let helper = unsafe { libc::fork() };
        if helper == 0 {
            // SAFETY: async-signal-safe calls only, then exit.
            unsafe {
                libc::sleep(60);
                libc::_exit(0);
            }
        }
        println!("helper {helper}");
        std::thread::sleep(Duration::from_secs(60)); // until killed
        return;
    }
    let path = sock_path("helper-client");
    let server = Server::bind(&path, ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(server, echo);
    let stop = reactor.stop_handle();
    let mut child = role_command(
        "a_killed_client_is_detached_while_its_forked_helper_holds_the_socket",
        "client",
        &path,
    )
    .spawn()
    .unwrap();
    let serving = std::thread::spawn(move || {
        let stats = reactor.run().unwrap();
        (stats, reactor)
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let helper: i32 = loop {
        let line = lines.next().expect("the client's helper pid").unwrap();
        // The test harness prints the test's name on the same line first.
        if let Some((_, pid)) = line.rsplit_once("helper ") {
            break pid.trim().parse().unwrap();
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The reactor reaps once a slice (50 ms): the connection must be gone well within a
    // second, though the helper still holds its socket.
    std::thread::sleep(Duration::from_millis(600));
    stop.stop();
    let (stats, _reactor) = serving.join().unwrap();
    // SAFETY: the helper is our grandchild; killing it by pid is harmless if it is gone.
    unsafe { libc::kill(helper, libc::SIGKILL) };
    assert_eq!(stats.detached, 1, "{stats:?}");
}

// ---------------------------------------------------------------- slow handlers

/// A 2 s request arrives while the server is idle, so it runs inline on the reactor thread.
/// Another client's trivial calls, made while it runs, are answered all the same: the
/// watcher takes the serve loop over and dispatches them to the idle pool. And a request
/// pipelined behind the slow one on its own connection is answered after it, in order.
#[test]
fn a_slow_inline_handler_does_not_stall_other_clients() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("server") {
        let path = given_path();
        let server = Server::bind(&path, ServerConfig::new()).unwrap();
        fn handler(req: Request, res: Responder) {
            if req.body == b"slow" {
                std::thread::sleep(Duration::from_secs(2));
            }
            let _ = res.respond(&req.body);
        }
        let reactor = Reactor::new(server, handler as fn(Request, Responder))
            .with_executor(ThreadPool::new(4));
        let stats = serve_until_stdin_closes(reactor);
        println!("stats {} {}", stats.inline, stats.handovers);
        return;
    }
    let path = sock_path("slow");
    let mut server = role_command(
        "a_slow_inline_handler_does_not_stall_other_clients",
        "server",
        &path,
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut slow = connect_when_up(&path);
    let mut other = connect_when_up(&path);
    let first = slow.send_request(b"slow").unwrap();
    std::thread::sleep(Duration::from_millis(100)); // taken, alone: it runs inline
    let second = slow.send_request(b"behind").unwrap();
    let start = Instant::now();
    let mut answered = 0u32;
    while start.elapsed() < Duration::from_millis(1500) {
        assert_eq!(other.call_timeout(b"quick", T), Ok(b"quick".to_vec()));
        answered += 1;
    }
    let r1 = slow.recv_response().unwrap();
    let r2 = slow.recv_response().unwrap();
    assert_eq!((r1.id, r2.id), (first, second), "responses out of order");
    assert_eq!(
        (r1.into_result(), r2.into_result()),
        (Ok(b"slow".to_vec()), Ok(b"behind".to_vec()))
    );
    drop(server.stdin.take());
    let mut out = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(wait_bounded(&mut server, T).success());
    let (inline, handovers) = out
        .rsplit_once("stats ")
        .and_then(|(_, s)| s.lines().next()?.trim().split_once(' '))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.trim().parse::<u64>().unwrap()))
        .expect("the server's stats");
    // Counts, not latencies: without the hand-over the quick client is stuck for the whole
    // slow request and completes at most one call in the 1.5 s.
    assert!(
        answered >= 50,
        "{answered} quick calls answered during the slow one"
    );
    assert!(
        inline >= 1 && handovers >= 1,
        "inline {inline}, handovers {handovers}"
    );
}
