//! Shared-memory regions: sealed memfds mapped into each process, and heap regions for
//! in-process use.
//!
//! # What it guarantees
//!
//! * A [`Region`] is always a memfd sealed against shrinking, growing and further sealing
//!   (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`). Nobody — not even its creator — can
//!   truncate it, so touching any byte of the mapping can never raise `SIGBUS`.
//! * [`Region::open_spsc`] checks, before mapping, that the fd is a memfd with those seals
//!   and at least a header long; after mapping it validates the header (each failure a
//!   distinct [`RegionError`]) and refuses a region whose creator has not finished
//!   (the ready word is written last, with Release).
//! * Each process pre-faults its own mapping (`MADV_POPULATE_WRITE`) only if the mapping is
//!   at most [`RegionOptions::prefault_threshold`] bytes (default 1 MiB), so a 32 MiB ring
//!   costs resident memory only as it is used. Nothing ever memsets a live ring.
//!
//! # Handing a region to another process
//!
//! Pass the fd ([`Region::fd`]) by inheritance (clear `FD_CLOEXEC` on a duplicate in the
//! child, e.g. in `CommandExt::pre_exec`) or over a Unix socket with `SCM_RIGHTS`; the other
//! process calls [`Region::open_spsc`] on it.
//!
//! # Examples
//!
//! ```
//! use ringbell::region::Region;
//! use ringbell::spsc::RingConfig;
//!
//! let region = Region::create_spsc(&RingConfig::new(1 << 16))?;
//! let mut tx = region.producer()?;
//!
//! // Another process would receive the fd; here we reopen a duplicate in this one.
//! let fd = region.fd().try_clone_to_owned()?;
//! let other = Region::open_spsc(fd)?;
//! let mut rx = other.consumer()?;
//!
//! tx.try_send(1, b"across the mapping")?;
//! assert_eq!(rx.try_recv()?.data, b"across the mapping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::alloc::{self, Layout};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::error::{AttachError, HeaderError};
use crate::layout::{self, HEADER_SIZE, RingKind};
use crate::mem::{Mem, SharedMemory};
use crate::role::OwnerId;
use crate::spsc::{self, Consumer, Producer, RingConfig};

/// The seals every region carries.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Default pre-fault threshold: mappings of at most 1 MiB are populated at map time.
pub const DEFAULT_PREFAULT_THRESHOLD: usize = 1 << 20;

/// Opening or creating a region failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RegionError {
    /// A system call failed.
    Io {
        /// The operation, e.g. `"memfd_create"`.
        op: &'static str,
        /// The error it returned.
        source: io::Error,
    },
    /// The fd is not a memfd (`F_GET_SEALS` refused it).
    NotMemfd,
    /// The memfd lacks some of [`REQUIRED_SEALS`]: someone could shrink it under us.
    MissingSeals {
        /// The seals it has (`F_SEAL_*` bits).
        seals: u32,
    },
    /// The memfd is sealed against writing, so it cannot hold a ring.
    WriteSealed,
    /// The file is larger than this process can map.
    TooLarge {
        /// Its size in bytes.
        size: u64,
    },
    /// The header is invalid, or the configuration was refused.
    Header(HeaderError),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, source } => write!(f, "{op} failed: {source}"),
            Self::NotMemfd => f.write_str("the fd is not a memfd"),
            Self::MissingSeals { seals } => write!(
                f,
                "the memfd is not sealed against shrink, grow and seal (seals {seals:#x})"
            ),
            Self::WriteSealed => f.write_str("the memfd is sealed against writing"),
            Self::TooLarge { size } => write!(f, "region of {size} bytes is too large to map"),
            Self::Header(e) => write!(f, "invalid region header: {e}"),
        }
    }
}

impl std::error::Error for RegionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Header(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeaderError> for RegionError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

fn io_err(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> RegionError {
    move |e| RegionError::Io {
        op,
        source: e.into(),
    }
}

/// Options for creating and opening regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionOptions {
    prefault_threshold: usize,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self {
            prefault_threshold: DEFAULT_PREFAULT_THRESHOLD,
        }
    }
}

