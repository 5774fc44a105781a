//! `ringbell inspect --fd`: a region's header, read without writing the region.
//!
//! # What it guarantees
//!
//! * **No write, no wait.** The file is opened `O_RDONLY | O_NONBLOCK` (a FIFO is refused,
//!   not waited on) and, when it is mapped, mapped `PROT_READ` and `MAP_SHARED`: a store
//!   through the mapping would fault rather than reach the region. Nothing here stores to
//!   it, and the mapping is never handed to the library.
//! * **No `SIGBUS`.** Only a file that cannot shrink is mapped: a memfd sealed with
//!   `F_SEAL_SHRINK`, as every region ringbell creates is. Any other file (an unsealed memfd,
//!   a copy on disk, a `/proc/PID/fd/FD` of either) is read with `pread(2)` instead, so a
//!   file truncated under us gives an error, not a signal; such a snapshot says
//!   `(copied, not live)`. A file of more than [`COPY_LIMIT`] bytes is refused.
//! * **No undefined behaviour on the read-only mapping.** Rust guarantees only *relaxed*
//!   atomic loads of at most a machine word to work on read-only memory (see "Atomic
//!   accesses to read-only memory" in `core::sync::atomic`); `RegionSnapshot::read` makes
//!   acquire loads, and `RawRegion::new` asks for memory valid for writes. So the live path
//!   copies the header, word by word with relaxed `usize` loads and an acquire fence, into a
//!   private scratch mapping of the region's length, and takes the snapshot of that copy.
//!   On a target the standard library does not list, the live path is not used at all.
//!
//! # What it does not do
//!
//! It reads the header only (the words `RegionSnapshot` reads), never the data area or an
//! MPSC registry. A busy ring is a blur: the words are read at slightly different moments.
//! The read position is copied before the write position, so a snapshot never sees the
//! consumer ahead of the producer; if the positions still disagree (the producer lapped the
//! copy), the live path reads again, up to [`LIVE_ATTEMPTS`] times.
//!
//! Man pages: open(2), fcntl(2) (`F_GET_SEALS`), mmap(2), pread(2).

// The mapping, the word copy and the scratch region are this module's whole reason for unsafe.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use ringbell::HeaderError;
use ringbell::inspect::{BellWords, RegionSnapshot, Role, SnapshotError};
use ringbell::region::RawRegion;
use ringbell::wire::{self, RingKind};
use rustix::fs::{OFlags, SealFlags};
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::json;
use crate::{Failure, Outcome, fail};

/// The largest file the copy path reads: 1 GiB. A region this large is possible (a 1 GiB
/// ring); a larger file to be copied is more likely a mistake than a region.
pub const COPY_LIMIT: u64 = 1 << 30;

/// How many times the live path reads a header whose positions disagree before it reports
/// the disagreement.
pub const LIVE_ATTEMPTS: u32 = 8;

/// The bytes `RegionSnapshot::read` looks at: the header, and a bell region's doorbell line.
const SNAPSHOT_SPAN: usize = wire::BELL_REGION_SIZE;

/// The largest file a region can be: an MPSC ring of the largest capacity with the largest
/// registry.
const MAX_REGION: u64 = (wire::HEADER_SIZE
    + wire::MAX_CAPACITY
    + wire::MAX_REGISTRY_SLOTS * wire::REGISTRY_SLOT_SIZE) as u64;

/// Whether relaxed `usize` loads are guaranteed to work on read-only memory on this target:
/// the architectures `core::sync::atomic` lists, where the limit is at least a `usize`.
const LIVE_LOADS_ALLOWED: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "x86",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "riscv32",
    target_arch = "powerpc64",
    target_arch = "powerpc",
    target_arch = "s390x",
    target_arch = "loongarch64",
    target_arch = "mips64",
    target_arch = "mips",
));

/// How a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// From a read-only mapping of a file sealed against shrinking.
    Live {
        /// How many reads it took to get consistent positions (1 unless the ring was busy).
        reads: u32,
    },
    /// From a `pread` copy.
    Copied {
        /// Why the file was not mapped.
        why: &'static str,
    },
}

