//! Heap memory for rings shared by threads of one process (and by miri, which cannot map
//! memfds).

use std::alloc::{self, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{Kind, Memory, RegionConfig, SharedMemory, Untyped, sealed};
use crate::error::HeaderError;
use crate::mem::Mem;

/// An in-process region on the heap, 128-byte aligned, typed by what it holds. Cheap to
/// clone: clones share the memory, which is freed when the last clone (and every ring end
/// holding one) drops.
///
/// # Examples
///
/// ```
/// use ringbell::region::HeapRegion;
/// use ringbell::spsc;
///
/// let region = HeapRegion::new(&spsc::Config::new(4096))?;
/// let mut tx = region.producer()?;
/// let mut rx = region.consumer()?;
/// tx.try_send(0, b"heap")?;
/// assert_eq!(rx.try_recv()?.data, b"heap");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HeapRegion<K: Kind = Untyped> {
    buf: Arc<HeapBuf>,
    _kind: PhantomData<fn() -> K>,
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

impl<K: Kind> HeapRegion<K> {
    /// A heap region holding a fresh ring (or bell) of configuration `cfg`, typed by its kind.
    ///
    /// # Errors
    ///
    /// The configuration's [`HeaderError`] (see [`RegionConfig::region_size`]);
    /// [`HeaderError::BadCapacity`] if the size cannot be allocated as one block.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::{HeapRegion, Mpsc};
    /// use ringbell::{mpsc, HeaderError};
    ///
    /// let region: HeapRegion<Mpsc> = HeapRegion::new(&mpsc::Config::new(1 << 16))?;
    /// assert!(region.len() > 1 << 16);
    /// let bad = HeapRegion::new(&mpsc::Config::new(1000)).map(drop);
    /// assert_eq!(bad, Err(HeaderError::BadCapacity { capacity: 1000 }));
    /// # Ok::<(), HeaderError>(())
    /// ```
    pub fn new<C: RegionConfig<Kind = K>>(cfg: &C) -> Result<Self, HeaderError> {
        let size = cfg.region_size()?;
        let buf = zeroed_buf(size).ok_or(HeaderError::BadCapacity {
            capacity: size as u64,
        })?;
        let region = Self {
            buf,
            _kind: PhantomData,
        };
        cfg.init(&region.mem())?;
        Ok(region)
    }

    /// Size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::spsc;
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// assert_eq!(region.len(), 1024 + 4096); // header and data area
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.buf.layout.size()
    }

    /// Whether the region is empty (never: no region is).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::spsc;
    ///
    /// assert!(!HeapRegion::new(&spsc::Config::new(4096))?.is_empty());
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl HeapRegion<Untyped> {
    /// A zeroed, uninitialised region of `len` bytes, for tests that write a header of their
    /// own; `None` for 0 bytes or a size that cannot be allocated.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn zeroed(len: usize) -> Option<Self> {
        Some(Self {
            buf: zeroed_buf(len)?,
            _kind: PhantomData,
        })
    }
}

/// A zeroed, 128-byte aligned heap block of `len` bytes.
fn zeroed_buf(len: usize) -> Option<Arc<HeapBuf>> {
    let layout = Layout::from_size_align(len, 128).ok()?;
    if len == 0 {
        return None;
    }
    // SAFETY: `layout` has a non-zero size (checked).
    let ptr = unsafe { alloc::alloc_zeroed(layout) };
    let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
    Some(Arc::new(HeapBuf { ptr, layout }))
}

impl<K: Kind> Clone for HeapRegion<K> {
    fn clone(&self) -> Self {
        Self {
            buf: self.buf.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K: Kind> sealed::Memory for HeapRegion<K> {
    fn mem(&self) -> Mem {
        // SAFETY: the allocation is valid for `len` bytes until the last clone drops, 128-byte
        // aligned, and only ever accessed through `Mem`.
        unsafe { Mem::from_raw_parts(self.buf.ptr.as_ptr(), self.buf.layout.size()) }
            .expect("heap regions are 128-byte aligned")
    }
}

impl<K: Kind> SharedMemory for HeapRegion<K> {
    type Kind = K;
}

impl<K: Kind> fmt::Debug for HeapRegion<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapRegion")
            .field("kind", &core::any::type_name::<K>())
            .field("len", &self.len())
            .finish()
    }
}
