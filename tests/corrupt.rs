//! A peer that writes garbage: every invalid header field and every inconsistent position or
//! record gives its own typed error — never a panic, a stray access or a hang.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use ringbell::region::{HeapRegion, SharedMemory, Spsc};
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::testing::{self, View};
use ringbell::wire::*;
use ringbell::wire::{COMMITTED, PADDING};
use ringbell::{AttachError, Corruption, HeaderError, OwnerId, RecvError, SendError};

fn fresh(cap: usize) -> HeapRegion<Spsc> {
    HeapRegion::new(&spsc::Config::new(cap)).unwrap()
}

fn attach_err<S: SharedMemory + Clone>(region: &S) -> AttachError
where
    S::Kind: ringbell::region::Admits<Spsc>,
{
    let id = OwnerId::new(77).unwrap();
    let p = Producer::attach(region.clone(), id).map(drop).unwrap_err();
    let c = Consumer::attach(region.clone(), id).map(drop).unwrap_err();
    assert_eq!(p, c, "producer and consumer disagree");
    p
}

fn header_err(f: impl FnOnce(&View)) -> HeaderError {
    let region = fresh(256);
    f(&testing::view(&region));
    match attach_err(&region) {
        AttachError::Header(h) => h,
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn each_bad_header_field_has_its_error() {
    let _watchdog = common::watchdog();
    use HeaderError::*;
    assert_eq!(header_err(|m| m.store_u32(READY_OFF, 0, Relaxed)), NotReady);
    assert_eq!(
        header_err(|m| m.store_u64(MAGIC_OFF, 1, Relaxed)),
        BadMagic { found: 1 }
    );
    assert_eq!(
        header_err(|m| m.store_u64(MAGIC_OFF, MAGIC.swap_bytes(), Relaxed)),
        WrongEndianness
    );
    assert_eq!(
        header_err(|m| m.store_u32(VERSION_OFF, 2, Relaxed)),
        UnsupportedVersion { found: 2 }
    );
    assert_eq!(
        header_err(|m| m.store_u32(ENDIAN_OFF, ENDIAN_MARKER.swap_bytes(), Relaxed)),
        WrongEndianness
    );
    assert_eq!(
        header_err(|m| m.store_u32(HEADER_SIZE_OFF, 512, Relaxed)),
        BadHeaderSize { found: 512 }
    );
    assert_eq!(
        header_err(|m| m.store_u32(KIND_OFF, 9, Relaxed)),
        WrongKind {
            found: 9,
            expected: 1
        }
    );
    assert_eq!(
        header_err(|m| m.store_u32(FLAGS_OFF, 8, Relaxed)),
        UnsupportedFlags { flags: 8 }
    );
    assert_eq!(
        header_err(|m| m.store_u64(CAPACITY_OFF, 300, Relaxed)),
        BadCapacity { capacity: 300 }
    );
    assert_eq!(
        header_err(|m| m.store_u64(CAPACITY_OFF, 0, Relaxed)),
        BadCapacity { capacity: 0 }
    );
    assert_eq!(
        header_err(|m| m.store_u64(CAPACITY_OFF, 1 << 40, Relaxed)),
        BadCapacity { capacity: 1 << 40 }
    );
    assert_eq!(
        header_err(|m| m.store_u64(MASK_OFF, 0xff00, Relaxed)),
        BadMask {
            mask: 0xff00,
            capacity: 256
        }
    );
    // A capacity (and matching mask) larger than the memory: the header lies about the size.
    assert_eq!(
        header_err(|m| {
            m.store_u64(CAPACITY_OFF, 512, Relaxed);
            m.store_u64(MASK_OFF, 511, Relaxed);
        }),
        SizeMismatch {
            size: 1024 + 256,
            expected: 1024 + 512
        }
    );
    assert_eq!(
        header_err(|m| m.store_u32(FRAME_CAP_OFF, 121, Relaxed)),
        BadFrameCap {
            frame_cap: 121,
            max: 120
        }
    );
}

#[test]
fn memory_smaller_than_a_header_is_refused() {
    let _watchdog = common::watchdog();
    let region = testing::zeroed_heap_region(100);
    assert_eq!(
        attach_err(&region),
        AttachError::Header(HeaderError::TooSmall { size: 100 })
    );
    let region = testing::zeroed_heap_region(HEADER_SIZE + 64);
    assert_eq!(
        attach_err(&region),
        AttachError::Header(HeaderError::BadMagic { found: 0 })
    );
}

#[test]
fn inconsistent_positions_at_attach_are_refused() {
    let _watchdog = common::watchdog();
    let region = fresh(256);
    testing::view(&region).store_u64(WRITE_POS_OFF, 264, Relaxed); // 264 bytes ahead of read 0
    assert!(matches!(attach_err(&region), AttachError::Corrupt(_)));
    // The failed attach gave the roles back.
    testing::view(&region).store_u64(WRITE_POS_OFF, 0, Relaxed);
    region.producer().unwrap();
    region.consumer().unwrap();
    let region = fresh(256);
    testing::view(&region).store_u64(WRITE_POS_OFF, 3, Relaxed);
    assert_eq!(
        attach_err(&region),
        AttachError::Corrupt(Corruption::WritePosition { found: 3 })
    );
}

fn pair(
    cap: usize,
) -> (
    HeapRegion<Spsc>,
    Producer<HeapRegion<Spsc>>,
    Consumer<HeapRegion<Spsc>>,
) {
    let region = fresh(cap);
    let tx = region.producer().unwrap();
    let rx = region.consumer().unwrap();
    (region, tx, rx)
}

#[test]
fn write_position_ahead_by_more_than_capacity() {
    let _watchdog = common::watchdog();
    for bad in [264u64, u64::MAX - 7, 1 << 63, 5] {
        let (region, _tx, mut rx) = pair(256);
        let mem = testing::view(&region);
        mem.store_u64(WRITE_POS_OFF, bad, Relaxed);
        assert_eq!(
            rx.try_recv().unwrap_err(),
            RecvError::Corrupt(Corruption::WritePosition { found: bad })
        );
        assert!(rx.has_data(), "has_data hides corruption");
        // Still an error on the next call, not a hang or a panic.
        assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
    }
}

#[test]
fn write_position_moving_backwards() {
    let _watchdog = common::watchdog();
    let (region, mut tx, mut rx) = pair(256);
    let mem = testing::view(&region);
    tx.try_send(1, &[0; 40]).unwrap();
    tx.try_send(2, &[0; 40]).unwrap();
    rx.try_recv().unwrap(); // cached write is 96, read 48
    mem.store_u64(WRITE_POS_OFF, 48, Relaxed);
    // The consumer still trusts its cache for the record it saw published...
    rx.try_recv().unwrap();
    // ...and refuses the position that went backwards (96 -> 48 while read is 96).
    assert!(matches!(
        rx.try_recv(),
        Err(RecvError::Corrupt(Corruption::WritePosition { .. }))
    ));
}

#[test]
fn read_position_garbage_is_refused_by_the_producer() {
    let _watchdog = common::watchdog();
    for bad in [8u64, 1 << 40, 3] {
        let (region, mut tx, _rx) = pair(64);
        let mem = testing::view(&region);
        tx.try_send(0, &[0; 8]).unwrap(); // write 16
        tx.try_send(0, &[0; 8]).unwrap(); // write 32
        tx.try_send(0, &[0; 8]).unwrap(); // write 48
        mem.store_u64(READ_POS_OFF, bad.wrapping_add(48), Relaxed); // past the write position
        assert!(
            matches!(
                tx.try_send(0, &[0; 24]),
                Err(SendError::Corrupt(Corruption::ReadPosition { .. }))
            ),
            "read position {bad} + 48 accepted"
        );
    }
}

fn corrupt_record(word: u32, cap: usize, len_published: u64) -> RecvError {
    let (region, _tx, mut rx) = pair(cap);
    let mem = testing::view(&region);
    mem.store_u32(HEADER_SIZE, word, Relaxed);
    mem.store_u64(WRITE_POS_OFF, len_published, Relaxed);
    let err = rx.try_recv().unwrap_err();
    assert!(rx.has_data());
    err
}

#[test]
fn invalid_record_headers() {
    let _watchdog = common::watchdog();
    let corrupt = |word| RecvError::Corrupt(Corruption::Record { position: 0, word });
    // Not committed (all zero, or length only).
    assert_eq!(corrupt_record(0, 256, 16), corrupt(0));
    assert_eq!(corrupt_record(8, 256, 16), corrupt(8));
    // Longer than the frame cap (120 for 256).
    assert_eq!(
        corrupt_record(COMMITTED | 121, 256, 256),
        corrupt(COMMITTED | 121)
    );
    assert_eq!(
        corrupt_record(COMMITTED | 0x3fff_ffff, 256, 256),
        corrupt(COMMITTED | 0x3fff_ffff)
    );
    // Longer than what was published.
    assert_eq!(
        corrupt_record(COMMITTED | 16, 256, 16),
        corrupt(COMMITTED | 16)
    );
    // Padding at offset 0 (a correct producer never pads there).
    assert_eq!(
        corrupt_record(PADDING | COMMITTED | 248, 256, 256),
        corrupt(PADDING | COMMITTED | 248)
    );
}

#[test]
fn padding_that_does_not_reach_the_end() {
    let _watchdog = common::watchdog();
    let (region, mut tx, mut rx) = pair(64);
    let mem = testing::view(&region);
    tx.try_send(0, &[0; 24]).unwrap();
    rx.try_recv().unwrap(); // read 32
    let word = PADDING | COMMITTED | 8; // covers 16 bytes, but 32 remain to the end
    mem.store_u32(HEADER_SIZE + 32, word, Relaxed);
    mem.store_u64(WRITE_POS_OFF, 64 + 16, Relaxed);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::Record { position: 32, word })
    );
}