impl RegionOptions {
    /// Default options: pre-fault mappings of at most 1 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-fault this process's mapping when it is at most `bytes` long (0: never).
    pub fn prefault_threshold(mut self, bytes: usize) -> Self {
        self.prefault_threshold = bytes;
        self
    }
}

/// One process's mapping of a memfd.
struct Mapping {
    fd: OwnedFd,
    /// Start of a `MAP_SHARED` read-write mapping of the whole memfd.
    ptr: NonNull<u8>,
    len: usize,
    prefaulted: bool,
}

// SAFETY: the mapping is shared memory accessed only through `Mem`'s atomics and copies.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and owns (in a forked child,
        // the child's inherited copy of it); every `Mem` view of it belongs to a handle that
        // holds an `Arc` to this mapping, so none outlives it.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl Mapping {
    /// Maps the whole of `fd` (`len` bytes) shared and read-write, then pre-faults it if it is
    /// at most the threshold.
    fn new(fd: OwnedFd, len: usize, opts: &RegionOptions) -> Result<Self, RegionError> {
        // SAFETY: a fresh mapping at an address the kernel picks aliases no Rust object; the fd
        // is sealed against shrinking (checked by every caller), so the whole range stays
        // backed for the mapping's life.
        let ptr = unsafe {
            mm::mmap(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(io_err("mmap"))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(RegionError::Io {
            op: "mmap",
            source: io::Error::other("null mapping"),
        })?;
        let mut map = Self {
            fd,
            ptr,
            len,
            prefaulted: false,
        };
        if len <= opts.prefault_threshold {
            map.prefault();
        }
        Ok(map)
    }

    /// Populates this process's page tables for the mapping without writing to it.
    fn prefault(&mut self) {
        // SAFETY: the range is exactly our mapping; MADV_POPULATE_WRITE faults pages in as if
        // written but does not change their contents.
        let advised = unsafe {
            mm::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                mm::Advice::LinuxPopulateWrite,
            )
        };
        if advised == Err(rustix::io::Errno::INVAL) {
            // Kernels before 5.14 lack MADV_POPULATE_WRITE: read one word per page, which maps
            // shmem pages too. Any other error (EFAULT: a page could not be backed) means
            // touching the memory could fault, so we leave it to be faulted on demand.
            let mem = self.mem();
            for off in (0..self.len.saturating_sub(3)).step_by(4096) {
                let _ = mem.load_u32(off, core::sync::atomic::Ordering::Relaxed);
            }
        }
        self.prefaulted = true;
    }

    fn mem(&self) -> Mem {
        // SAFETY: the mapping is valid for `len` bytes until `self` drops, page aligned, and
        // only ever accessed through `Mem`.
        unsafe { Mem::from_raw_parts(self.ptr.as_ptr(), self.len) }
            .expect("mmap returns page-aligned non-null memory")
    }
}

/// A ring region in a sealed memfd, mapped into this process. Cheap to clone (the mapping is
/// reference-counted); unmapped when the last clone and handle drop.
#[derive(Clone)]
pub struct Region {
    map: Arc<Mapping>,
}

impl Region {
    /// Creates a memfd holding a fresh SPSC ring, with default [`RegionOptions`].
    ///
    /// # Errors
    ///
    /// [`RegionError::Header`] if the configuration is invalid; [`RegionError::Io`] if a system
    /// call fails.
    pub fn create_spsc(cfg: &RingConfig) -> Result<Self, RegionError> {
        Self::create_spsc_with(cfg, &RegionOptions::default())
    }