/// A snapshot and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Inspection {
    /// The header words.
    pub snapshot: RegionSnapshot,
    /// Live or copied.
    pub source: Source,
}

/// `ringbell inspect --fd`: inspects the region in the file at `path` and renders it.
///
/// # Errors
///
/// A [`Failure`] if the file cannot be opened or read, is not a regular file, is shorter than
/// a header or longer than a region can be; the rendered snapshot *and* a failure if its
/// check fails.
pub fn run(path: &Path, json: bool) -> Outcome {
    let inspection = match inspect(path) {
        Ok(i) => i,
        Err(e) => return Outcome::failed(e),
    };
    let stdout = if json {
        render_json(path, &inspection)
    } else {
        render_text(path, &inspection)
    };
    let failure = inspection
        .snapshot
        .check()
        .err()
        .map(|e| fail!("{}: {e}", path.display()));
    Outcome { stdout, failure }
}

/// Opens `path` read-only and takes a snapshot of the region in it, live if the file is
/// sealed against shrinking, from a copy otherwise.
///
/// # Errors
///
/// As [`run`], but a snapshot whose check fails is returned, not an error.
pub fn inspect(path: &Path) -> Result<Inspection, Failure> {
    let shown = path.display();
    // O_RDONLY | O_CLOEXEC (std's), and O_NONBLOCK so that a FIFO is refused below instead
    // of waiting for a writer, O_NOCTTY so that a terminal is not made ours.
    let nonblocking = OFlags::NONBLOCK | OFlags::NOCTTY;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking.bits() as i32)
        .open(path)
        .map_err(|e| fail!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| fail!("cannot stat {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(fail!(
            "{shown} is not a regular file (a region is held by a memfd or a file)"
        ));
    }
    let len = meta.len();
    if len < wire::HEADER_SIZE as u64 {
        return Err(fail!("{shown}: {}", HeaderError::TooSmall { size: len }));
    }
    // F_GET_SEALS fails (EINVAL) on a file that is not a memfd: it has no seals.
    let sealed = rustix::fs::fcntl_get_seals(&file).is_ok_and(|s| s.contains(SealFlags::SHRINK));
    if sealed && LIVE_LOADS_ALLOWED {
        if len > MAX_REGION {
            return Err(fail!(
                "{shown}: {len} bytes is larger than any region ({MAX_REGION} bytes)"
            ));
        }
        live(
            &file,
            usize::try_from(len).map_err(|_| too_large(path, len))?,
        )
        .map_err(|e| fail!("cannot map {shown}: {e}"))
    } else {
        if len > COPY_LIMIT {
            return Err(fail!(
                "{shown}: {len} bytes is more than this command copies ({COPY_LIMIT} bytes); \
                 only a memfd sealed against shrinking is read in place"
            ));
        }
        let why = if sealed {
            "this target does not promise that loads work on a read-only mapping"
        } else {
            "the file is not sealed against shrinking"
        };
        copied(
            &file,
            usize::try_from(len).map_err(|_| too_large(path, len))?,
            why,
        )
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                fail!("{shown} shrank while it was read")
            } else {
                fail!("cannot read {shown}: {e}")
            }
        })
    }
}

/// The failure for a file this process cannot address.
fn too_large(path: &Path, len: u64) -> Failure {
    fail!("{}: {len} bytes is too large to map here", path.display())
}

/// The live path: maps `file` read-only and snapshots a word-by-word copy of its header,
/// reading again while the positions disagree.
fn live(file: &File, len: usize) -> io::Result<Inspection> {
    let region = Mapping::file_read_only(file, len)?;
    let scratch = Mapping::scratch(len)?;
    let span = len.min(SNAPSHOT_SPAN) / WORD * WORD;
    let mut reads = 0;
    loop {
        reads += 1;
        // SAFETY: both mappings are `len >= span` bytes, page-aligned and alive; `region` is
        // only ever loaded from; `scratch` is this process's private memory and no reference
        // to it exists.
        unsafe { copy_header(region.ptr, scratch.ptr, span) };
        let snapshot = snapshot_of(&scratch)?;
        let busy = matches!(snapshot.check(), Err(SnapshotError::Positions(_)));
        if !busy || reads == LIVE_ATTEMPTS {
            return Ok(Inspection {
                snapshot,
                source: Source::Live { reads },
            });
        }
    }
}

