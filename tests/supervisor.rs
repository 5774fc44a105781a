//! A supervised spawned server, with real processes: a server that panics, one that is
//! SIGKILLed, one that exits 0 early — the blocked call fails with the typed error within
//! 200 ms of the child's end, and the log holds what the child printed; stop's SIGTERM, grace
//! and SIGKILL; the child dying with its parent (even when the thread that asked for it is
//! gone); a process that ignores SIGCHLD getting "status unknown".
//!
//! The servers are this test binary re-executed (`server_main`, with a role); a child's
//! report lines to the test start with '@' (libtest prints on the same line as the test's
//! name).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringbell::channel::{
    AnyServer, CallError, ClientOptions, ServerConfig, ServerExit, SpawnError, Supervisor,
    SupervisorOptions, TransportKind,
};
use ringbell::doorbell::WaitOptions;
use ringbell::reactor::{Reactor, Request, Responder};

use common::{child_command, child_role, watchdog};

const PATH_ENV: &str = "RINGBELL_TEST_SOCKET";

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine.
fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringbell-sup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The command that runs `server_main` as `role`, serving at `path`.
fn server_command(role: &str, path: &std::path::Path) -> Command {
    let mut cmd = child_command("server_main", role, &[]);
    cmd.env(PATH_ENV, path);
    cmd
}

/// Not a test by itself: the body of the re-executed server processes.
#[test]
fn server_main() {
    let Some(role) = child_role() else { return };
    if role == "ignore-term" {
        // SAFETY: no other thread of this process handles signals; SIG_IGN is a valid
        // disposition for SIGTERM.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        println!("ignoring SIGTERM");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let path = PathBuf::from(std::env::var_os(PATH_ENV).unwrap());
    let kind: TransportKind = std::env::var("RINGBELL_TEST_TRANSPORT")
        .unwrap_or_else(|_| "shm".into())
        .parse()
        .unwrap();
    let server = AnyServer::bind(&path, ServerConfig::new().transport(kind)).unwrap();
    let (die_tx, die_rx) = std::sync::mpsc::channel::<()>();
    let die_tx = std::sync::Mutex::new(die_tx);
    let mut reactor = Reactor::new(server, move |req: Request, res: Responder| {
        match &req.body[..] {
            b"panic" => {
                println!("dying at {}", mono_ns());
                let _ = die_tx.lock().unwrap().send(());
                std::thread::sleep(Duration::from_secs(60));
            }
            b"exit" => {
                println!("exiting early, dying at {}", mono_ns());
                std::process::exit(0);
            }
            b"fork-then-die" => {
                // SAFETY: the forked child only sleeps and `_exit`s (both async-signal-safe);
                // it exists to hold every descriptor of this process open.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: as above.
                    unsafe {
                        libc::sleep(60);
                        libc::_exit(0);
                    }
                }
                println!("helper {pid}, dying at {}", mono_ns());
                std::process::exit(3);
            }
            b"slow" => {
                println!("working slowly");
                std::thread::sleep(Duration::from_secs(60));
            }
            _ => {}
        }
        let _ = res.respond(&req.body);
    });
    println!("server up, serving {}", path.display());
    std::thread::spawn(move || reactor.run());
    if die_rx.recv().is_ok() {
        panic!("the server panicked on purpose");
    }
}

/// The `dying at` time the child logged.
fn logged_death(log: &str) -> u64 {
    let at = log.find("dying at ").expect("the child logged its death");
    log[at + 9..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn spawn_server(role: &str, name: &str) -> (Supervisor, PathBuf, PathBuf) {
    let d = dir(name);
    let sock = d.join("s.sock");
    let log = d.join("server.log");
    let sup = Supervisor::spawn(
        server_command(role, &sock),
        SupervisorOptions::new().log(&log),
    )
    .unwrap();
    (sup, sock, log)
}

/// SIGKILLs the supervised server while `client` waits for a `slow` call: the call must fail
/// with the kill in its exit record within 200 ms.
fn killed_while_calling_slow(
    sup: &Supervisor,
    log: &PathBuf,
    client: &mut ringbell::channel::Client,
) {
    let pid = rustix::process::Pid::from_raw(sup.pid() as i32).unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let at = mono_ns();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        at
    });
    let err = client.call(b"slow").unwrap_err();
    let returned = mono_ns();
    let killed = killer.join().unwrap();
    let exit = check_exit(err, log, client);
    assert_eq!(
        exit.status.and_then(|s| s.signal()),
        Some(libc::SIGKILL),
        "{exit}"
    );
    let late = Duration::from_nanos(returned - killed);
    assert!(late < Duration::from_millis(200), "noticed after {late:?}");
}