    /// Creates a memfd holding a fresh SPSC ring.
    ///
    /// The memfd is created with `MFD_CLOEXEC | MFD_ALLOW_SEALING`, sized, sealed, mapped,
    /// pre-faulted if small enough, and initialised; its ready word is written last.
    ///
    /// # Errors
    ///
    /// As [`create_spsc`](Self::create_spsc).
    pub fn create_spsc_with(cfg: &RingConfig, opts: &RegionOptions) -> Result<Self, RegionError> {
        let region = Self::create_sized(cfg.region_size()?, opts)?;
        spsc::init(&region, cfg)?;
        Ok(region)
    }

    /// Creates a memfd holding a fresh bell region: the shared doorbell of a
    /// [fan-in](crate::fanin).
    ///
    /// # Errors
    ///
    /// [`RegionError::Io`] if a system call fails.
    pub fn create_bell() -> Result<Self, RegionError> {
        let size = crate::doorbell::BELL_REGION_SIZE;
        let region = Self::create_sized(size, &RegionOptions::default())?;
        crate::doorbell::init_bell(&region)?;
        Ok(region)
    }

    /// Creates a memfd holding a fresh MPSC ring.
    ///
    /// # Errors
    ///
    /// As [`create_spsc`](Self::create_spsc).
    pub fn create_mpsc(cfg: &crate::mpsc::MpscConfig) -> Result<Self, RegionError> {
        let region = Self::create_sized(cfg.region_size()?, &RegionOptions::default())?;
        crate::mpsc::init(&region, cfg)?;
        Ok(region)
    }

    /// Opens an MPSC ring region from an fd received from its creator.
    ///
    /// # Errors
    ///
    /// As [`open_spsc`](Self::open_spsc).
    pub fn open_mpsc(fd: OwnedFd) -> Result<Self, RegionError> {
        Self::open_kind(fd, RingKind::Mpsc, &RegionOptions::default())
    }

    /// Opens a bell region from an fd received from its creator.
    ///
    /// # Errors
    ///
    /// As [`open_spsc`](Self::open_spsc).
    pub fn open_bell(fd: OwnedFd) -> Result<Self, RegionError> {
        Self::open_kind(fd, RingKind::Bell, &RegionOptions::default())
    }

    /// A sealed, mapped, zero-filled memfd of `size` bytes; not yet initialised.
    fn create_sized(size: usize, opts: &RegionOptions) -> Result<Self, RegionError> {
        let fd =
            rustix::fs::memfd_create("ringbell", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(io_err("memfd_create"))?;
        rustix::fs::ftruncate(&fd, size as u64).map_err(io_err("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS).map_err(io_err("fcntl(F_ADD_SEALS)"))?;
        Ok(Self {
            map: Arc::new(Mapping::new(fd, size, opts)?),
        })
    }

    /// Opens an SPSC ring region from an fd received from its creator, with default
    /// [`RegionOptions`].
    ///
    /// # Errors
    ///
    /// [`RegionError::NotMemfd`], [`RegionError::MissingSeals`] or [`RegionError::WriteSealed`]
    /// before mapping; [`RegionError::Header`] with [`HeaderError::TooSmall`] if the file is
    /// smaller than a header (also before mapping); after mapping, any other
    /// [`HeaderError`] the header earns; [`RegionError::Io`] if a system call fails.
    pub fn open_spsc(fd: OwnedFd) -> Result<Self, RegionError> {
        Self::open_spsc_with(fd, &RegionOptions::default())
    }

    /// Opens an SPSC ring region from an fd; see [`open_spsc`](Self::open_spsc).
    ///
    /// # Errors
    ///
    /// As [`open_spsc`](Self::open_spsc).
    pub fn open_spsc_with(fd: OwnedFd, opts: &RegionOptions) -> Result<Self, RegionError> {
        Self::open_kind(fd, RingKind::Spsc, opts)
    }

    /// Opens a bell region checking the fd (memfd, seals, size) but not the header, which
    /// peers sharing the region may have rewritten: for a channel client joining a server's
    /// doorbell (see [`crate::doorbell::bell_of_unchecked`]).
    pub(crate) fn open_bell_lenient(fd: OwnedFd) -> Result<Self, RegionError> {
        let size = check_fd(&fd, RingKind::Bell)?;
        if size != crate::doorbell::BELL_REGION_SIZE {
            return Err(RegionError::Header(HeaderError::SizeMismatch {
                size: size as u64,
                expected: crate::doorbell::BELL_REGION_SIZE as u64,
            }));
        }
        let map = Mapping::new(fd, size, &RegionOptions::default())?;
        Ok(Self { map: Arc::new(map) })
    }

    fn open_kind(fd: OwnedFd, kind: RingKind, opts: &RegionOptions) -> Result<Self, RegionError> {
        let size = check_fd(&fd, kind)?;
        let map = Mapping::new(fd, size, opts)?;
        layout::validate(&map.mem(), kind)?;
        Ok(Self { map: Arc::new(map) })
    }

    /// The memfd, to hand to another process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd.as_fd()
    }

    /// Size of the mapping in bytes (header plus capacity).
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the mapping is empty (never, for a valid region).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// Whether this process pre-faulted its mapping.
    pub fn is_prefaulted(&self) -> bool {
        self.map.prefaulted
    }

    /// Address of this process's mapping, e.g. to find it in `/proc/self/smaps`.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.ptr.as_ptr()
    }

    /// Attaches the producer end with a fresh [`OwnerId::unique`].
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    pub fn producer(&self) -> Result<Producer<Region>, AttachError> {
        Producer::attach(self.clone(), OwnerId::unique())
    }

    /// Attaches the consumer end with a fresh [`OwnerId::unique`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    pub fn consumer(&self) -> Result<Consumer<Region>, AttachError> {
        Consumer::attach(self.clone(), OwnerId::unique())
    }
}

