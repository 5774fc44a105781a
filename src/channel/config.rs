//! How a server and a client are set up: sizes, limits, who is admitted, how they wait.

use std::time::Duration;
use std::vec::Vec;

use crate::doorbell::{Fences, WaitOptions};

/// How a server's requests and responses travel: what
/// [`AnyServer::bind`](super::AnyServer::bind) binds.
///
/// The default is shared memory: it is what this crate is for — no system call and no
/// kernel copy per frame while both sides are awake, and the reactor's hand-over of slow
/// inline handlers rides on its doorbell. The socket is the fallback for deployments that
/// cannot share memory between the processes (a sandbox without shared mappings, a policy
/// against them); clients follow the server's choice without a setting of their own.
///
/// # Examples
///
/// ```
/// use ringbell::channel::TransportKind;
///
/// assert_eq!("socket".parse::<TransportKind>(), Ok(TransportKind::Socket));
/// assert_eq!("shm".parse::<TransportKind>(), Ok(TransportKind::SharedMemory));
/// assert!("carrier-pigeon".parse::<TransportKind>().is_err());
/// assert_eq!(TransportKind::default(), TransportKind::SharedMemory);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Lock-free rings in shared memory, futex doorbells ([`Server`](super::Server)).
    #[default]
    SharedMemory,
    /// Length-prefixed frames on the Unix socket ([`SocketServer`](super::SocketServer)).
    Socket,
}

/// A transport name that is neither `shm`/`shared-memory` nor `socket`.
///
/// # Examples
///
/// ```
/// use ringbell::channel::TransportKind;
///
/// let e = "tcp".parse::<TransportKind>().unwrap_err();
/// assert!(e.to_string().contains("tcp"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTransport(pub std::string::String);

impl std::fmt::Display for UnknownTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown transport {:?} (expected \"shm\" or \"socket\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownTransport {}

impl core::str::FromStr for TransportKind {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "shm" | "shared-memory" | "shared_memory" => Ok(Self::SharedMemory),
            "socket" | "unix" => Ok(Self::Socket),
            other => Err(UnknownTransport(other.into())),
        }
    }
}

/// Limits and sizes of a [`Server`](super::Server).
///
/// # Examples
///
/// ```
/// use ringbell::channel::ServerConfig;
///
/// let cfg = ServerConfig::new()
///     .max_clients(256)
///     .request_ring(1 << 16)
///     .response_ring(1 << 20)
///     .max_in_flight(32);
/// # let _ = cfg;
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) max_clients: usize,
    pub(crate) max_per_uid: Option<usize>,
    pub(crate) max_per_process: Option<usize>,
    pub(crate) request_ring: usize,
    pub(crate) response_ring: usize,
    pub(crate) max_request: Option<usize>,
    pub(crate) max_response: Option<usize>,
    pub(crate) max_in_flight: usize,
    pub(crate) stash_bytes: usize,
    /// `None`: every user; otherwise the server's own uid and these.
    pub(crate) allowed_uids: Option<Vec<u32>>,
    pub(crate) wait: WaitOptions,
    pub(crate) fences: Option<Fences>,
    pub(crate) transport: TransportKind,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_clients: 64,
            max_per_uid: None,
            max_per_process: None,
            request_ring: 64 << 10,
            response_ring: 64 << 10,
            max_request: None,
            max_response: None,
            max_in_flight: 64,
            stash_bytes: 1 << 20,
            allowed_uids: Some(Vec::new()),
            wait: WaitOptions::default(),
            fences: None,
            transport: TransportKind::SharedMemory,
        }
    }
}

impl ServerConfig {
    /// The defaults: 64 clients, 64 KiB rings each way, frame caps the largest the rings
    /// allow, 64 requests in flight and 1 MiB of parked responses per client, only this
    /// process's user admitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::ServerConfig;
    ///
    /// let _ = ServerConfig::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport [`AnyServer::bind`](super::AnyServer::bind) serves (default: shared
    /// memory; see [`TransportKind`] for why). [`Server`](super::Server) and
    /// [`SocketServer`](super::SocketServer) each serve their own whatever this says.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ServerConfig, TransportKind};
    ///
    /// let cfg = ServerConfig::new().transport(TransportKind::Socket);
    /// ```
    pub fn transport(mut self, kind: TransportKind) -> Self {
        self.transport = kind;
        self
    }

    /// Most clients connected at once (a configurable limit, not a constant).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().max_clients(1000);
    /// ```
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Most connections one user (by the uid the kernel reports for the connecting process)
    /// may hold at once; beyond it a client is refused with
    /// [`ChannelError::LimitReached`](super::ChannelError::LimitReached). Unlimited (up to
    /// [`max_clients`](Self::max_clients)) by default. With
    /// [`allow_any_uid`](Self::allow_any_uid), set it, so that one user cannot take every
    /// slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().allow_any_uid().max_clients_per_uid(8);
    /// ```
    pub fn max_clients_per_uid(mut self, n: usize) -> Self {
        self.max_per_uid = Some(n);
        self
    }