/// Checks the typed error of a lost supervised call, and that a later call fails at once.
fn check_exit(err: CallError, log: &PathBuf, client: &mut ringbell::channel::Client) -> ServerExit {
    let CallError::ServerExited(exit) = err else {
        panic!("expected ServerExited, got {err:?}");
    };
    assert_eq!(&exit.log, log);
    assert!(!exit.stopped);
    let t = Instant::now();
    let again = client.call(b"hello").unwrap_err();
    assert_eq!(again, CallError::ServerExited(exit.clone()));
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "a later call waited"
    );
    (*exit).clone()
}

#[test]
fn a_supervised_server_that_panics_fails_the_blocked_call_with_its_status_and_log() {
    let _w = watchdog();
    let (sup, sock, log) = spawn_server("serve", "panic");
    let mut client = sup.connect(&sock).unwrap();
    assert_eq!(client.call(b"hello").unwrap(), b"hello");
    let err = client.call(b"panic").unwrap_err();
    let returned = mono_ns();
    let exit = check_exit(err, &log, &mut client);
    assert_eq!(exit.status.and_then(|s| s.code()), Some(101), "{exit}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("server up"), "{text}");
    assert!(text.contains("the server panicked on purpose"), "{text}");
    let late = Duration::from_nanos(returned - logged_death(&text));
    // The child's panic, libtest's report and its exit are in this span too.
    assert!(late < Duration::from_millis(200), "noticed after {late:?}");
    assert_eq!(sup.exit().unwrap(), exit);
}

#[test]
fn a_supervised_server_that_is_sigkilled_fails_the_blocked_call_with_its_status_and_log() {
    let _w = watchdog();
    let (sup, sock, log) = spawn_server("serve", "kill");
    let mut client = sup.connect(&sock).unwrap();
    killed_while_calling_slow(&sup, &log, &mut client);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("working slowly"), "{text}");
}

