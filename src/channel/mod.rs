//! Request/response channels between processes: a [`Server`] and its [`Client`]s.
//!
//! # Shape
//!
//! A server listens on a Unix-domain socket path (created `0600`). A client connects; the server learns its pid, uid and gid from
//! the kernel (`SO_PEERCRED`), creates two sealed memfd rings for it — a *request* ring (the
//! client produces, the server consumes) and a *response* ring (the reverse) — and sends them,
//! with its doorbell region, over the socket (`SCM_RIGHTS`). From then on every request and
//! response is a frame in shared memory; the socket carries nothing more.
//!
//! # Liveness
//!
//! Each side learns of the other's end two ways: the socket hangs up (the peer closed it, or
//! its process died and the kernel closed it), and — because a process the peer forked may
//! keep a copy of the socket open for as long as it lives — a *pidfd* of the peer process,
//! which the handshake passes both ways and which says "exited" whatever happened to the
//! socket (and whatever namespace the peer's pid lives in). A client checks between the sleep
//! slices of a blocking call, a server once a slice in its housekeeping: a death is seen
//! within a slice (50 ms by default), never on every call. A `poll` interrupted by a signal
//! (`EINTR`) is asked again; a poll that fails never counts as a death.
//!
//! # Under load and in odd processes
//!
//! * **Signals.** Every system call on the way — `connect`, the greeting's `recvmsg`, the
//!   `sendmsg`s, `accept`, `poll`, the futex waits — treats `EINTR` as "ask again", with
//!   deadlines kept: a handled signal is never a hang-up, a timeout or an error.
//! * **Connect storms.** [`Server::accept_pending`] takes at most eight connections a call, and
//!   a reactor calls it once a slice, so clients that connect and vanish by the thousand slow
//!   the newcomers, not the connected clients. It reaps dead connections before it accepts, so
//!   a client replacing a dead one finds its slot free.
//! * **Exhaustion.** Limits per user and per process
//!   ([`ServerConfig::max_clients_per_uid`], [`ServerConfig::max_clients_per_process`]) keep
//!   one user from taking every slot; a connection costs the server six descriptors, checked
//!   against `RLIMIT_NOFILE` before the handshake (refused:
//!   [`ChannelError::ServerOutOfResources`]); an `accept` out of descriptors pauses accepting
//!   (10 ms doubling to 1 s) instead of spinning.
//! * **Fork.** A [`Server`], [`Client`], [`Reactor`](crate::reactor::Reactor) or
//!   [`ThreadPool`](crate::reactor::ThreadPool) inherited by a forked child does nothing
//!   there ([`ChannelError::Forked`], [`CallError::Forked`]): dropping it neither removes the
//!   parent's socket file nor closes its connections, nor joins threads that do not exist in
//!   the child. Bind, connect and build reactors after daemonising, not before.
//! * **Socket paths** longer than [`MAX_SOCKET_PATH`] (107) bytes are refused at bind:
//!   Linux would bind a 108-byte path that no client can name.
//!
//! ```text
//!  client 1 ──request ring──┐                       ┌──response ring──▶ client 1
//!  client 2 ──request ring──┼─▶ fan-in ─▶ server ───┼──response ring──▶ client 2
//!  client n ──request ring──┘   (one doorbell)      └──response ring──▶ client n
//! ```
//!
//! The server's intake is a [`FanIn`](crate::fanin::FanIn) of the request rings, so it sleeps on *one* doorbell.
//! That doorbell is rung by requests (the clients' producers), by [`Server::notifier`]
//! (worker threads with finished responses), and by freed space in response rings: response
//! rings are made with [`Config::shared_space_bell`](crate::spsc::Config::shared_space_bell), so a client's read wakes a server
//! that waits to send it more. The server never blocks on one client.
//!
//! # Wire format
//!
//! A request is a frame whose tag is its [`RequestId`] (29 bits, wrapping). A response is a
//! frame whose tag carries the same id and a [`Status`] in the top 3 bits. Responses on a
//! connection arrive in request order (the [reactor](crate::reactor) guarantees it). The
//! greeting and the tag layout are in [`wire`](crate::wire).
//!
//! # Files
//!
//! `message.rs` (ids, statuses, responses), `error.rs`, `config.rs` (server and client
//! settings), `socket.rs` (the Unix-socket rendezvous), `handshake.rs` (the hello and the
//! greeting),
//! `transport.rs` (what the reactor needs), `server.rs`, `client.rs`.
//!
//! # Trust
//!
//! The server trusts nothing a client writes: a client can corrupt only its own two rings
//! (the server then detaches it, see [`RecvRequestError::Detached`]) and ring or disturb the
//! shared doorbell (which makes the server wake early, or late by at most one sleep slice).
//! The client's identity comes from the kernel. Clients of another user are refused unless
//! [`ServerConfig::allow_uid`] or [`ServerConfig::allow_any_uid`] says otherwise.
//!
//! # Examples
//!
//! ```
//! use ringbell::channel::{Client, Server, ServerConfig, Status};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("ringbell-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("echo.sock");
//! let mut server = Server::bind(&path, ServerConfig::new())?;
//!
//! let client = std::thread::spawn({
//!     let path = path.clone();
//!     move || {
//!         let mut client = Client::connect(&path).unwrap();
//!         client.call_timeout(b"ping", Duration::from_secs(5)).unwrap()
//!     }
//! });
//!
//! // A bare serial loop over the server's own API (the reactor does this and more).
//! let mut buf = vec![0u8; server.max_request()];
//! loop {
//!     server.accept_pending()?;
//!     match server.try_recv_request(&mut buf) {
//!         Ok(req) => {
//!             let body = &buf[..req.len];
//!             server.try_send_response(req.conn, req.id, Status::Ok, body).unwrap();
//!             break;
//!         }
//!         Err(_) => {
//!             server.wait(&[], || false, Some(Duration::from_millis(5)));
//!         }
//!     }
//! }
//! assert_eq!(client.join().unwrap(), b"ping");
//! # drop(server);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(all(feature = "tokio", not(loom)))]
pub mod asynchronous;
#[cfg(not(loom))]
mod child;
#[cfg(not(loom))]
mod client;
mod config;
#[cfg(not(loom))]
mod dual;
mod error;
#[cfg(not(loom))]
mod handshake;
#[cfg(not(loom))]
mod listen;
mod message;
#[cfg(not(loom))]
mod server;
#[cfg(not(loom))]
mod socket;
#[cfg(not(loom))]
mod socket_server;
mod stats;
#[cfg(not(loom))]
mod stream;
#[cfg(not(loom))]
mod supervisor;
mod transport;

#[cfg(all(feature = "tokio", not(loom)))]
pub use asynchronous::AsyncClient;
#[cfg(not(loom))]
pub use client::{Client, Response};
pub use config::{ClientOptions, ServerConfig, TransportKind, UnknownTransport};
#[cfg(not(loom))]
pub use dual::DualServer;
#[cfg(not(loom))]
pub use error::{BindError, ChannelError};
pub use error::{CallError, RecvRequestError, SendResponseError, ServerExit};
pub use message::{ClientInfo, ConnId, Incoming, RequestId, Status};
#[cfg(not(loom))]
pub use server::Server;
#[cfg(not(loom))]
pub use socket::MAX_SOCKET_PATH;
#[cfg(not(loom))]
pub use socket_server::{AnyServer, SocketServer};
pub(crate) use stats::Control;
pub use stats::{ConnectionStats, RingDepth, ServerStats, StatsError};
#[cfg(not(loom))]
pub use supervisor::{SpawnError, Supervisor, SupervisorOptions};
pub use transport::Transport;
