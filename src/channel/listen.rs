//! What both transports' servers share about sockets: the listening socket and its file
//! ([`Listening`]), and a connected client's socket, identity and pidfd ([`Peer`]).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::error::ChannelError;
use super::handshake::{self, ClientHello};
use super::message::{ClientInfo, ConnId};
use super::socket::{self, PeerCredentials, Stale};
use crate::fork;
use crate::liveness::pidfd_exited;

/// A server's listening socket and its file. The file is removed when the server closes or
/// drops it — only while it is still this server's file (same device and inode: another
/// server may have replaced it), and never by a copy inherited across `fork(2)`.
pub(crate) struct Listening {
    /// `None` once closed.
    listener: Option<UnixListener>,
    path: PathBuf,
    /// The socket file's identity.
    inode: (u64, u64),
    /// The fork generation when bound.
    fork_gen: u32,
}

impl Listening {
    /// Binds `path` (created `0600`).
    pub(crate) fn bind(path: &Path, stale: Stale) -> Result<Self, ChannelError> {
        let fork_gen = fork::generation();
        let listener = socket::bind_listener(path, stale)?;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
        };
        use std::os::unix::fs::MetadataExt;
        Ok(Self {
            listener: Some(listener),
            path: path.to_path_buf(),
            inode: (meta.dev(), meta.ino()),
            fork_gen,
        })
    }

    /// The listening socket, until closed.
    pub(crate) fn listener(&self) -> Option<&UnixListener> {
        self.listener.as_ref()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops listening: closes the socket and removes its file if it is still ours.
    pub(crate) fn close(&mut self) {
        if self.listener.take().is_some() && !fork::forked(self.fork_gen) {
            self.remove_file();
        }
    }

    fn remove_file(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            use std::os::unix::fs::MetadataExt;
            if (meta.dev(), meta.ino()) == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.close();
    }
}

/// A connected client as a server sees it: its socket, its identity from the kernel, and the
/// pidfd its hello brought (which says the client process died even while a process it
/// forked holds the socket open).
pub(crate) struct Peer {
    pub(crate) sock: UnixStream,
    pub(crate) cred: PeerCredentials,
    /// When it was accepted.
    pub(crate) since: std::time::SystemTime,
    pidfd: Option<OwnedFd>,
    /// The client's hello has not been read yet.
    hello_pending: bool,
}

impl Peer {
    /// A peer just greeted; reads its hello if it has come (it usually has).
    pub(crate) fn new(sock: UnixStream, cred: PeerCredentials) -> Self {
        let mut p = Self {
            sock,
            cred,
            since: std::time::SystemTime::now(),
            pidfd: None,
            hello_pending: true,
        };
        p.read_hello();
        p
    }

    /// Whether its hello has not been read yet (on the socket transport no frame is read
    /// before it).
    pub(crate) fn hello_pending(&self) -> bool {
        self.hello_pending
    }

    /// Reads the client's hello if it has come (without waiting).
    pub(crate) fn read_hello(&mut self) {
        match handshake::try_client_hello(&self.sock) {
            ClientHello::Pending => {}
            ClientHello::Hello(pidfd) => {
                self.pidfd = pidfd;
                self.hello_pending = false;
            }
            ClientHello::Other => self.hello_pending = false,
        }
    }

    /// Whether the client is gone: its socket hung up, or its process exited.
    pub(crate) fn is_gone(&mut self) -> bool {
        if self.hello_pending {
            self.read_hello();
        }
        socket::is_hung_up(&self.sock)
            || self.pidfd.as_ref().is_some_and(|p| pidfd_exited(p.as_fd()))
    }

    /// Its statistics' identity part, on `conn` over `transport`.
    pub(crate) fn stats(
        &self,
        conn: ConnId,
        transport: super::TransportKind,
    ) -> super::ConnectionStats {
        let c = &self.cred;
        super::ConnectionStats {
            connected: Some(self.since),
            transport: Some(transport),
            ..super::ConnectionStats::new(conn, c.pid, c.uid, c.gid)
        }
    }

    /// Who it is, on `conn`.
    pub(crate) fn info(&self, conn: ConnId) -> ClientInfo {
        ClientInfo {
            conn,
            pid: self.cred.pid,
            uid: self.cred.uid,
            gid: self.cred.gid,
        }
    }
}