// SAFETY: the `Arc<Mapping>` keeps the mapping alive as long as any clone of the region.
unsafe impl SharedMemory for Region {
    fn mem(&self) -> Mem {
        self.map.mem()
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("fd", &self.map.fd)
            .field("len", &self.map.len)
            .field("prefaulted", &self.map.prefaulted)
            .finish()
    }
}

/// Checks `fd` is a memfd with the required seals and returns its size.
fn check_fd(fd: &OwnedFd, kind: RingKind) -> Result<usize, RegionError> {
    let seals = match rustix::fs::fcntl_get_seals(fd) {
        Ok(s) => s,
        Err(rustix::io::Errno::INVAL) => return Err(RegionError::NotMemfd),
        Err(e) => return Err(io_err("fcntl(F_GET_SEALS)")(e)),
    };
    if !seals.contains(REQUIRED_SEALS) {
        return Err(RegionError::MissingSeals {
            seals: seals.bits(),
        });
    }
    if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
        return Err(RegionError::WriteSealed);
    }
    let st = rustix::fs::fstat(fd).map_err(io_err("fstat"))?;
    let size = st.st_size as u64;
    if size < HEADER_SIZE as u64 {
        return Err(RegionError::Header(HeaderError::TooSmall { size }));
    }
    // Refuse, before mapping, any size no valid ring has: header plus a power-of-two capacity
    // in range. The header is checked against the exact size again after mapping.
    // (An MPSC region adds its producer registry after the data area.)
    let registry_max = match kind {
        RingKind::Mpsc => (layout::MAX_REGISTRY_SLOTS * layout::REGISTRY_SLOT_SIZE) as u64,
        _ => 0,
    };
    let capacity = size - HEADER_SIZE as u64;
    let plausible = if registry_max == 0 {
        capacity.is_power_of_two()
    } else {
        capacity > layout::MIN_CAPACITY as u64
    };
    if !plausible
        || capacity < layout::MIN_CAPACITY as u64
        || capacity > layout::MAX_CAPACITY as u64 + registry_max
    {
        return Err(RegionError::Header(HeaderError::BadCapacity { capacity }));
    }
    usize::try_from(size)
        .ok()
        .filter(|s| *s <= isize::MAX as usize)
        .ok_or(RegionError::TooLarge { size })
}