/// A hostile producer that keeps publishing padding never traps the consumer in a loop.
#[test]
fn endless_padding_is_bounded() {
    let _watchdog = common::watchdog();
    let (region, mut tx, mut rx) = pair(64);
    let mem = testing::view(&region);
    tx.try_send(0, &[0; 24]).unwrap();
    rx.try_recv().unwrap(); // read 32
    // Padding from 32 to 64, then padding again at 0.
    mem.store_u32(HEADER_SIZE + 32, PADDING | COMMITTED | 24, Relaxed);
    mem.store_u32(HEADER_SIZE, PADDING | COMMITTED | 56, Relaxed);
    mem.store_u64(WRITE_POS_OFF, 96, Relaxed);
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
}

/// Garbage in every shared word, over and over: every call returns, none panics.
#[test]
fn random_garbage_never_panics() {
    let _watchdog = common::watchdog();
    let mut rng = common::Rng::new(1);
    for _ in 0..if cfg!(miri) { 20 } else { 2000 } {
        let (region, mut tx, mut rx) = pair(64);
        let mem = testing::view(&region);
        for _ in 0..20 {
            let off = match rng.below(4) {
                0 => WRITE_POS_OFF,
                1 => READ_POS_OFF,
                _ => HEADER_SIZE + 8 * rng.below(8) as usize,
            };
            let v = match rng.below(3) {
                0 => rng.next_u64(),
                1 => rng.below(200),
                _ => (COMMITTED as u64 | rng.below(64)) | (rng.below(2) << 31),
            };
            if off >= HEADER_SIZE {
                mem.store_u32(off, v as u32, Relaxed);
            } else {
                mem.store_u64(off, v, Relaxed);
            }
            let _ = tx.try_send(1, &[7; 8]);
            let _ = rx.has_data();
            let mut buf = [0u8; 64];
            let _ = rx.try_recv_into(&mut buf);
        }
    }
}

