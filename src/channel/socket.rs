//! The rendezvous on a Unix-domain socket: binding it, learning who connected, passing
//! descriptors, noticing a hang-up.
//!
//! A channel's server and clients meet at a socket path ([`bind_listener`]). The socket file
//! is created with mode `0600` — the mode is set on the socket *before* `bind(2)`, so there is
//! no moment in which another user could connect — and the server learns who connected from
//! the kernel ([`peer_credentials`], `SO_PEERCRED`), never from bytes the client wrote. Shared
//! memory crosses the socket as file descriptors ([`send_fds`], [`recv_fds`], `SCM_RIGHTS`).
//! The connection stays open for the channel's lifetime: when either process dies the kernel
//! closes its end, and the survivor sees a hang-up ([`is_hung_up`]). That is the race-free
//! liveness source of a channel: unlike a pid, a socket cannot be reused by another process.
//!
//! Man pages: unix(7), socket(2), bind(2), sendmsg(2), recvmsg(2), poll(2).

use std::io;
use std::io::IoSlice;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::error::{BindError, ChannelError};
use crate::clock::{Deadline, Instant};
use rustix::io::Errno;
use std::time::Duration;

/// Most file descriptors one message carries.
pub(crate) const MAX_FDS: usize = 6;

/// The longest socket path, in bytes: `sun_path` holds 108, and a path must leave room for
/// its terminating NUL. Linux binds a 108-byte path without one, but no client can then
/// name it (glibc and Rust's standard library both refuse such a path), so it is refused at
/// bind.
pub const MAX_SOCKET_PATH: usize = 107;

/// `path` as a socket address, if a client can reach it: at most [`MAX_SOCKET_PATH`] bytes,
/// no NUL byte.
pub(crate) fn address(path: &Path) -> Result<SocketAddrUnix, PathError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > MAX_SOCKET_PATH {
        return Err(PathError::TooLong {
            len: bytes.len(),
            max: MAX_SOCKET_PATH,
        });
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(PathError::Invalid);
    }
    SocketAddrUnix::new(path).map_err(|_| PathError::Invalid)
}

/// Why a socket path cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    TooLong { len: usize, max: usize },
    Invalid,
}

impl From<PathError> for BindError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::TooLong { len, max } => Self::PathTooLong { len, max },
            PathError::Invalid => Self::InvalidPath,
        }
    }
}

impl From<PathError> for ChannelError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::TooLong { len, max } => Self::PathTooLong { len, max },
            PathError::Invalid => Self::InvalidPath,
        }
    }
}

/// A new Unix stream socket, close-on-exec.
fn stream_socket() -> rustix::io::Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// Connects a stream socket to the server at `path`, giving up at `deadline` (a connect
/// waits while the server's backlog is full). A signal interrupting the wait (`EINTR`)
/// connects again with the time left; running out of time is [`ChannelError::Timeout`].
pub(crate) fn connect(path: &Path, deadline: Deadline) -> Result<UnixStream, ChannelError> {
    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    let addr = address(path)?;
    let sock = stream_socket()?;
    loop {
        let left = deadline.left().ok_or(ChannelError::Timeout)?;
        // SO_SNDTIMEO bounds the wait for backlog room (zero would mean "for ever").
        set_socket_timeout(&sock, Timeout::Send, Some(left.max(MIN_TIMEOUT)))?;
        match rustix::net::connect(&sock, &addr) {
            Ok(()) => break,
            // Interrupted while waiting for room: the socket is still unconnected.
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Err(ChannelError::Timeout),
            Err(e) => return Err(io::Error::from(e).into()),
        }
    }
    set_socket_timeout(&sock, Timeout::Send, None)?;
    Ok(UnixStream::from(sock))
}