    /// Most connections one process (by the pid the kernel reports for the connecting
    /// process) may hold at once; beyond it a client is refused with
    /// [`ChannelError::LimitReached`](super::ChannelError::LimitReached). Unlimited by
    /// default. A client in a pid namespace the server cannot see has pid 0 and is not
    /// counted here.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().max_clients_per_process(4);
    /// ```
    pub fn max_clients_per_process(mut self, n: usize) -> Self {
        self.max_per_process = Some(n);
        self
    }

    /// Bytes in each client's request ring (a power of two, at least 64).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().request_ring(1 << 20);
    /// ```
    pub fn request_ring(mut self, bytes: usize) -> Self {
        self.request_ring = bytes;
        self
    }

    /// Bytes in each client's response ring (a power of two, at least 64).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().response_ring(1 << 20);
    /// ```
    pub fn response_ring(mut self, bytes: usize) -> Self {
        self.response_ring = bytes;
        self
    }

    /// Largest request accepted, in bytes (at most half the request ring less 8).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().max_request(4096);
    /// ```
    pub fn max_request(mut self, bytes: usize) -> Self {
        self.max_request = Some(bytes);
        self
    }

    /// Largest response sent, in bytes (at most half the response ring less 8).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().max_response(4096);
    /// ```
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = Some(bytes);
        self
    }

    /// Requests of one client handed to handlers and not yet answered, at most; past them a
    /// request is answered [`Status::Busy`](super::Status::Busy) at once. At least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().max_in_flight(8);
    /// ```
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Bytes of answered responses the server parks for one client whose response ring is
    /// full (or which wait for an earlier response); past them the server stops reading that
    /// client's requests until it reads its responses.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().stash_bytes(4 << 20);
    /// ```
    pub fn stash_bytes(mut self, bytes: usize) -> Self {
        self.stash_bytes = bytes;
        self
    }

    /// Also admits clients running as `uid` (by default only this process's effective uid;
    /// root's clients are admitted only if root runs the server or is allowed here).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().allow_uid(1000).allow_uid(1001);
    /// ```
    pub fn allow_uid(mut self, uid: u32) -> Self {
        if let Some(v) = &mut self.allowed_uids {
            v.push(uid);
        }
        self
    }

    /// Admits clients of every user who can open the socket file (whose mode is still
    /// `0600`: change it yourself to let others reach it).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ServerConfig::new().allow_any_uid();
    /// ```
    pub fn allow_any_uid(mut self) -> Self {
        self.allowed_uids = None;
        self
    }

    /// The fence mode of every connection's rings ([`Fences`]); by default
    /// [`Fences::default_for_new_regions`]. (The server's shared doorbell is symmetric in
    /// every mode: the reactor arms it for each inline run, see the
    /// [doorbell docs](crate::doorbell), "Where the modes meet".) A client that cannot
    /// register for `membarrier` (a seccomp filter, a sandbox) cannot attach an asymmetric
    /// server: its connect fails with [`HeaderError::FencesUnavailable`](crate::HeaderError)
    /// inside [`ChannelError::Attach`](super::ChannelError). Serve such clients with
    /// `Fences::Symmetric`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Fences;
    ///
    /// let _ = ringbell::channel::ServerConfig::new().fences(Fences::Symmetric);
    /// ```
    pub fn fences(mut self, fences: Fences) -> Self {
        self.fences = Some(fences);
        self
    }

    /// How the server and its rings wait (spin budget, sleep slice).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let _ = ringbell::channel::ServerConfig::new().wait_options(WaitOptions::new().spin_budget(0));
    /// ```
    pub fn wait_options(mut self, opts: WaitOptions) -> Self {
        self.wait = opts;
        self
    }
}

/// Options of a [`Client`](super::Client).
///
/// # Examples
///
/// ```
/// use ringbell::channel::ClientOptions;
/// use std::time::Duration;
///
/// let opts = ClientOptions::new().connect_timeout(Duration::from_secs(1));
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) wait: WaitOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            wait: WaitOptions::default(),
        }
    }
}

impl ClientOptions {
    /// The defaults: 5 s to connect, default wait options.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringbell::channel::ClientOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`Client::connect_with`](super::Client::connect_with) waits for the server's
    /// greeting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let _ = ringbell::channel::ClientOptions::new().connect_timeout(Duration::from_millis(200));
    /// ```
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How blocking calls wait (spin budget, sleep slice). Between slices the client checks
    /// for a dead server, so the slice bounds how late it notices.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    /// use std::time::Duration;
    ///
    /// let opts = WaitOptions::new().slice(Duration::from_millis(10));
    /// let _ = ringbell::channel::ClientOptions::new().wait_options(opts);
    /// ```
    pub fn wait_options(mut self, opts: WaitOptions) -> Self {
        self.wait = opts;
        self
    }
}
