//! What a [`Reactor`](crate::reactor::Reactor) needs from the server it drives.

use std::boxed::Box;
use std::time::Duration;
use std::vec::Vec;

use super::error::{RecvRequestError, SendResponseError};
use super::message::{ClientInfo, ConnId, Incoming, RequestId, Status};
use crate::doorbell::WatchBell;

/// The server side of a request/response transport, as a [`Reactor`](crate::reactor::Reactor)
/// drives it: take requests, send responses, sleep until there is something to do, accept
/// and reap connections.
///
/// [`Server`](super::Server) implements it over shared-memory rings. Implement it to serve
/// the same handlers over another transport, or to drive a reactor in a test or a model (the
/// crate's loom model of the reactor does, over in-process rings).
///
/// The reactor calls the methods from one thread at a time: its own, or — while a handler
/// it runs inline overruns its budget — its watcher thread (see
/// [`watch_bell`](Self::watch_bell)). The contract it relies on:
///
/// * every request [`try_recv_request`](Self::try_recv_request) hands out is eventually
///   answered through [`try_send_response`](Self::try_send_response) on its connection, in
///   the order the connection's requests were taken, unless the connection is reported gone;
/// * [`wait`](Self::wait) returns at the latest when something it was told to watch becomes
///   true (a request pending, a blocked response fitting, `ready()`), and it returns in
///   bounded time (a sleep slice) so that housekeeping runs;
/// * the [`waker`](Self::waker) wakes a `wait` from any thread, and a `wait` re-checks
///   `ready()` after announcing its sleep, so a wake that follows a write `ready()` reads is
///   never slept through.
///
/// # Examples
///
/// A transport that has no clients at all: the reactor serves it until stopped.
///
/// ```
/// use ringbell::channel::{ClientInfo, ConnId, Incoming, RecvRequestError, RequestId,
///     SendResponseError, Status, Transport};
/// use ringbell::reactor::{Reactor, Request, Responder};
/// use std::time::Duration;
///
/// struct Nobody;
/// impl Transport for Nobody {
///     fn max_request(&self) -> usize { 64 }
///     fn max_response(&self) -> usize { 64 }
///     fn limits(&self) -> (usize, usize) { (1, 1 << 20) }
///     fn try_recv_request(&mut self, _: &mut [u8]) -> Result<Incoming, RecvRequestError> {
///         Err(RecvRequestError::Empty)
///     }
///     fn has_request(&self) -> bool { false }
///     fn try_send_response(&mut self, _: ConnId, _: RequestId, _: Status, _: &[u8])
///         -> Result<(), SendResponseError> { Err(SendResponseError::Gone) }
///     fn wait(&mut self, _: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
///         std::thread::sleep(Duration::from_millis(1));
///         ready()
///     }
///     fn pause(&mut self, _: ConnId, _: bool) {}
///     fn housekeeping(&mut self, _: bool) -> Vec<ConnId> { Vec::new() }
///     fn shutdown(&mut self) {}
///     fn housekeeping_interval(&self) -> Option<Duration> { Some(Duration::from_millis(10)) }
///     fn client(&self, _: ConnId) -> Option<ClientInfo> { None }
///     fn waker(&self) -> Box<dyn Fn() + Send + Sync> { Box::new(|| {}) }
/// }
///
/// let mut reactor = Reactor::new(Nobody, |_req: Request, res: Responder| drop(res));
/// let stop = reactor.stop_handle();
/// stop.stop();
/// assert_eq!(reactor.run()?.requests, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Transport {
    /// The largest request body: the reactor's receive buffer is this long.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-max_request-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::max_request(&server), server.max_request());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn max_request(&self) -> usize;

    /// The largest response body; a handler's longer answer becomes
    /// [`Status::TooLarge`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-max_response-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::max_response(&server), server.max_response());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn max_response(&self) -> usize;

    /// Per-connection limits: requests in flight (past it a request is answered
    /// [`Status::Busy`]), and bytes of parked responses (past it the connection is paused).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-limits-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let (in_flight, stash) = Transport::limits(&server);
    /// assert_eq!((in_flight, stash), (64, 1 << 20)); // the defaults
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn limits(&self) -> (usize, usize);

    /// Takes the next request into `buf` (at least [`max_request`](Self::max_request) long),
    /// round robin over connections; see
    /// [`Server::try_recv_request`](super::Server::try_recv_request).
    ///
    /// # Errors
    ///
    /// [`RecvRequestError::Empty`] when nothing is pending; `Detached` once for a connection
    /// that went away; `BufferTooSmall` if `buf` is short.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-try_recv_request-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut buf = vec![0u8; Transport::max_request(&server)];
    /// let mut server = server;
    /// assert!(Transport::try_recv_request(&mut server, &mut buf).is_err()); // nothing pending
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError>;

    /// Whether a request (or a detach to report) is pending: a pure peek. The reactor runs a
    /// request inline only while this is false.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-has_request-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(!Transport::has_request(&server));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn has_request(&self) -> bool;

    /// Sends a response on `conn` without blocking.
    ///
    /// # Errors
    ///
    /// `Full` (the reactor parks the response and retries after a `wait`), `TooLarge`, or
    /// `Gone` (the connection is detached; the reactor forgets it).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-try_send_response-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut server = server;
    /// let nobody = ringbell::channel::ConnId { slot: 0, generation: 1 };
    /// let r = Transport::try_send_response(&mut server, nobody, ringbell::channel::RequestId(0), ringbell::channel::Status::Ok, b"");
    /// assert_eq!(r, Err(ringbell::channel::SendResponseError::Gone));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError>;

    /// Sleeps until a request is pending, a response in `blocked` (connection and body
    /// length) would fit, `ready()` holds, or the transport's sleep slice ends; returns
    /// whether it woke for a reason other than the slice's end.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-wait-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut server = server;
    /// assert!(Transport::wait(&mut server, &[], &|| true)); // `ready` held
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool;

    /// Stops (`true`) or resumes taking `conn`'s requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-pause-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut server = server;
    /// Transport::pause(&mut server, ringbell::channel::ConnId { slot: 0, generation: 1 }, true);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn pause(&mut self, conn: ConnId, paused: bool);

    /// Accepts new connections (if `accept`) and detaches hung-up ones, which it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-housekeeping-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut server = server;
    /// assert!(Transport::housekeeping(&mut server, true).is_empty()); // nobody hung up
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId>;

    /// Stops serving: refuses new connections and detaches every connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-shutdown-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut server = server;
    /// Transport::shutdown(&mut server);
    /// assert!(!dir.join("s.sock").exists());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn shutdown(&mut self);

    /// How often housekeeping is due; `None`: never by time (a model without a clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-housekeeping_interval-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::housekeeping_interval(&server), Some(std::time::Duration::from_millis(50)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn housekeeping_interval(&self) -> Option<Duration>;

    /// Who is on `conn`, if it is attached.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-client-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::client(&server, ringbell::channel::ConnId { slot: 0, generation: 1 }), None);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn client(&self, conn: ConnId) -> Option<ClientInfo>;

    /// A function that wakes [`wait`](Self::wait) from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-waker-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let wake = Transport::waker(&server);
    /// std::thread::spawn(move || wake()).join().unwrap();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn waker(&self) -> Box<dyn Fn() + Send + Sync>;

    /// The doorbell [`wait`](Self::wait) sleeps on, for the reactor's watcher thread: while
    /// the reactor thread runs a handler inline it sets the bell's waiter mark (no system
    /// call), so that the ring of a request or an answer arriving meanwhile wakes the
    /// watcher, which takes over the serve loop if the handler overruns its budget (see
    /// [`Reactor::inline_budget`](crate::reactor::Reactor::inline_budget)). It must be the
    /// doorbell every producer of work rings — requests, the [`waker`](Self::waker), freed
    /// response space — and `wait` must sleep on it through the crate's doorbell protocol.
    /// `None` (the default): no hand-over; a slow inline handler holds up the others.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-watch-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(Transport::watch_bell(&server).is_some());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn watch_bell(&self) -> Option<WatchBell> {
        None
    }

    /// How many clients are connected. With one, the reactor does not arm its watcher for an
    /// inline run: only that client could send meanwhile, and its answers could not pass the
    /// inline one's anyway — so a lone client's calls skip the arming's cache traffic. The
    /// default, `usize::MAX`, always arms.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-conns-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::connections(&server), 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn connections(&self) -> usize {
        usize::MAX
    }

    /// Each attached connection's statistics as far as the transport knows them: identity,
    /// when it connected, its transport and its rings' depths (the reactor fills in what it
    /// holds). The reactor answers a statistics control request with them
    /// ([`Client::server_stats`](super::Client::server_stats)). The default knows none: the
    /// reactor then lists the connections it has taken requests from, by
    /// [`client`](Self::client).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-cstats-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(Transport::connection_stats(&server).is_empty());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn connection_stats(&self) -> Vec<super::ConnectionStats> {
        Vec::new()
    }

    /// How the transport's waits for requests went (its doorbell's counters), for the
    /// statistics; `None` (the default) for a transport without a doorbell.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-wstats-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(Transport::wait_stats(&server).map(|w| w.wakes), Some(0));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn wait_stats(&self) -> Option<crate::doorbell::WaitStats> {
        None
    }

    /// Whether the reactor may run a request inline (on its own thread, when nothing is in
    /// flight) while other clients are connected. A transport without a
    /// [`watch_bell`](Self::watch_bell) cannot have a slow inline run handed over, so it can
    /// answer `false`: then, with a concurrent executor and more than one connection, every
    /// request goes to the executor and a slow handler holds up only its own client. The
    /// default, `true`, keeps the inline fast path.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, SocketServer, Transport};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-t-inline-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let shm = Server::bind(dir.join("a.sock"), ServerConfig::new())?;
    /// let socket = SocketServer::bind(dir.join("b.sock"), ServerConfig::new())?;
    /// assert!(Transport::inline_beside_others(&shm)); // the watcher takes slow runs over
    /// assert!(!Transport::inline_beside_others(&socket));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn inline_beside_others(&self) -> bool {
        true
    }

    /// For waiting from an event loop instead of a blocked thread
    /// ([`Reactor::run_async`](crate::reactor::Reactor::run_async)): the one descriptor that
    /// becomes readable when [`wait`](Self::wait) would return, once
    /// [`announce`](Self::announce) said `Wait`. `None` (the default): the transport waits
    /// only by blocking.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-waitfd-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(server.wait_descriptor().is_some()); // its readiness socket
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn wait_descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// An event loop's wait, first half: announce it (after which whatever would end
    /// [`wait`](Self::wait) makes the [`wait_descriptor`](Self::wait_descriptor) readable)
    /// and look once more. `Ready`: there is work, do not wait; `Wait`: wait for the
    /// descriptor (and at most a housekeeping interval); `RetryAfter(d)`: look again after
    /// `d`. The default, for transports without a descriptor, says `Ready`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig, Transport};
    /// use ringbell::doorbell::Announced;
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-announce-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.announce(&[], &|| false), Announced::Wait); // nothing to do
    /// assert_eq!(server.announce(&[], &|| true), Announced::Ready);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn announce(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: &dyn Fn() -> bool,
    ) -> crate::doorbell::Announced {
        let _ = (blocked, ready);
        crate::doorbell::Announced::Ready
    }
}
