//! Loom-modelled memory for the models in `loom-tests/` (only under `--cfg loom`).

use super::{SharedMemory, Untyped, sealed};
use crate::mem::{LoomMemory, Mem};

/// A loom-modelled region, zeroed: the `HeapRegion` of loom models. Cheap to clone.
#[derive(Clone)]
pub struct LoomRegion {
    memory: LoomMemory,
}

impl LoomRegion {
    /// A zeroed region of `len` bytes (rounded up to a multiple of 8).
    pub fn zeroed(len: usize) -> Self {
        Self {
            memory: LoomMemory::zeroed(len),
        }
    }

    /// Makes every modelled futex wait on this region return at once: spurious wake-ups.
    pub fn set_spurious_wakeups(&self, on: bool) {
        self.memory.set_spurious_wakeups(on);
    }
}

impl sealed::Memory for LoomRegion {
    fn mem(&self) -> Mem {
        self.memory.mem()
    }
}

impl SharedMemory for LoomRegion {
    type Kind = Untyped;
}

impl core::fmt::Debug for LoomRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LoomRegion({})", self.memory.len())
    }
}