/// Found by the `hostile_peer` fuzzer: a peer that writes an owner id whose pid is above
/// `i32::MAX` made the dead-peer check panic (rustix's `Pid::from_raw` asserts). Such an
/// owner is not a live process we can watch; the calls go on.
#[test]
fn an_owner_id_with_an_impossible_pid_is_not_a_panic() {
    let _watchdog = common::watchdog();
    const PID_BIT: u64 = 1 << 62;
    for pid in [0x8000_0000u64, 0xFFFF_FFFF] {
        let (region, mut tx, mut rx) = pair(64);
        let view = testing::view(&region);
        view.store_u64(PRODUCER_OWNER_OFF, PID_BIT | (5 << 32) | pid, Relaxed);
        view.store_u64(CONSUMER_OWNER_OFF, PID_BIT | (6 << 32) | pid, Relaxed);
        // Empty, and Full: the non-blocking calls' dead-peer checks read those words.
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        while tx.try_send(1, &[0; 8]).is_ok() {}
        assert_eq!(tx.try_send(1, &[0; 8]), Err(SendError::Full));
        // The blocking calls' checks too (between slices).
        assert!(matches!(
            tx.send_timeout(1, &[0; 8], std::time::Duration::from_millis(1)),
            Err(SendError::Timeout)
        ));
        drop(rx);
    }
}