/// Receives one message as [`recv_fds`] does, giving up at `deadline` (`Ok(None)`). A
/// signal interrupting the wait receives again with the time left.
pub(crate) fn recv_fds_until(
    sock: &UnixStream,
    buf: &mut [u8],
    deadline: Deadline,
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    loop {
        let Some(left) = deadline.left() else {
            return Ok(None);
        };
        sock.set_read_timeout(Some(left.max(MIN_TIMEOUT)))?;
        match recv_fds(sock, buf) {
            Ok(got) => {
                sock.set_read_timeout(None)?;
                return Ok(Some(got));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// The shortest socket timeout set: a zero timeout would mean "no timeout".
const MIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);

/// Who is on the other end of a Unix-domain socket, as the kernel recorded it when the
/// connection was made (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeerCredentials {
    /// Process id of the peer (of the process that called `connect(2)`).
    pub(crate) pid: u32,
    /// Effective user id of the peer.
    pub(crate) uid: u32,
    /// Effective group id of the peer.
    pub(crate) gid: u32,
}

/// The credentials of the process at the other end of `sock`, from the kernel.
///
/// The pid is 0 when the peer is in a pid namespace the caller cannot see (e.g. a client on
/// the host of a containerised server): it is not an error.
///
/// # Errors
///
/// The error of `getsockopt(SO_PEERCRED)`.
pub(crate) fn peer_credentials(sock: impl AsFd) -> io::Result<PeerCredentials> {
    use std::os::fd::AsRawFd;
    // Not rustix's `socket_peercred`: it stores the pid in a non-zero type, and the kernel
    // reports 0 for a peer outside our pid namespace.
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable `ucred` and `len` holds its size, as
    // `getsockopt(SO_PEERCRED)` requires; the fd is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short SO_PEERCRED",
        ));
    }
    Ok(PeerCredentials {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// What to do when the socket path already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Stale {
    /// Refuse: `BindError::Stale` if nobody listens there (a crashed server's leftover),
    /// `BindError::InUse` if someone does.
    #[default]
    Refuse,
    /// Remove a leftover socket file and bind — only if nobody listens on it (a connect is
    /// refused). A live server's socket is never replaced: [`BindError::InUse`].
    Replace,
}

/// Creates a listening Unix-domain stream socket at `path`, mode `0600`, non-blocking.
///
/// The mode is set on the socket before `bind(2)` (Linux creates the file with the socket's
/// mode less the umask), so the file never admits anyone but this user (and root).
///
/// With [`Stale::Replace`], two servers replacing the same stale file at the same moment can
/// both succeed, one of them on a file the other removed: start one server per path. Probing
/// whether a server listens is a blocking `connect(2)`, which waits while a live server's
/// backlog is full.
///
/// # Errors
///
/// [`BindError::InUse`], [`BindError::Stale`] (see [`Stale`]), [`BindError::NotASocket`],
/// or [`BindError::Io`].
pub(crate) fn bind_listener(path: &Path, stale: Stale) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::FileTypeExt;
    let addr = address(path)?;
    let sock = stream_socket()?;
    rustix::fs::fchmod(&sock, rustix::fs::Mode::from_raw_mode(0o600))?;
    match rustix::net::bind(&sock, &addr) {
        Ok(()) => {}
        Err(rustix::io::Errno::ADDRINUSE) => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.file_type().is_socket() {
                return Err(BindError::NotASocket);
            }
            match UnixStream::connect(path) {
                Ok(_) => return Err(BindError::InUse),
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::CONNREFUSED.raw_os_error()) =>
                {
                    if stale == Stale::Refuse {
                        return Err(BindError::Stale);
                    }
                    std::fs::remove_file(path)?;
                    rustix::net::bind(&sock, &addr)?;
                }
                Err(e) => return Err(BindError::Io(e)),
            }
        }
        Err(e) => return Err(e.into()),
    }
    let listen = || -> Result<UnixListener, BindError> {
        rustix::net::listen(&sock, 128)?;
        let listener = UnixListener::from(sock.try_clone()?);
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    listen().inspect_err(|_| {
        // Leave no socket file behind that the next bind would take for a crashed server's.
        let _ = std::fs::remove_file(path);
    })
}

/// Sends `bytes` (non-empty) and the descriptors `fds` (at most [`MAX_FDS`]) in one message.
///
/// # Errors
///
/// The error of `sendmsg(2)`; [`io::ErrorKind::InvalidInput`] for too many descriptors or
/// empty bytes; [`io::ErrorKind::WriteZero`] if the message did not go whole.
pub(crate) fn send_fds(sock: impl AsFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS || bytes.is_empty() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // Interrupted before anything was sent (a stream socket reports a partial send as a
    // count, not as EINTR): send again.
    let sent = loop {
        match rustix::net::sendmsg(
            &sock,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?,
        }
    };
    if sent != bytes.len() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(())
}