#[test]
fn a_supervised_server_that_exits_0_early_fails_the_blocked_call_with_its_status_and_log() {
    let _w = watchdog();
    let (sup, sock, log) = spawn_server("serve", "exit0");
    let mut client = sup.connect(&sock).unwrap();
    let err = client.call(b"exit").unwrap_err();
    let returned = mono_ns();
    let exit = check_exit(err, &log, &mut client);
    assert_eq!(exit.status.map(|s| s.success()), Some(true), "{exit}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("exiting early"), "{text}");
    let late = Duration::from_nanos(returned - logged_death(&text));
    assert!(late < Duration::from_millis(200), "noticed after {late:?}");
    // The error names the log: a user can go and read it.
    assert!(
        CallError::ServerExited(exit.into())
            .to_string()
            .contains(&log.display().to_string())
    );
}

#[test]
fn a_server_that_never_listens_is_reported_with_its_exit_when_connecting() {
    let _w = watchdog();
    let d = dir("never");
    let log = d.join("server.log");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo cannot start: no config; exit 7"]);
    let sup = Supervisor::spawn(cmd, SupervisorOptions::new().log(&log)).unwrap();
    match sup.connect(d.join("s.sock")) {
        Err(SpawnError::Exited(exit)) => {
            assert_eq!(exit.status.and_then(|s| s.code()), Some(7));
            assert_eq!(exit.log, log);
        }
        other => panic!("expected Exited, got {other:?}"),
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("cannot start: no config"), "{text}");
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_grace() {
    let _w = watchdog();
    let d = dir("stop");
    // A child that ends on SIGTERM.
    let mut sup = Supervisor::spawn(
        server_command("serve", &d.join("s.sock")),
        SupervisorOptions::new()
            .log(d.join("a.log"))
            .grace(Duration::from_secs(20)),
    )
    .unwrap();
    let client = sup.connect(d.join("s.sock")).unwrap();
    let t = Instant::now();
    let exit = sup.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "SIGTERM was not enough?"
    );
    assert!(exit.stopped);
    assert_eq!(
        exit.status.and_then(|s| s.signal()),
        Some(libc::SIGTERM),
        "{exit}"
    );
    drop(client);
    // A child that ignores SIGTERM: killed after the grace.
    let grace = Duration::from_millis(300);
    let log = d.join("b.log");
    let mut sup = Supervisor::spawn(
        server_command("ignore-term", &d.join("t.sock")),
        SupervisorOptions::new().log(&log).grace(grace),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("ignoring SIGTERM")
    {
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let exit = sup.stop().unwrap();
    assert!(t.elapsed() >= grace, "killed before the grace");
    assert!(
        t.elapsed() < grace * 10,
        "waited far past the grace: {:?}",
        t.elapsed()
    );
    assert_eq!(
        exit.status.and_then(|s| s.signal()),
        Some(libc::SIGKILL),
        "{exit}"
    );
    assert!(exit.stopped);
}

/// The body of `the_child_dies_with_its_parent_even_when_the_spawning_thread_is_gone`'s
/// middle process: supervises a sleeper, started from a thread that then ends, and reports
/// the sleeper's pid.
#[test]
fn parent_main() {
    if child_role().as_deref() != Some("parent") {
        return;
    }
    let sup = std::thread::spawn(|| {
        Supervisor::spawn(
            {
                let mut c = Command::new("sleep");
                c.arg("60");
                c
            },
            SupervisorOptions::new(),
        )
        .unwrap()
    })
    .join()
    .unwrap();
    println!("@pid {}", sup.pid());
    std::thread::sleep(Duration::from_secs(60));
    drop(sup);
}

#[test]
fn the_child_dies_with_its_parent_even_when_the_spawning_thread_is_gone() {
    let _w = watchdog();
    let mut parent = child_command("parent_main", "parent", &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(parent.stdout.take().unwrap());
    let mut pid = None;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("@pid ") {
            pid = line[at + 5..].trim().parse::<i32>().ok();
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(pid.expect("the parent reported its child")).unwrap();
    // The grandchild is alive (its parent has not reaped it): this pidfd names it.
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
    let readable = |t: Duration| {
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        };
        rustix::event::poll(&mut fds, Some(&ts)).unwrap_or(0) > 0
    };
    // The thread that called `spawn` has ended: the child must live on.
    assert!(
        !readable(Duration::from_millis(300)),
        "the child died with a thread"
    );
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        readable(Duration::from_secs(10)),
        "the child outlived its parent"
    );
}

#[test]
fn sigchld_ignored_main() {
    if child_role().as_deref() != Some("ignore-chld") {
        return;
    }
    // SAFETY: this process is a single-purpose child; SIG_IGN is a valid disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 3"]);
    let sup = Supervisor::spawn(cmd, SupervisorOptions::new()).unwrap();
    let exit = sup.wait_timeout(Duration::from_secs(20)).expect("noticed");
    println!("@status {:?} {}", exit.status, exit);
}

#[test]
fn a_process_that_ignores_sigchld_gets_status_unknown() {
    let _w = watchdog();
    let out = child_command("sigchld_ignored_main", "ignore-chld", &[])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("@status None"), "{text}");
    assert!(text.contains("unknown status"), "{text}");
}

#[test]
fn dropping_the_supervisor_stops_its_child() {
    let _w = watchdog();
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let sup = Supervisor::spawn(cmd, SupervisorOptions::new()).unwrap();
    let pid = rustix::process::Pid::from_raw(sup.pid() as i32).unwrap();
    // Unreaped while the supervisor lives: this pidfd names the child.
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
    drop(sup);
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    assert_eq!(
        rustix::event::poll(&mut fds, Some(&zero)).unwrap(),
        1,
        "the child outlived the drop"
    );
}

/// A supervised server of the socket transport, killed: the blocked call fails with its exit
/// just the same (the socket's end wakes it).
#[test]
fn a_supervised_socket_server_that_is_sigkilled_fails_the_blocked_call() {
    let _w = watchdog();
    let d = dir("socket-kill");
    let sock = d.join("s.sock");
    let log = d.join("server.log");
    let mut cmd = server_command("serve", &sock);
    cmd.env("RINGBELL_TEST_TRANSPORT", "socket");
    let sup = Supervisor::spawn(cmd, SupervisorOptions::new().log(&log)).unwrap();
    let mut client = sup.connect(&sock).unwrap();
    assert!(client.is_socket_transport());
    assert_eq!(client.call(b"hello").unwrap(), b"hello");
    killed_while_calling_slow(&sup, &log, &mut client);
}

/// The server forks a helper that keeps every descriptor (the connection's socket included)
/// open, then exits: the socket never hangs up and the client's own slice is 5 s, so only the
/// supervisor — asleep on the child's pidfd — can end the blocked call within 200 ms.
#[test]
fn a_server_whose_forked_helper_keeps_the_socket_open_is_noticed_through_its_pidfd() {
    let _w = watchdog();
    let (sup, sock, log) = spawn_server("serve", "helper");
    let slow = WaitOptions::new().slice(Duration::from_secs(5));
    let mut client = sup
        .connect_with(&sock, ClientOptions::new().wait_options(slow))
        .unwrap();
    assert_eq!(client.call(b"hello").unwrap(), b"hello");
    let err = client.call(b"fork-then-die").unwrap_err();
    let returned = mono_ns();
    let text = std::fs::read_to_string(&log).unwrap();
    // Ends the helper, whatever the assertions say.
    let helper: Option<i32> = text
        .find("helper ")
        .and_then(|at| text[at + 7..].split_whitespace().next())
        .and_then(|p| p.trim_end_matches(',').parse().ok());
    if let Some(pid) = helper.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    assert!(helper.is_some(), "{text}");
    let exit = check_exit(err, &log, &mut client);
    assert_eq!(exit.status.and_then(|s| s.code()), Some(3), "{exit}");
    let late = Duration::from_nanos(returned - logged_death(&text));
    assert!(late < Duration::from_millis(200), "noticed after {late:?}");
}