/// Every error that wraps a `Corruption` gives it as its `source()`, so that error chains
/// (anyhow, eyre, `Error::source` loops) show the cause.
#[test]
fn errors_that_wrap_a_corruption_give_it_as_their_source() {
    let _watchdog = common::watchdog();
    use ringbell::channel::{CallError, ConnId, RecvRequestError};
    use ringbell::fanin::{FanInError, RingId};
    use std::error::Error;
    let c = Corruption::WritePosition { found: 3 };
    let conn = ConnId {
        slot: 0,
        generation: 1,
    };
    let errors: [&dyn Error; 6] = [
        &FanInError::Corrupt(RingId(0), c),
        &RecvRequestError::Detached(conn, Some(c)),
        &CallError::Corrupt(c),
        &SendError::Corrupt(c),
        &RecvError::Corrupt(c),
        &AttachError::Corrupt(c),
    ];
    for e in errors {
        let source = e.source().unwrap_or_else(|| panic!("{e} gives no source"));
        assert_eq!(source.downcast_ref::<Corruption>(), Some(&c), "{e}");
    }
}

/// An MPSC record's length word also carries `CLAIMED`: a forged header whose frame cap
/// reaches it is refused at attach, as the creator refuses to write one. (It used to pass
/// the opener, which checked only half the capacity.)
#[test]
fn an_mpsc_frame_cap_that_reaches_the_claimed_bit_is_refused() {
    use ringbell::mpsc;
    // 1 GiB of data area: half of it, less a record header, is one above the length mask's
    // limit. The heap region is zeroed lazily: only the header's pages are touched.
    let region = HeapRegion::new(&mpsc::Config::new(1 << 30).frame_cap(1024)).unwrap();
    let limit = (MPSC_LEN_MASK as usize - RECORD_HEADER) as u32;
    testing::view(&region).store_u32(FRAME_CAP_OFF, limit + 1, Relaxed);
    let id = OwnerId::new(77).unwrap();
    let err = mpsc::Consumer::attach(region.clone(), id, mpsc::NeverDead)
        .map(drop)
        .unwrap_err();
    assert_eq!(
        err,
        AttachError::Header(HeaderError::BadFrameCap {
            frame_cap: u64::from(limit) + 1,
            max: u64::from(limit),
        })
    );
    testing::view(&region).store_u32(FRAME_CAP_OFF, limit, Relaxed);
    assert!(mpsc::Consumer::attach(region, id, mpsc::NeverDead).is_ok());
}
