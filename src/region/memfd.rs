//! Sealed memfds mapped into each process: the regions processes share.
//!
//! # What it guarantees
//!
//! * A [`Region`] is always a memfd sealed against shrinking, growing and further sealing
//!   (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`). Nobody — not even its creator — can
//!   truncate it, so touching any byte of the mapping can never raise `SIGBUS`.
//! * [`Region::open`] checks, before mapping, that the fd is a memfd with those seals and of a
//!   size some region has; after mapping it validates the header (each failure a distinct
//!   [`RegionError`]) and refuses a region whose creator has not finished (the ready word is
//!   written last, with Release).
//! * Each process pre-faults its own mapping (`MADV_POPULATE_WRITE`) only if the mapping is
//!   at most [`RegionOptions::prefault_threshold`] bytes (default 1 MiB), so a 32 MiB ring
//!   costs resident memory only as it is used. Nothing ever memsets a live ring.
//!
//! # Handing a region to another process
//!
//! Pass the fd ([`Region::fd`]) by inheritance (clear `FD_CLOEXEC` on a duplicate in the
//! child, e.g. in `CommandExt::pre_exec`) or over a Unix socket with `SCM_RIGHTS`; the other
//! process calls [`Region::open`] on it.
//!
//! Man pages: memfd_create(2), fcntl(2) (`F_ADD_SEALS`, `F_GET_SEALS`), mmap(2), madvise(2).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{self, MapFlags, ProtFlags};

use super::{Bell, Kind, KindOf, RegionConfig, SharedMemory, Untyped, sealed};
use crate::error::HeaderError;
use crate::header;
use crate::mem::Mem;
use crate::wire::{self, HEADER_SIZE, RingKind};

/// The seals every region carries.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// Default pre-fault threshold: mappings of at most 1 MiB are populated at map time.
pub const DEFAULT_PREFAULT_THRESHOLD: usize = 1 << 20;

/// Opening or creating a region failed.
///
/// # Examples
///
/// ```
/// use ringbell::region::{Region, RegionError, Spsc};
///
/// // Any file that is not a sealed memfd is refused before it is mapped.
/// let file = std::fs::File::open("/dev/null")?;
/// let r = Region::<Spsc>::open(file.into());
/// assert!(matches!(r, Err(RegionError::NotMemfd)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// # Examples
///
/// ```
/// use ringbell::region::{Region, RegionOptions};
///
/// // Populate page tables for mappings up to 64 MiB (the default is 1 MiB).
/// let opts = RegionOptions::new().prefault_threshold(64 << 20);
/// let region = Region::create_with(&ringbell::spsc::Config::new(32 << 20), &opts)?;
/// assert!(region.is_prefaulted());
/// # Ok::<(), ringbell::region::RegionError>(())
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::RegionOptions;
    ///
    /// assert_eq!(RegionOptions::new(), RegionOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-fault this process's mapping when it is at most `bytes` long (0: never).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{Region, RegionOptions};
    ///
    /// let never = RegionOptions::new().prefault_threshold(0);
    /// let region = Region::create_with(&ringbell::spsc::Config::new(4096), &never)?;
    /// assert!(!region.is_prefaulted());
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
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

/// A region in a sealed memfd, mapped into this process, typed by what it holds. Cheap to
/// clone (the mapping is reference-counted); unmapped when the last clone and ring end drop.
///
/// # Examples
///
/// ```
/// use ringbell::region::{Region, Spsc};
/// use ringbell::spsc;
///
/// let region = Region::create(&spsc::Config::new(1 << 16))?;
/// let mut tx = region.producer()?;
///
/// // Another process would receive the fd; here we reopen a duplicate in this one.
/// let other = Region::<Spsc>::open(region.fd().try_clone_to_owned()?)?;
/// let mut rx = other.consumer()?;
/// tx.try_send(1, b"across the mapping")?;
/// assert_eq!(rx.try_recv()?.data, b"across the mapping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Region<K: Kind = Untyped> {
    map: Arc<Mapping>,
    _kind: PhantomData<fn() -> K>,
}

