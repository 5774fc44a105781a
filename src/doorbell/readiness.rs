//! A readiness descriptor: what a waiter that must not block a thread (an async task, a
//! `poll(2)` loop) waits on instead of the futex. The argument is in the
//! [module docs](super), "Async waits".

#[cfg(not(loom))]
use std::io;
#[cfg(not(loom))]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// The waiting side's readiness descriptor for async waits on a doorbell: an eventfd that
/// ringers write when they answer this waiter's announcement, and that the waiter's event
/// loop polls for readability ([`AsFd`]). Not `Clone`: one waiter drains it, so one waiter
/// owns it. Ringers get a [`ReadinessSignal`] ([`signal`](Self::signal), or in another
/// process the descriptor through `SCM_RIGHTS` or inheritance and
/// [`ReadinessSignal::from_fd`]).
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{Announced, BellConfig, Doorbell, Readiness};
/// use ringbell::region::HeapRegion;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let region = HeapRegion::new(&BellConfig)?;
/// let waiter = Doorbell::new(region.clone(), 1024).unwrap();
/// let ringer = Doorbell::new(region, 1024).unwrap();
/// let readiness = Readiness::new()?;
/// let signal = readiness.signal();
/// let flag = Arc::new(AtomicBool::new(false));
/// let f = flag.clone();
/// let t = std::thread::spawn(move || {
///     f.store(true, Ordering::Release); // publish,
///     ringer.ring_readiness(&signal);   // then ring
/// });
/// // An event loop's shape: look, announce, and wait on the descriptor only if not ready.
/// while !flag.load(Ordering::Acquire) {
///     match waiter.poll_ready(&readiness, || flag.load(Ordering::Acquire)) {
///         Announced::Ready => break,
///         Announced::Wait => {
///             readiness.wait_timeout(Duration::from_secs(10));
///         }
///         Announced::RetryAfter(d) => std::thread::sleep(d), // a runtime's timer, in async code
///     }
/// }
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Readiness {
    inner: Arc<Inner>,
}

/// A ringer's handle on a waiter's [`Readiness`]: what
/// [`Doorbell::ring_readiness`](super::Doorbell::ring_readiness) writes when it answers the
/// waiter. `Clone`: every ringer of the line holds one.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Readiness;
///
/// let readiness = Readiness::new()?;
/// let for_a_ringer = readiness.signal();
/// let for_another = for_a_ringer.clone();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ReadinessSignal {
    inner: Arc<Inner>,
}

#[cfg(not(loom))]
struct Inner {
    fd: OwnedFd,
    kind: Kind,
    /// A socket readiness whose ringers' end is closed (read returned end of file): it stays
    /// readable for good, so its waiter must stop waiting on it.
    ended: core::sync::atomic::AtomicBool,
    /// The members of a set (`Kind::Set`).
    #[cfg(feature = "std")]
    members: Option<std::sync::Mutex<Members>>,
}

/// A set's member sockets (the waiter's ends), by key, and the keys whose ringers' end was
/// closed or shut down (taken out of the set by a drain).
#[cfg(all(not(loom), feature = "std"))]
#[derive(Default)]
struct Members {
    fds: std::collections::HashMap<u64, OwnedFd>,
    ended: Vec<u64>,
}

/// What kind of descriptor carries the readiness.
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An eventfd that the waiter and its ringers share (one file description): for a
    /// waiter and ringers that trust each other (one process, or cooperating ones).
    EventFd,
    /// One end of a stream socket pair: the waiter reads its end, ringers write the other.
    /// Each end is its own file description, and a ring is a `send` with `MSG_DONTWAIT`:
    /// nothing the waiting side does to its end can make a ring block. For a waiter in a
    /// process the ringers do not trust (a channel's client).
    Socket,
    /// An epoll set of socket pairs' waiter ends, one pair per ringer (a server's clients,
    /// and the server's own waker): a ringer can only ever close or flood its own pair, and
    /// the waiter learns which one did.
    #[cfg(feature = "std")]
    Set,
}

#[cfg(loom)]
struct Inner {
    count: loom::sync::Mutex<u64>,
    changed: loom::sync::Condvar,
}