/// The copy path: reads the header bytes with `pread` and snapshots them inside a zeroed
/// scratch mapping of the file's length (the snapshot checks the length; it never reads the
/// data area, so only the header is copied).
fn copied(file: &File, len: usize, why: &'static str) -> io::Result<Inspection> {
    let span = len.min(SNAPSHOT_SPAN);
    let mut header = vec![0u8; span];
    file.read_exact_at(&mut header, 0)?;
    let scratch = Mapping::scratch(len)?;
    // SAFETY: `scratch` is `len >= span` bytes of this process's private memory, with no
    // reference to it alive; `header` is a separate allocation of `span` bytes.
    unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), scratch.ptr.as_ptr(), span) };
    Ok(Inspection {
        snapshot: snapshot_of(&scratch)?,
        source: Source::Copied { why },
    })
}

/// The snapshot of a header copied into `scratch`.
fn snapshot_of(scratch: &Mapping) -> io::Result<RegionSnapshot> {
    // SAFETY: the scratch mapping is readable and writable, page-aligned (so 8-byte aligned)
    // and stays mapped until `scratch` drops, after this function returns, and with it the
    // last use of the `RawRegion` (it is a local, and the snapshot holds no pointer into it).
    // No Rust reference to its bytes exists while the library reads them.
    let region = unsafe { RawRegion::new(scratch.ptr.as_ptr(), scratch.len) }
        .ok_or_else(|| io::Error::other("the scratch mapping is not 8-byte aligned"))?;
    Ok(RegionSnapshot::read(&region))
}

/// Bytes of one copied word.
const WORD: usize = size_of::<usize>();

// The copy covers whole words, the header among them, and the read position inside it.
const _: () = assert!(
    SNAPSHOT_SPAN >= wire::HEADER_SIZE
        && SNAPSHOT_SPAN % WORD == 0
        && wire::HEADER_SIZE % WORD == 0
        && wire::READ_POS_OFF + 8 <= wire::HEADER_SIZE
);

/// Copies the first `span` bytes (a multiple of [`WORD`]) of `src` to `dst`, each aligned
/// word loaded once with a relaxed atomic load: the ready word first, then an acquire fence
/// (so the rest is at least as new as the creator's initialisation, as the library's acquire
/// load of it would make it), then the read position and another acquire fence (so the write
/// position, read after it, is never behind it), then every other word in order, then a last
/// acquire fence.
///
/// # Safety
///
/// `src` and `dst` must be valid for `span` bytes and aligned to [`WORD`]; `src` need only be
/// readable, and may be written concurrently by other processes (with atomic stores of at
/// most a word: ringbell's header words); `dst` must be memory nobody else accesses while this
/// runs.
unsafe fn copy_header(src: NonNull<u8>, dst: NonNull<u8>, span: usize) {
    debug_assert_eq!(span % WORD, 0);
    let copy = |off: usize| {
        debug_assert!(off + WORD <= span && off % WORD == 0);
        // SAFETY: `off + WORD <= span` and `off` is word-aligned, so the word is inside `src`
        // and aligned (the caller's contract). In this process the word is only ever loaded
        // atomically, here; other processes store to it only with ringbell's `u32`/`u64`
        // atomics. A relaxed load of a `usize` is one that works on read-only memory on this
        // target (the caller checked `LIVE_LOADS_ALLOWED`).
        let word = unsafe { AtomicUsize::from_ptr(src.as_ptr().add(off).cast::<usize>()) }
            .load(Ordering::Relaxed);
        // SAFETY: inside `dst` and aligned, as above; nobody else accesses `dst`.
        unsafe { dst.as_ptr().add(off).cast::<usize>().write(word) };
    };
    let first = [
        wire::READY_OFF / WORD * WORD,
        wire::READ_POS_OFF / WORD * WORD,
    ];
    copy(first[0]);
    // Acquire: with the relaxed load of the ready word above, pairs with the Release store of
    // the ready word by the region's creator.
    fence(Ordering::Acquire);
    copy(first[1]);
    // Acquire: with the relaxed load of the read position above, pairs with the consumer's
    // Release store of it, which it made after loading a write position at least as large:
    // the write position loaded below is at least that large too.
    fence(Ordering::Acquire);
    for off in (0..span).step_by(WORD).filter(|off| !first.contains(off)) {
        copy(off);
    }
    // Acquire: with the relaxed loads above, pairs with the Release stores of the role words
    // and positions by their writers, as the library's acquire loads of them do.
    fence(Ordering::Acquire);
}