/// An in-process region on the heap, 128-byte aligned and zeroed. Cheap to clone.
///
/// For threads of one process (and for miri, which cannot map memfds).
///
/// # Examples
///
/// ```
/// use ringbell::region::HeapRegion;
/// use ringbell::spsc::RingConfig;
///
/// let region = HeapRegion::new_spsc(&RingConfig::new(4096)).unwrap();
/// let (mut tx, mut rx) = (region.producer().unwrap(), region.consumer().unwrap());
/// tx.try_send(0, b"heap").unwrap();
/// assert_eq!(rx.try_recv().unwrap().data, b"heap");
/// ```
#[derive(Clone)]
pub struct HeapRegion {
    buf: Arc<HeapBuf>,
}

struct HeapBuf {
    /// From `alloc_zeroed` with `layout`; freed on drop.
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is accessed only through `Mem`'s atomics and copies.
unsafe impl Send for HeapBuf {}
// SAFETY: as above.
unsafe impl Sync for HeapBuf {}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `HeapRegion::zeroed` with this layout; every `Mem` over it is
        // held by something that holds this `Arc`, so nothing uses it any more.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl HeapRegion {
    /// A zeroed, uninitialised region of `len` bytes (for tests and custom layouts).
    ///
    /// # Panics
    ///
    /// If `len` is 0 or larger than `isize::MAX - 127`; aborts if the allocation fails.
    pub fn zeroed(len: usize) -> Self {
        Self::try_zeroed(len).expect("heap region size must be between 1 and isize::MAX - 127")
    }

    fn try_zeroed(len: usize) -> Option<Self> {
        let layout = Layout::from_size_align(len, 128).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: `layout` has a non-zero size (checked).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Some(Self {
            buf: Arc::new(HeapBuf { ptr, layout }),
        })
    }

    /// A heap region holding a fresh SPSC ring.
    ///
    /// # Errors
    ///
    /// As [`RingConfig::geometry`].
    pub fn new_spsc(cfg: &RingConfig) -> Result<Self, HeaderError> {
        let size = cfg.region_size()?;
        let region = Self::try_zeroed(size).ok_or(HeaderError::BadCapacity {
            capacity: cfg.capacity() as u64,
        })?;
        spsc::init(&region, cfg)?;
        Ok(region)
    }

    /// A heap region holding a fresh bell region (a fan-in's shared doorbell).
    ///
    /// # Errors
    ///
    /// Never in practice; the signature matches the other constructors.
    pub fn new_bell() -> Result<Self, HeaderError> {
        let region = Self::zeroed(crate::doorbell::BELL_REGION_SIZE);
        crate::doorbell::init_bell(&region)?;
        Ok(region)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.buf.layout.size()
    }

    /// Whether the region is empty (never: [`zeroed`](Self::zeroed) refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attaches the producer end with a fresh [`OwnerId::unique`].
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    pub fn producer(&self) -> Result<Producer<HeapRegion>, AttachError> {
        Producer::attach(self.clone(), OwnerId::unique())
    }

    /// Attaches the consumer end with a fresh [`OwnerId::unique`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    pub fn consumer(&self) -> Result<Consumer<HeapRegion>, AttachError> {
        Consumer::attach(self.clone(), OwnerId::unique())
    }
}

// SAFETY: the `Arc<HeapBuf>` keeps the allocation alive as long as any clone.
unsafe impl SharedMemory for HeapRegion {
    fn mem(&self) -> Mem {
        // SAFETY: the allocation is valid for `len` bytes until the last clone drops, 128-byte
        // aligned, and only ever accessed through `Mem`.
        unsafe { Mem::from_raw_parts(self.buf.ptr.as_ptr(), self.buf.layout.size()) }
            .expect("heap regions are 128-byte aligned")
    }
}

impl fmt::Debug for HeapRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapRegion")
            .field("len", &self.len())
            .finish()
    }
}