impl<K: Kind> Region<K> {
    /// Creates a memfd holding a fresh ring (or bell) of configuration `cfg`, with default
    /// [`RegionOptions`].
    ///
    /// The memfd is created with `MFD_CLOEXEC | MFD_ALLOW_SEALING`, sized, sealed, mapped,
    /// pre-faulted if small enough, and initialised; its ready word is written last.
    ///
    /// # Errors
    ///
    /// [`RegionError::Header`] if the configuration is invalid; [`RegionError::Io`] if a
    /// system call fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{Region, RegionError, Mpsc};
    /// use ringbell::{mpsc, HeaderError};
    ///
    /// let region: Region<Mpsc> = Region::create(&mpsc::Config::new(1 << 16))?;
    /// assert!(region.len() > 1 << 16);
    /// let bad = Region::create(&mpsc::Config::new(1000));
    /// assert!(matches!(bad, Err(RegionError::Header(HeaderError::BadCapacity { .. }))));
    /// # Ok::<(), RegionError>(())
    /// ```
    pub fn create<C: RegionConfig<Kind = K>>(cfg: &C) -> Result<Self, RegionError> {
        Self::create_with(cfg, &RegionOptions::default())
    }

    /// As [`create`](Self::create), with options.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{Region, RegionOptions};
    /// use ringbell::spsc;
    ///
    /// let lazy = RegionOptions::new().prefault_threshold(0); // never pre-fault
    /// let region = Region::create_with(&spsc::Config::new(1 << 16), &lazy)?;
    /// assert!(!region.is_prefaulted());
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn create_with<C: RegionConfig<Kind = K>>(
        cfg: &C,
        opts: &RegionOptions,
    ) -> Result<Self, RegionError> {
        let region = Self::create_sized(cfg.region_size()?, opts)?;
        cfg.init(&region.map.mem())?;
        Ok(region)
    }

    /// A sealed, mapped, zero-filled memfd of `size` bytes; not yet initialised.
    fn create_sized(size: usize, opts: &RegionOptions) -> Result<Self, RegionError> {
        let fd =
            rustix::fs::memfd_create("ringbell", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(io_err("memfd_create"))?;
        rustix::fs::ftruncate(&fd, size as u64).map_err(io_err("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS).map_err(io_err("fcntl(F_ADD_SEALS)"))?;
        Ok(Self::from_mapping(Mapping::new(fd, size, opts)?))
    }

    /// Opens a region from an fd received from its creator, with default [`RegionOptions`].
    /// The kind to expect is the region's type: `Region::<Spsc>::open(fd)`.
    ///
    /// # Errors
    ///
    /// [`RegionError::NotMemfd`], [`RegionError::MissingSeals`] or
    /// [`RegionError::WriteSealed`] before mapping; [`RegionError::Header`] with
    /// [`HeaderError::TooSmall`] or [`HeaderError::BadCapacity`] if the file's size fits no
    /// region (also before mapping); after mapping, any other [`HeaderError`] the header earns
    /// (a region of another kind: [`HeaderError::WrongKind`]); [`RegionError::Io`] if a
    /// system call fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{Region, RegionError, Spsc, Mpsc};
    /// use ringbell::{spsc, HeaderError};
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// let fd = || region.fd().try_clone_to_owned();
    /// assert!(Region::<Spsc>::open(fd()?).is_ok());
    /// let wrong = Region::<Mpsc>::open(fd()?);
    /// assert!(matches!(wrong, Err(RegionError::Header(HeaderError::WrongKind { .. }))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(fd: OwnedFd) -> Result<Self, RegionError> {
        Self::open_with(fd, &RegionOptions::default())
    }

    /// As [`open`](Self::open), with options.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{Region, RegionOptions, Spsc};
    /// use ringbell::spsc;
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// let opts = RegionOptions::new().prefault_threshold(0);
    /// let other = Region::<Spsc>::open_with(region.fd().try_clone_to_owned()?, &opts)?;
    /// assert!(!other.is_prefaulted());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(fd: OwnedFd, opts: &RegionOptions) -> Result<Self, RegionError> {
        let kind = <K as KindOf>::RING;
        let size = check_fd(&fd, kind)?;
        let map = Mapping::new(fd, size, opts)?;
        header::validate_kind(&map.mem(), kind)?;
        Ok(Self::from_mapping(map))
    }

    fn from_mapping(map: Mapping) -> Self {
        Self {
            map: Arc::new(map),
            _kind: PhantomData,
        }
    }

    /// The memfd, to hand to another process (by inheritance, or over a Unix socket with
    /// `SCM_RIGHTS`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    /// use std::os::fd::AsRawFd;
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// assert!(region.fd().as_raw_fd() >= 0);
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd.as_fd()
    }

