//! A readiness descriptor: what a waiter that must not block a thread (an async task, a
//! `poll(2)` loop) waits on instead of the futex. The argument is in the
//! [module docs](super), "Async waits".

#[cfg(not(loom))]
use std::io;
#[cfg(not(loom))]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// A readiness descriptor for async waits on a doorbell: an eventfd that a ringer writes when
/// it answers an async waiter's mark, and that the waiter's event loop polls for
/// readability. The waiting side makes it and hands a clone (in another process: the
/// descriptor, through `SCM_RIGHTS` or inheritance, then [`from_fd`](Self::from_fd)) to every
/// ringer of the line; a ringer answers async waiters only through
/// [`Doorbell::ring_readiness`](super::Doorbell::ring_readiness).
///
/// One async waiter per descriptor: the waiter drains it before each announcement.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{BellConfig, Doorbell, Readiness};
/// use ringbell::region::HeapRegion;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let region = HeapRegion::new(&BellConfig)?;
/// let waiter = Doorbell::new(region.clone(), 1024).unwrap();
/// let ringer = Doorbell::new(region, 1024).unwrap();
/// let readiness = Readiness::new()?;
/// let flag = Arc::new(AtomicBool::new(false));
/// let (f, r) = (flag.clone(), readiness.clone());
/// let t = std::thread::spawn(move || {
///     f.store(true, Ordering::Release); // publish,
///     ringer.ring_readiness(&r);        // then ring
/// });
/// // An event loop's shape: announce, and wait on the descriptor only if not ready yet.
/// while !waiter.poll_ready(&readiness, || flag.load(Ordering::Acquire)) {
///     readiness.wait_timeout(Duration::from_secs(10));
/// }
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[cfg(not(loom))]
struct Inner {
    fd: OwnedFd,
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
            inner: Arc::new(Inner { fd }),
        })
    }

    /// A new descriptor (loom's model of an eventfd).
    #[cfg(loom)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                count: loom::sync::Mutex::new(0),
                changed: loom::sync::Condvar::new(),
            }),
        })
    }

    /// The descriptor the waiting side made, received from it (through `SCM_RIGHTS` or
    /// inheritance), for a ringer in another process. It must be an eventfd: anything else
    /// makes rings fail to reach the async waiter (its wait is then bounded by its own
    /// timer), never misbehave otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Readiness;
    /// use std::os::fd::AsFd;
    ///
    /// let mine = Readiness::new()?;
    /// let passed = mine.as_fd().try_clone_to_owned()?; // as if sent over a socket
    /// let theirs = Readiness::from_fd(passed);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            inner: Arc::new(Inner { fd }),
        }
    }

    /// Makes the descriptor readable (a ringer answering an async waiter). A counter already
    /// at its maximum stays readable: nothing is lost.
    pub(crate) fn signal(&self) {
        #[cfg(not(loom))]
        {
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

    /// Empties the descriptor (the waiter, before it announces).
    pub(crate) fn drain(&self) {
        #[cfg(not(loom))]
        {
            let mut word = [0u8; 8];
            loop {
                match rustix::io::read(&self.inner.fd, &mut word) {
                    Err(rustix::io::Errno::INTR) => continue,
                    _ => return,
                }
            }
        }
        #[cfg(loom)]
        {
            *self.inner.count.lock().unwrap() = 0;
        }
    }

    /// Blocks until the descriptor is readable or `timeout` passes; whether it is readable.
    /// For a thread that has nothing better to do (tests, a `poll` loop of one); an event
    /// loop registers the descriptor instead ([`AsFd`]).
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
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.inner.fd, PollFlags::IN)];
        matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
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

#[cfg(not(loom))]
impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl core::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}
