//! `ringbell inspect PATH` on a channel server's socket: a server and a reactor in this
//! process, one client of this process, and the command as the second client.

mod common;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::JoinHandle;

use common::{Json, ringbell, watchdog};
use ringbell::channel::{Client, Server, ServerConfig};
use ringbell::reactor::{Reactor, ReactorStats, Request, Responder, StopHandle};

/// An echo server on a fresh socket, served by a reactor on a thread; stopped and joined by
/// [`Serving::stop`].
struct Serving {
    dir: PathBuf,
    socket: PathBuf,
    stop: StopHandle,
    thread: Option<JoinHandle<std::io::Result<ReactorStats>>>,
}

impl Serving {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ringbell-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("echo.sock");
        let server = Server::bind(&socket, ServerConfig::new()).unwrap();
        let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
            let _ = res.respond(&req.body);
        });
        let stop = reactor.stop_handle();
        let thread = std::thread::spawn(move || reactor.run());
        Self {
            dir,
            socket,
            stop,
            thread: Some(thread),
        }
    }

    fn path(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Stops the reactor and checks it ended without an error.
    fn stop(mut self) {
        self.stop.stop();
        let run = self
            .thread
            .take()
            .unwrap()
            .join()
            .expect("the reactor thread");
        run.expect("the reactor ended with an error");
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn inspect_a_server_socket_lists_its_client_and_the_command() {
    let _watchdog = watchdog();
    let serving = Serving::start("stats");
    let mut client = Client::connect(serving.path()).unwrap();
    for i in 0..3u8 {
        assert_eq!(client.call(&[i; 8]).unwrap(), [i; 8]);
    }
    let pid = u64::from(std::process::id());

    let run = ringbell(&["inspect", serving.path(), "--json"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one JSON object on one line");
    let j = Json::parse(&run.stdout);
    assert_eq!(j.get("server").str(), serving.path());
    assert_eq!(j.get("pid").u64(), pid, "the server runs in this process");
    assert!(j.get("requests").u64() >= 3, "{j:?}");
    assert!(j.get("sent").u64() >= 3, "{j:?}");
    assert_eq!(
        j.get("total_connections").u64(),
        2,
        "this client and the command"
    );
    let conns = j.get("connections").array();
    assert_eq!(conns.len(), 2, "{j:?}");
    let ours: Vec<_> = conns.iter().filter(|c| c.get("pid").u64() == pid).collect();
    assert_eq!(ours.len(), 1, "this process's client: {j:?}");
    let ours = ours[0];
    assert_eq!(ours.get("slot").u64(), u64::from(client.slot()));
    assert_eq!(ours.get("this_command"), &Json::Bool(false));
    assert_eq!(ours.get("transport").str(), "shm");
    assert_eq!(ours.get("in_flight").u64(), 0);
    assert_eq!(ours.get("paused"), &Json::Bool(false));
    assert!(ours.get("request_capacity").u64() > 0);
    assert!(ours.get("response_capacity").u64() > 0);
    assert!(ours.get("connected_utc").str().starts_with("20"));
    let command = conns.iter().find(|c| c.get("pid").u64() != pid).unwrap();
    assert_eq!(command.get("this_command"), &Json::Bool(true));

    let run = ringbell(&["inspect", serving.path()]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(
        run.stdout
            .starts_with(&format!("server       {}\n", serving.path()))
    );
    assert!(
        run.stdout.contains(&format!("pid          {pid}\n")),
        "{}",
        run.stdout
    );
    // The first command's connection may not be reaped yet: 2 or 3 connections, one row
    // each, exactly one of them this command's, one this process's client.
    let count: usize = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("connections  "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connection count in {}", run.stdout));
    assert!((2..=3).contains(&count), "{}", run.stdout);
    let rows: Vec<_> = run.stdout.lines().filter(|l| l.contains(" shm ")).collect();
    assert_eq!(rows.len(), count, "{}", run.stdout);
    assert_eq!(rows.iter().filter(|r| r.starts_with('*')).count(), 1);
    let ours = format!(" {pid} ");
    assert_eq!(
        rows.iter().filter(|r| r.contains(&ours)).count(),
        1,
        "{}",
        run.stdout
    );

    // The client still works after the command came and went.
    assert_eq!(client.call(b"after").unwrap(), b"after");
    drop(client);
    serving.stop();
}

#[test]
fn a_socket_nobody_serves_is_an_error_within_the_bound() {
    let _watchdog = watchdog();
    let dir = std::env::temp_dir().join(format!("ringbell-cli-{}-dead", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // A socket file whose listener is gone: refused at once.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let run = ringbell(&["inspect", stale.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with("ringbell: cannot connect to"),
        "{run:?}"
    );

    // A listener that never greets: the client's connect timeout (5 s) ends it.
    let mute = dir.join("mute.sock");
    let _listener = UnixListener::bind(&mute).unwrap();
    let run = ringbell(&["inspect", mute.to_str().unwrap(), "--json"]);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        run.stderr.starts_with("ringbell: cannot connect to"),
        "{run:?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