impl Readiness {
    /// A new descriptor (an eventfd, non-blocking, close-on-exec).
    ///
    /// # Errors
    ///
    /// If the kernel gives no eventfd (out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// let readiness = ringbell::doorbell::Readiness::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn new() -> io::Result<Self> {
        use rustix::event::{EventfdFlags, eventfd};
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self {
            inner: Arc::new(Inner {
                fd,
                kind: Kind::EventFd,
                ended: Default::default(),
                #[cfg(feature = "std")]
                members: None,
            }),
        })
    }

    /// A readiness whose waiter is in another process that the ringers need not trust: a
    /// stream socket pair. Returns the ringers' signal and the waiter's end, to be passed to
    /// the waiter (`SCM_RIGHTS`), which wraps it with [`from_socket`](Self::from_socket).
    /// A ring is a one-byte `send` with `MSG_DONTWAIT` on the ringers' own end: the waiting
    /// side can neither make it block (its end is a separate file description, whose flags
    /// it may change at will) nor make it fail in any way but going unheard.
    #[cfg(all(not(loom), feature = "std"))]
    pub(crate) fn socket_pair() -> io::Result<(ReadinessSignal, OwnedFd)> {
        let (ringers, waiters) = stream_pair()?;
        let signal = ReadinessSignal {
            inner: Arc::new(Inner {
                fd: ringers,
                kind: Kind::Socket,
                ended: Default::default(),
                #[cfg(feature = "std")]
                members: None,
            }),
        };
        Ok((signal, waiters))
    }

    /// The waiter's end of a [`socket_pair`](Self::socket_pair), received from the ringers'
    /// process. Made non-blocking here. Its [`signal`](Self::signal) reaches nobody: the
    /// ringers hold the other end.
    #[cfg(all(not(loom), feature = "tokio"))]
    pub(crate) fn from_socket(fd: OwnedFd) -> io::Result<Self> {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        // A stream socket, or nothing: its drain is a `recv`.
        if rustix::net::sockopt::socket_type(&fd)? != rustix::net::SocketType::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a readiness socket must be a stream socket",
            ));
        }
        // For the event loop's sake (its reads are `recv`s with `MSG_DONTWAIT` anyway).
        let flags = fcntl_getfl(&fd)?;
        fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
        Ok(Self {
            inner: Arc::new(Inner {
                fd,
                kind: Kind::Socket,
                ended: Default::default(),
                #[cfg(feature = "std")]
                members: None,
            }),
        })
    }

    /// A new descriptor (loom's model of an eventfd).
    #[cfg(loom)]
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                count: loom::sync::Mutex::new(0),
                changed: loom::sync::Condvar::new(),
            }),
        })
    }

    /// A handle for a ringer of this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let readiness = ringbell::doorbell::Readiness::new()?;
    /// let signal = readiness.signal();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn signal(&self) -> ReadinessSignal {
        ReadinessSignal {
            inner: self.inner.clone(),
        }
    }

    /// Empties the descriptor (the waiter, before it announces).
    pub(crate) fn drain(&self) {
        #[cfg(not(loom))]
        match self.inner.kind {
            Kind::EventFd => {
                let mut word = [0u8; 8];
                loop {
                    match rustix::io::read(&self.inner.fd, &mut word) {
                        Err(rustix::io::Errno::INTR) => continue,
                        _ => return,
                    }
                }
            }
            Kind::Socket => {
                if drain_socket(&self.inner.fd) {
                    self.inner
                        .ended
                        .store(true, core::sync::atomic::Ordering::Relaxed);
                }
            }
            #[cfg(feature = "std")]
            Kind::Set => self.drain_set(),
        }
        #[cfg(loom)]
        {
            *self.inner.count.lock().unwrap() = 0;
        }
    }

    /// A set's drain: every member with something to read (an `epoll_wait` that does not
    /// wait), each drained; a member whose ringers' end is closed or shut down (or that
    /// fails) is taken out of the set and its key reported by [`take_ended`](Self::take_ended).
    #[cfg(all(not(loom), feature = "std"))]
    fn drain_set(&self) {
        use rustix::event::epoll;
        let Some(members) = &self.inner.members else {
            return;
        };
        let mut m = members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Bounded: members that keep flooding stay readable (spurious wakes), never a
        // drain without end.
        for _ in 0..16 {
            let mut events = std::vec::Vec::with_capacity(64);
            match epoll::wait(
                &self.inner.fd,
                rustix::buffer::spare_capacity(&mut events),
                Some(&zero),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            for e in &events {
                let key = e.data.u64();
                let ended = m.fds.get(&key).is_some_and(drain_socket);
                if ended {
                    if let Some(fd) = m.fds.remove(&key) {
                        let _ = epoll::delete(&self.inner.fd, &fd);
                    }
                    m.ended.push(key);
                }
            }
            if events.len() < 64 {
                return;
            }
        }
    }

    /// A new set: an epoll descriptor (readable when a member is), no members yet.
    #[cfg(all(not(loom), feature = "std"))]
    pub(crate) fn set() -> io::Result<Self> {
        use rustix::event::epoll;
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Self {
            inner: Arc::new(Inner {
                fd,
                kind: Kind::Set,
                ended: Default::default(),
                members: Some(Default::default()),
            }),
        })
    }

    /// Adds a member to a set under `key` (replacing one there): a new stream socket pair
    /// whose waiter end joins the set; returns the ringers' end, for the ringer (through
    /// `SCM_RIGHTS`; it wraps it with [`ReadinessSignal::from_fd`]).
    #[cfg(all(not(loom), feature = "std"))]
    pub(crate) fn add_member(&self, key: u64) -> io::Result<OwnedFd> {
        use rustix::event::epoll;
        let Some(members) = &self.inner.members else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a set"));
        };
        let (ringers, waiters) = stream_pair()?;
        self.remove_member(key);
        epoll::add(
            &self.inner.fd,
            &waiters,
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
        let mut m = members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.fds.insert(key, waiters);
        Ok(ringers)
    }

    /// Takes the member under `key` out of a set (and forgets that it ended, if it did).
    #[cfg(all(not(loom), feature = "std"))]
    pub(crate) fn remove_member(&self, key: u64) {
        let Some(members) = &self.inner.members else {
            return;
        };
        let mut m = members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(fd) = m.fds.remove(&key) {
            let _ = rustix::event::epoll::delete(&self.inner.fd, &fd);
        }
        m.ended.retain(|&k| k != key);
    }

    /// The keys of the members whose ringers' end a drain found closed or shut down since
    /// the last call (each is out of the set already).
    #[cfg(all(not(loom), feature = "std"))]
    pub(crate) fn take_ended(&self) -> std::vec::Vec<u64> {
        match &self.inner.members {
            Some(m) => core::mem::take(
                &mut m
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .ended,
            ),
            None => std::vec::Vec::new(),
        }
    }

    /// Whether the ringers' end of a socket readiness is closed (seen by a drain): the
    /// descriptor is readable for good and waiting on it would spin.
    #[cfg(all(not(loom), feature = "tokio"))]
    pub(crate) fn ended(&self) -> bool {
        self.inner.ended.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Blocks until the descriptor is readable or `timeout` passes; whether it is readable.
    /// Interruptions by signals are waited out. For a thread that has nothing better to do
    /// (tests, a `poll` loop of one); an event loop registers the descriptor instead
    /// ([`AsFd`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Readiness;
    /// use std::time::Duration;
    ///
    /// let readiness = Readiness::new()?;
    /// assert!(!readiness.wait_timeout(Duration::from_millis(1))); // nobody rang
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn wait_timeout(&self, timeout: core::time::Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let deadline = crate::clock::Deadline::after(timeout);
        loop {
            // A day at most per poll (`Duration::MAX` would not fit a timespec).
            let Some(left) = deadline.left() else {
                return false;
            };
            let left = left.min(core::time::Duration::from_secs(86_400));
            let ts = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&self.inner.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(n) if n > 0 => return true,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }

    /// Blocks until the descriptor is readable (loom: a lost ring deadlocks the model).
    #[cfg(loom)]
    pub fn wait_timeout(&self, _timeout: core::time::Duration) -> bool {
        let mut n = self.inner.count.lock().unwrap();
        while *n == 0 {
            n = self.inner.changed.wait(n).unwrap();
        }
        true
    }
}

#[cfg(all(feature = "test-hooks", not(loom)))]
impl ReadinessSignal {
    /// The ringer's descriptor, for the test hooks.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

/// A stream socket pair for a readiness, non-blocking and close-on-exec: the ringers' end
/// and the waiter's end. Nothing is ever sent back: the waiter's end is shut for writing, so
/// the ringers' end has no receive side to fill.
#[cfg(all(not(loom), feature = "std"))]
fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let (ringers, waiters) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let _ = rustix::net::shutdown(&waiters, rustix::net::Shutdown::Write);
    Ok((ringers, waiters))
}

/// Drains one socket readiness (`recv` with `MSG_DONTWAIT`: the other side may share this
/// end's file description and clear its non-blocking flag; this never blocks) until it has
/// nothing more, at most 64 reads of 256 bytes (a ringer sends one byte per answered
/// announcement; one that floods leaves the socket readable, a spurious wake, never a
/// drain without end). Whether the ringers' end is closed or shut down (or the socket
/// failed): then it reads as ready for good.
#[cfg(not(loom))]
fn drain_socket(fd: &OwnedFd) -> bool {
    let mut bytes = [0u8; 256];
    for _ in 0..64 {
        match rustix::net::recv(fd, &mut bytes, rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return true,
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(_) => return true,
        }
    }
    false
}

impl ReadinessSignal {
    /// A waiter's descriptor received from its process (through `SCM_RIGHTS` or inheritance).
    ///
    /// An eventfd is shared with the waiter (one file description): it is made non-blocking
    /// here and again before each write, so a waiter that clears the flag by mistake cannot
    /// make a ring block; but a hostile waiter that fills the counter *and* races the flag
    /// could. Use it with waiters you trust (your own processes). A stream socket is written
    /// with `send(MSG_DONTWAIT)` and never blocks; the channel gives each connection's
    /// client such a socket pair, made by the server. Any other descriptor makes rings fail
    /// to reach the waiter (its wait is then bounded only by its own timer), never misbehave
    /// otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Readiness, ReadinessSignal};
    /// use std::os::fd::AsFd;
    ///
    /// let readiness = Readiness::new()?;
    /// let passed = readiness.as_fd().try_clone_to_owned()?; // as if sent over a socket
    /// let signal = ReadinessSignal::from_fd(passed);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn from_fd(fd: OwnedFd) -> Self {
        let kind = match rustix::net::sockopt::socket_type(&fd) {
            Ok(_) => Kind::Socket,
            Err(_) => Kind::EventFd,
        };
        let s = Self {
            inner: Arc::new(Inner {
                fd,
                kind,
                ended: Default::default(),
                #[cfg(feature = "std")]
                members: None,
            }),
        };
        if kind == Kind::EventFd {
            s.make_nonblocking();
        }
        s
    }

    #[cfg(not(loom))]
    fn make_nonblocking(&self) {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        if let Ok(flags) = fcntl_getfl(&self.inner.fd) {
            if !flags.contains(OFlags::NONBLOCK) {
                let _ = fcntl_setfl(&self.inner.fd, flags | OFlags::NONBLOCK);
            }
        }
    }

    /// Makes the waiter's descriptor readable (a ringer answering its announcement). A
    /// counter already at its maximum stays readable: nothing is lost.
    pub(crate) fn write(&self) {
        #[cfg(not(loom))]
        {
            if self.inner.kind == Kind::Socket {
                // Never blocks, whatever the flags: a full socket already reads as ready.
                loop {
                    match rustix::net::send(
                        &self.inner.fd,
                        &[1],
                        rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
                    ) {
                        Err(rustix::io::Errno::INTR) => continue,
                        _ => return,
                    }
                }
            }
            // Only on a wake (the cold path): re-assert non-blocking, which a waiting side
            // could have cleared on the shared file description. A waiter in another process
            // that is not trusted gets a socket pair instead (`Readiness::socket_pair`): here
            // a waiter that both fills the counter and clears the flag between this check and
            // the write could block the ringer.
            self.make_nonblocking();
            loop {
                match rustix::io::write(&self.inner.fd, &1u64.to_ne_bytes()) {
                    Err(rustix::io::Errno::INTR) => continue,
                    _ => return,
                }
            }
        }
        #[cfg(loom)]
        {
            *self.inner.count.lock().unwrap() += 1;
            self.inner.changed.notify_all();
        }
    }
}

#[cfg(not(loom))]
impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

/// For event loops that take raw descriptors (tokio's `AsyncFd`, mio's `SourceFd`).
#[cfg(not(loom))]
impl AsRawFd for Readiness {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.fd.as_raw_fd()
    }
}

impl core::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}

impl core::fmt::Debug for ReadinessSignal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadinessSignal").finish_non_exhaustive()
    }
}
