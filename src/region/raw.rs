//! Memory the caller maps and keeps alive: the region of `no_std` users and of anyone who
//! brings their own mapping.

use super::{SharedMemory, Untyped, sealed};
use crate::mem::Mem;

/// A [`SharedMemory`] over memory the caller maps and keeps alive; [`Untyped`], so every end
/// attaches to it and checks the header's kind at run time.
///
/// # Examples
///
/// ```
/// use ringbell::region::RawRegion;
/// use ringbell::spsc::{self, Consumer, Producer};
/// use ringbell::OwnerId;
///
/// // A leaked, 128-byte aligned buffer standing in for a shared mapping.
/// #[repr(C, align(128))]
/// struct Buf([u8; 1024 + 256]);
/// let buf: &'static mut Buf = Box::leak(Box::new(Buf([0; 1024 + 256])));
///
/// // SAFETY: the buffer is leaked, so it lives forever, and nothing else touches it.
/// let region = unsafe { RawRegion::new(buf.0.as_mut_ptr(), buf.0.len()) }.unwrap();
/// spsc::init(&region, &spsc::Config::new(256)).unwrap();
/// let mut tx = Producer::attach(region, OwnerId::new(1).unwrap()).unwrap();
/// let mut rx = Consumer::attach(region, OwnerId::new(2).unwrap()).unwrap();
/// tx.try_send(7, b"hi").unwrap();
/// let mut out = [0u8; 8];
/// assert_eq!(rx.try_recv_into(&mut out).unwrap(), (7, 2));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RawRegion {
    mem: Mem,
}

impl RawRegion {
    /// Wraps `len` bytes at `ptr`. Returns `None` if `ptr` is null or not 8-byte aligned.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as this value or
    /// any copy of it, or any ring handle attached over it, is alive. Other threads and
    /// processes may access the memory concurrently, but only through this crate (or code
    /// following the same protocol); no Rust reference to the bytes may exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::RawRegion;
    ///
    /// // SAFETY: a null pointer is refused before it could be used.
    /// assert!(unsafe { RawRegion::new(std::ptr::null_mut(), 64) }.is_none());
    /// ```
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Option<Self> {
        // SAFETY: forwarded from this function's contract.
        unsafe { Mem::from_raw_parts(ptr, len) }.map(|mem| Self { mem })
    }
}

impl sealed::Memory for RawRegion {
    fn mem(&self) -> Mem {
        self.mem
    }
}

impl SharedMemory for RawRegion {
    type Kind = Untyped;
}