/// Receives one message as [`recv_fds`] does if one is waiting; `Ok(None)` at once if not.
/// A signal interrupting the call receives again.
pub(crate) fn try_recv_fds(
    sock: &UnixStream,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    loop {
        match recv_fds_with(sock, buf, RecvFlags::DONTWAIT) {
            Ok(got) => return Ok(Some(got)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Receives one message into `buf` and the descriptors that came with it (close-on-exec).
/// Returns the byte count (0 at end of stream) and the descriptors. A message whose control
/// data was truncated is an error, and every descriptor that did arrive is closed.
///
/// # Errors
///
/// The error of `recvmsg(2)`; [`io::ErrorKind::InvalidData`] for truncated control data.
pub(crate) fn recv_fds(sock: impl AsFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    recv_fds_with(sock, buf, RecvFlags::empty())
}

fn recv_fds_with(
    sock: impl AsFd,
    buf: &mut [u8],
    flags: RecvFlags,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        flags | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many file descriptors in one message",
        ));
    }
    Ok((msg.bytes, fds))
}

/// Whether the other end of a connected stream socket has gone: it closed, or its process
/// died (the kernel closes a dead process's descriptors). A `poll(2)` with zero timeout.
/// Bytes waiting to be read do not count.
///
/// Only the kernel's answer "hung up" counts: a `poll` interrupted by a signal (`EINTR`,
/// which `SA_RESTART` does not restart for `poll`) is asked again, and any other failure to
/// ask (`ENOMEM`) reports the peer as still there — a live peer taken for dead would be
/// detached for good, while a dead one is asked about again a slice later.
pub(crate) fn is_hung_up(sock: impl AsFd) -> bool {
    poll_now(sock.as_fd(), PollFlags::RDHUP).is_some_and(|revents| {
        revents.intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR | PollFlags::NVAL)
    })
}

/// The events of `fd` right now (a `poll(2)` for `events` with zero timeout): `Some(empty)`
/// if none, `None` if the kernel could not be asked. An `EINTR` is retried (a zero-timeout
/// poll cannot wait, so the retry is bounded by how often signals arrive; after 64 in a row
/// it gives up with `None`).
pub(crate) fn poll_now(fd: BorrowedFd<'_>, events: PollFlags) -> Option<PollFlags> {
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for _ in 0..64 {
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(0) => return Some(PollFlags::empty()),
            Ok(_) => return Some(fds[0].revents()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// The first pause of accepting after `accept` ran out of descriptors; it doubles, to
/// [`MAX_ACCEPT_BACKOFF`], while that goes on.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepting connections without spinning when the process runs out of descriptors: after
/// `accept` fails with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`, accepting pauses — 10 ms,
/// doubling to a second while it goes on — rather than spinning on a backlog it cannot
/// take.
#[derive(Debug)]
pub(crate) struct AcceptPace {
    /// No accepting before this instant.
    resume: Option<Instant>,
    backoff: Duration,
}

impl AcceptPace {
    pub(crate) fn new() -> Self {
        Self {
            resume: None,
            backoff: MIN_ACCEPT_BACKOFF,
        }
    }

    /// The next waiting connection: `None` if nobody waits or accepting is paused.
    /// Interruptions and connections that died in the backlog are skipped.
    ///
    /// # Errors
    ///
    /// An error of `accept(2)`; running out of descriptors also pauses accepting.
    pub(crate) fn next(&mut self, listener: &UnixListener) -> io::Result<Option<UnixStream>> {
        if let Some(resume) = self.resume {
            if Instant::now() < resume {
                return Ok(None);
            }
            self.resume = None;
        }
        loop {
            match listener.accept() {
                Ok((sock, _)) => {
                    self.backoff = MIN_ACCEPT_BACKOFF;
                    return Ok(Some(sock));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.backoff = MIN_ACCEPT_BACKOFF;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if errno_in(&e, &[Errno::CONNABORTED]) => continue,
                Err(e)
                    if errno_in(
                        &e,
                        &[Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM],
                    ) =>
                {
                    self.resume = Some(Instant::now().after(self.backoff));
                    self.backoff = (self.backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether `e` is one of the `errnos`.
pub(crate) fn errno_in(e: &io::Error, errnos: &[Errno]) -> bool {
    e.raw_os_error()
        .is_some_and(|raw| errnos.iter().any(|n| n.raw_os_error() == raw))
}