/// An `mmap`ping this module owns; unmapped on drop.
struct Mapping {
    /// Start of the mapping (page-aligned).
    ptr: NonNull<u8>,
    /// Its length in bytes.
    len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)`: the file, read-only. The caller has
    /// checked that the file is sealed against shrinking, so the whole mapping stays backed.
    fn file_read_only(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping at an address the kernel picks: it replaces nothing. It is
        // only ever read, through `copy_header`.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                file,
                0,
            )
        }?;
        Self::from_raw(ptr, len)
    }

    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`:
    /// zeroed private memory, backed only where it is written (the header's pages).
    fn scratch(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks: it replaces
        // nothing.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        Self::from_raw(ptr, len)
    }

    /// Wraps what `mmap` returned.
    fn from_raw(ptr: *mut std::ffi::c_void, len: usize) -> io::Result<Self> {
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is a mapping made in `Mapping::file_read_only` or
        // `Mapping::scratch`, unmapped only here; nothing borrowed from it outlives `self`.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The kind's name, as printed and in JSON.
fn kind_name(kind: Option<RingKind>) -> &'static str {
    match kind {
        Some(RingKind::Spsc) => "spsc",
        Some(RingKind::Mpsc) => "mpsc",
        Some(RingKind::Bell) => "bell",
        None => "unknown",
    }
}

