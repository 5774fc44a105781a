//! Sealed memfd regions: what an opener refuses before mapping, residency, and a real
//! cross-process stream through an inherited fd.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{Rng, checksum};
use ringbell::region::{Region, RegionError, RegionOptions};
use ringbell::spsc;
use ringbell::testing;
use ringbell::wire::{HEADER_SIZE, READY_OFF};
use ringbell::{HeaderError, RecvError, SendError};
use rustix::fs::{MemfdFlags, SealFlags};

fn memfd(size: u64, seals: SealFlags) -> OwnedFd {
    let fd =
        rustix::fs::memfd_create("test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

const SEALS: SealFlags = ringbell::region::REQUIRED_SEALS;

#[test]
fn a_created_region_cannot_be_resized() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let fd = region.fd();
    assert_eq!(rustix::fs::ftruncate(fd, 100), Err(rustix::io::Errno::PERM));
    assert_eq!(
        rustix::fs::ftruncate(fd, 1 << 20),
        Err(rustix::io::Errno::PERM)
    );
    let seals = rustix::fs::fcntl_get_seals(fd).unwrap();
    assert!(seals.contains(SEALS));
    // F_SEAL_SEAL: nobody can add a write seal that would break the ring either.
    assert!(rustix::fs::fcntl_add_seals(fd, SealFlags::WRITE).is_err());
}

#[test]
fn an_fd_that_is_not_a_memfd_is_refused() {
    let _watchdog = common::watchdog();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let err = Region::<ringbell::region::Spsc>::open(OwnedFd::from(file)).unwrap_err();
    assert!(matches!(err, RegionError::NotMemfd), "{err}");
}

#[test]
fn a_memfd_without_seals_is_refused() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let size = region.len() as u64;
    // Same bytes, unsealed: someone could shrink it under us.
    let fd = memfd(size, SealFlags::empty());
    let err = Region::<ringbell::region::Spsc>::open(fd).unwrap_err();
    assert!(
        matches!(err, RegionError::MissingSeals { seals: 0 }),
        "{err}"
    );
    // A memfd created without ALLOW_SEALING carries only F_SEAL_SEAL.
    let fd = rustix::fs::memfd_create("test", MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    let err = Region::<ringbell::region::Spsc>::open(fd).unwrap_err();
    assert!(matches!(err, RegionError::MissingSeals { .. }), "{err}");
    // Shrink and grow sealed but not the seal seal: still refused.
    let fd = memfd(size, SealFlags::SHRINK | SealFlags::GROW);
    assert!(matches!(
        Region::<ringbell::region::Spsc>::open(fd),
        Err(RegionError::MissingSeals { .. })
    ));
}

#[test]
fn a_write_sealed_memfd_is_refused() {
    let _watchdog = common::watchdog();
    let fd = memfd(8192, SEALS | SealFlags::WRITE);
    assert!(matches!(
        Region::<ringbell::region::Spsc>::open(fd),
        Err(RegionError::WriteSealed)
    ));
}

#[test]
fn a_memfd_smaller_than_a_header_is_refused_before_mapping() {
    let _watchdog = common::watchdog();
    for size in [0u64, 8, HEADER_SIZE as u64 - 1] {
        let err = Region::<ringbell::region::Spsc>::open(memfd(size, SEALS)).unwrap_err();
        assert!(
            matches!(err, RegionError::Header(HeaderError::TooSmall { size: s }) if s == size),
            "{err}"
        );
    }
}

/// The fd's size is checked twice: before mapping, it must be a header plus a power-of-two
/// capacity; after, it must match the capacity the header states.
#[test]
fn a_memfd_whose_size_differs_from_its_header_is_refused() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let mut bytes = vec![0u8; region.len()];
    testing::view(&region).copy_out(0, &mut bytes);
    let copy_with_size = |size: u64| {
        let fd =
            rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&fd, size).unwrap();
        rustix::io::pwrite(&fd, &bytes[..bytes.len().min(size as usize)], 0).unwrap();
        rustix::fs::fcntl_add_seals(&fd, SEALS).unwrap();
        Region::<ringbell::region::Spsc>::open(fd).unwrap_err()
    };
    // Not header + power of two: refused before mapping.
    for size in [region.len() as u64 - 8, region.len() as u64 + 1, 4097] {
        let err = copy_with_size(size);
        assert!(
            matches!(err, RegionError::Header(HeaderError::BadCapacity { capacity })
                if capacity == size - HEADER_SIZE as u64),
            "{size}: {err}"
        );
    }
    // A plausible size that is not the one the header states: refused after mapping.
    let size = (HEADER_SIZE + 8192) as u64;
    let err = copy_with_size(size);
    assert!(
        matches!(err, RegionError::Header(HeaderError::SizeMismatch { size: s, .. }) if s == size),
        "{err}"
    );
}