    /// Size of the mapping in bytes (header, data area and, for MPSC, the registry).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    ///
    /// assert_eq!(Region::create(&spsc::Config::new(4096))?.len(), 1024 + 4096);
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether the mapping is empty (never, for a valid region).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    ///
    /// assert!(!Region::create(&spsc::Config::new(4096))?.is_empty());
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// Whether this process pre-faulted its mapping (it was at most the threshold).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    ///
    /// assert!(Region::create(&spsc::Config::new(4096))?.is_prefaulted()); // small: yes
    /// assert!(!Region::create(&spsc::Config::new(32 << 20))?.is_prefaulted()); // 32 MiB: no
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn is_prefaulted(&self) -> bool {
        self.map.prefaulted
    }

    /// Address of this process's mapping, e.g. to find it in `/proc/self/smaps`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// assert_eq!(region.as_ptr() as usize % 4096, 0); // page aligned
    /// # Ok::<(), ringbell::region::RegionError>(())
    /// ```
    pub fn as_ptr(&self) -> *const u8 {
        self.map.ptr.as_ptr()
    }
}

impl Region<Bell> {
    /// Opens a bell region checking the fd (memfd, seals, size) but not the header, which
    /// peers sharing the region may have rewritten: for a channel client joining a server's
    /// doorbell.
    pub(crate) fn open_bell_lenient(fd: OwnedFd) -> Result<Self, RegionError> {
        let size = check_fd(&fd, Some(RingKind::Bell))?;
        if size != wire::BELL_REGION_SIZE {
            return Err(RegionError::Header(HeaderError::SizeMismatch {
                size: size as u64,
                expected: wire::BELL_REGION_SIZE as u64,
            }));
        }
        Ok(Self::from_mapping(Mapping::new(
            fd,
            size,
            &RegionOptions::default(),
        )?))
    }
}

impl<K: Kind> Clone for Region<K> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K: Kind> sealed::Memory for Region<K> {
    fn mem(&self) -> Mem {
        self.map.mem()
    }
}

impl<K: Kind> SharedMemory for Region<K> {
    type Kind = K;
}

impl<K: Kind> fmt::Debug for Region<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("kind", &core::any::type_name::<K>())
            .field("fd", &self.map.fd)
            .field("len", &self.map.len)
            .field("prefaulted", &self.map.prefaulted)
            .finish()
    }
}

/// Checks `fd` is a memfd with the required seals and returns its size.
fn check_fd(fd: &OwnedFd, kind: Option<RingKind>) -> Result<usize, RegionError> {
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
        Some(RingKind::Mpsc) | None => (wire::MAX_REGISTRY_SLOTS * wire::REGISTRY_SLOT_SIZE) as u64,
        Some(_) => 0,
    };
    let capacity = size - HEADER_SIZE as u64;
    let plausible = if registry_max == 0 {
        capacity.is_power_of_two()
    } else {
        capacity >= wire::MIN_CAPACITY as u64
    };
    if !plausible
        || capacity < wire::MIN_CAPACITY as u64
        || capacity > wire::MAX_CAPACITY as u64 + registry_max
    {
        return Err(RegionError::Header(HeaderError::BadCapacity { capacity }));
    }
    usize::try_from(size)
        .ok()
        .filter(|s| *s <= isize::MAX as usize)
        .ok_or(RegionError::TooLarge { size })
}