/// The names of the header flags set in `flags`, and any unknown bits.
fn flag_names(flags: u32) -> String {
    let known = [
        (wire::FLAG_SHARED_BELL, "shared bell"),
        (wire::FLAG_SHARED_SPACE_BELL, "shared space bell"),
        (wire::FLAG_ASYMMETRIC_FENCES, "asymmetric fences"),
    ];
    let mut names: Vec<String> = known
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let unknown = flags & !wire::KNOWN_FLAGS;
    if unknown != 0 {
        names.push(format!("unknown bits {unknown:#x}"));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A role word, in words: free, closed, or its owner (and the owner's pid, if the id
/// carries one).
fn role_text(role: Role) -> String {
    match role {
        Role::Free => "free".to_owned(),
        Role::Closed => "closed".to_owned(),
        Role::Held(owner) => match owner.pid() {
            Some(pid) => format!("held by owner {:#x} (pid {pid})", owner.get()),
            None => format!("held by owner {:#x}", owner.get()),
        },
    }
}

/// A doorbell's two words.
fn bell_text(bell: BellWords) -> String {
    format!("sequence {}, waiters {}", bell.sequence, bell.waiters)
}

/// How the snapshot was taken, in words.
fn source_text(source: Source) -> String {
    match source {
        Source::Live { reads: 1 } => "live (read-only mapping of a sealed memfd)".to_owned(),
        Source::Live { reads } => {
            format!("live (read-only mapping of a sealed memfd; busy ring, read {reads} times)")
        }
        Source::Copied { why } => format!("(copied, not live): {why}"),
    }
}

/// The snapshot as an aligned two-column table.
fn render_text(path: &Path, i: &Inspection) -> String {
    let s = &i.snapshot;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut rows: Vec<(&str, String)> = vec![
        ("region", path.display().to_string()),
        ("read", source_text(i.source)),
        ("length", format!("{} bytes", s.len)),
        ("magic", if s.magic_ok { "ok" } else { "bad" }.to_owned()),
        ("ready", yes_no(s.ready).to_owned()),
        ("version", s.version.to_string()),
        ("kind", kind_name(s.kind).to_owned()),
        ("capacity", format!("{} bytes", s.capacity)),
        ("frame cap", format!("{} bytes", s.frame_cap)),
        ("flags", format!("{:#x} ({})", s.flags, flag_names(s.flags))),
        ("registry", format!("{} slots", s.registry_slots)),
        ("producer", role_text(s.producer)),
        ("consumer", role_text(s.consumer)),
        ("write pos", s.write_pos.to_string()),
        ("read pos", s.read_pos.to_string()),
        (
            "used",
            s.used().map_or_else(
                || "unknown".to_owned(),
                |u| format!("{u} of {} bytes", s.capacity),
            ),
        ),
        ("data bell", bell_text(s.data_bell)),
        ("space bell", bell_text(s.space_bell)),
    ];
    if let Some(bell) = s.bell {
        rows.push(("bell", bell_text(bell)));
    }
    rows.push(("reservation", format!("{:#x}", s.reservation)));
    rows.push(("verdict", verdict(s.check())));
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:<12} {value}\n"));
    }
    out
}

/// `consistent`, or what the check found.
fn verdict(check: Result<(), SnapshotError>) -> String {
    match check {
        Ok(()) => "consistent".to_owned(),
        Err(e) => e.to_string(),
    }
}

/// A role as three fields: `NAME` (`free`, `held`, `closed`), `NAME_owner` (hex id or
/// `null`) and `NAME_pid` (or `null`).
fn role_json(obj: &mut json::Object, name: &str, role: Role) {
    let (state, owner) = match role {
        Role::Free => ("free", None),
        Role::Closed => ("closed", None),
        Role::Held(owner) => ("held", Some(owner)),
    };
    obj.str(name, state);
    let hex = owner.map(|o| format!("{:#x}", o.get()));
    obj.opt_str(&format!("{name}_owner"), hex.as_deref());
    obj.opt_uint(
        &format!("{name}_pid"),
        owner.and_then(|o| o.pid()).map(u64::from),
    );
}

/// The snapshot as one flat JSON object.
fn render_json(path: &Path, i: &Inspection) -> String {
    let s = &i.snapshot;
    let mut o = json::Object::new();
    o.str("region", &path.display().to_string());
    match i.source {
        Source::Live { reads } => o.bool("live", true).uint("reads", u64::from(reads)),
        Source::Copied { .. } => o.bool("live", false).uint("reads", 1),
    };
    o.uint("len", s.len as u64)
        .bool("magic_ok", s.magic_ok)
        .bool("ready", s.ready)
        .uint("version", u64::from(s.version))
        .opt_str("kind", s.kind.map(|k| kind_name(Some(k))))
        .uint("capacity", s.capacity)
        .uint("frame_cap", u64::from(s.frame_cap))
        .uint("flags", u64::from(s.flags))
        .uint("registry_slots", u64::from(s.registry_slots));
    role_json(&mut o, "producer", s.producer);
    role_json(&mut o, "consumer", s.consumer);
    o.uint("write_pos", s.write_pos)
        .uint("read_pos", s.read_pos)
        .opt_uint("used", s.used())
        .uint("data_bell_sequence", u64::from(s.data_bell.sequence))
        .uint("data_bell_waiters", u64::from(s.data_bell.waiters))
        .uint("space_bell_sequence", u64::from(s.space_bell.sequence))
        .uint("space_bell_waiters", u64::from(s.space_bell.waiters))
        .opt_uint("bell_sequence", s.bell.map(|b| u64::from(b.sequence)))
        .opt_uint("bell_waiters", s.bell.map(|b| u64::from(b.waiters)))
        .uint("reservation", s.reservation)
        .bool("consistent", s.check().is_ok());
    let error = s.check().err().map(|e| e.to_string());
    o.opt_str("error", error.as_deref());
    let mut text = o.finish();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named() {
        assert_eq!(flag_names(0), "none");
        assert_eq!(
            flag_names(wire::FLAG_SHARED_BELL | 1 << 30),
            "shared bell, unknown bits 0x40000000"
        );
    }
}