#[test]
fn a_region_not_ready_is_refused() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    testing::view(&region).store_u32(READY_OFF, 0, std::sync::atomic::Ordering::Relaxed);
    let fd = region.fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Region::<ringbell::region::Spsc>::open(fd),
        Err(RegionError::Header(HeaderError::NotReady))
    ));
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let fd = || region.fd().try_clone_to_owned().unwrap();
    let mem = testing::view(&region);
    mem.store_u32(
        ringbell::wire::VERSION_OFF,
        7,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert!(matches!(
        Region::<ringbell::region::Spsc>::open(fd()),
        Err(RegionError::Header(HeaderError::UnsupportedVersion {
            found: 7
        }))
    ));
    mem.store_u64(
        ringbell::wire::MAGIC_OFF,
        0,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert!(matches!(
        Region::<ringbell::region::Spsc>::open(fd()),
        Err(RegionError::Header(HeaderError::BadMagic { found: 0 }))
    ));
}

/// A 32 MiB ring costs (almost) no resident memory; a 256 KiB ring is fully populated.
/// Measured on this process's own mapping through `/proc/self/smaps`.
#[test]
#[cfg_attr(miri, ignore = "miri cannot map memfds")]
fn only_small_rings_are_prefaulted() {
    let _watchdog = common::watchdog();
    let big = Region::create(&spsc::Config::new(32 << 20)).unwrap();
    assert!(!big.is_prefaulted());
    let rss = common::mapping_rss_kib(big.as_ptr());
    assert!(rss < 1024, "32 MiB ring has {rss} KiB resident");

    let small = Region::create(&spsc::Config::new(256 << 10)).unwrap();
    assert!(small.is_prefaulted());
    let rss = common::mapping_rss_kib(small.as_ptr());
    assert!(rss > 256, "256 KiB ring has only {rss} KiB resident");

    // The opener populates its own mapping too, by the same rule.
    let reopened =
        Region::<ringbell::region::Spsc>::open(small.fd().try_clone_to_owned().unwrap()).unwrap();
    assert!(common::mapping_rss_kib(reopened.as_ptr()) >= 257);
    let reopened =
        Region::<ringbell::region::Spsc>::open(big.fd().try_clone_to_owned().unwrap()).unwrap();
    assert!(common::mapping_rss_kib(reopened.as_ptr()) < 1024);

    // The threshold is configurable.
    let opts = RegionOptions::new().prefault_threshold(0);
    let lazy = Region::create_with(&spsc::Config::new(256 << 10), &opts).unwrap();
    assert!(!lazy.is_prefaulted());
    assert!(common::mapping_rss_kib(lazy.as_ptr()) < 64);
}

const STREAM_FRAMES: u32 = 1_000_000;
const STREAM_SEED: u64 = 0x5eed;

/// The frame sizes of the stream: mostly small, now and then up to the cap.
fn stream_len(rng: &mut Rng, max: usize) -> usize {
    if rng.below(64) == 0 {
        rng.below(max as u64 + 1) as usize
    } else {
        rng.below(200) as usize
    }
}

/// A child process gets the region by an inherited fd and streams 1,000,000 frames of
/// random sizes, each carrying a checksum of its payload in its first four bytes; the parent
/// checks every one arrives, intact and in order.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn cross_process_stream_through_an_inherited_fd() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(64 << 10)).unwrap();
    let mut rx = region.consumer().unwrap();
    let mut child = common::spawn_child(
        "stream_producer_child",
        "stream-producer",
        region.fd().as_fd(),
    );
    let max = rx.max_frame();
    let mut rng = Rng::new(STREAM_SEED);
    let mut buf = vec![0u8; max];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut next = 0u32;
    while next < STREAM_FRAMES {
        match rx.try_recv_into(&mut buf) {
            Ok((tag, len)) => {
                assert_eq!(tag, next, "frame out of order");
                let want_len = stream_len(&mut rng, max).max(4);
                assert_eq!(len, want_len, "frame {next} has the wrong length");
                let sum = u32::from_le_bytes(buf[..4].try_into().unwrap());
                assert_eq!(sum, checksum(tag, &buf[4..len]), "frame {next} is corrupt");
                next += 1;
            }
            Err(RecvError::Empty) => {
                assert!(Instant::now() < deadline, "stream stalled at frame {next}");
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(rx.has_data(), "child exited ({status}) at frame {next}");
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("frame {next}: {e}"),
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(rx.try_recv_into(&mut buf), Err(RecvError::Closed));
}

/// The child half of `cross_process_stream_through_an_inherited_fd`; does nothing when run
/// as an ordinary test.
#[test]
fn stream_producer_child() {
    let _watchdog = common::watchdog();
    if common::child_role().as_deref() != Some("stream-producer") {
        return;
    }
    let region = Region::<ringbell::region::Spsc>::open(common::child_fd()).unwrap();
    let mut tx = region.producer().unwrap();
    let max = tx.max_frame();
    let mut rng = Rng::new(STREAM_SEED);
    let mut payload = vec![0u8; max];
    let mut fill = Rng::new(STREAM_SEED ^ 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..STREAM_FRAMES {
        let len = stream_len(&mut rng, max).max(4);
        fill.fill(&mut payload[4..len]);
        let sum = checksum(i, &payload[4..len]);
        payload[..4].copy_from_slice(&sum.to_le_bytes());
        loop {
            match tx.try_send(i, &payload[..len]) {
                Ok(()) => break,
                Err(SendError::Full) => {
                    assert!(Instant::now() < deadline, "consumer stalled");
                    std::thread::yield_now();
                }
                Err(e) => panic!("frame {i}: {e}"),
            }
        }
    }
}

/// The smallest SPSC ring (16 bytes of data) opens untyped too: the plausibility check
/// before mapping took it for too small (it used to demand more than 16 bytes).
#[test]
fn the_smallest_ring_opens_untyped() {
    let ring = Region::<ringbell::region::Spsc>::create(&ringbell::spsc::Config::new(16)).unwrap();
    let fd = ring.fd().try_clone_to_owned().unwrap();
    let any = Region::<ringbell::region::Untyped>::open(fd).unwrap();
    assert_eq!(any.len(), 1024 + 16);
}
