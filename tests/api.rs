//! One API shape across the ring kinds: the same names do the same thing on SPSC, MPSC and
//! the fan-in, and the conveniences a crossbeam or rtrb user reaches for behave as documented.

mod common;

use std::time::Duration;

use ringbell::doorbell::BellConfig;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::inspect::{RegionSnapshot, Role, SnapshotError};
use ringbell::region::{Bell, HeapRegion, Region, Spsc};
use ringbell::wire::{RingKind, WRITE_POS_OFF, record_size};
use ringbell::{HeaderError, OwnerId, RecvError, SendError, mpsc, spsc, testing};

const T: Duration = Duration::from_secs(10);

/// `capacity`, `max_frame`, `len` (bytes in use) and `is_empty` mean the same on every end.
#[test]
fn sizes_and_lengths_mean_the_same_on_every_end() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let (mut mrx, region) = mpsc::channel_with(&mpsc::Config::new(4096).frame_cap(2040)).unwrap();
    let mut mtx = region.producer().unwrap();
    assert_eq!((tx.capacity(), rx.capacity()), (4096, 4096));
    assert_eq!((mtx.capacity(), mrx.capacity()), (4096, 4096));
    assert_eq!((tx.max_frame(), rx.max_frame()), (2040, 2040));
    assert_eq!((mtx.max_frame(), mrx.max_frame()), (2040, 2040));
    for len in [0, 1, 8, 100] {
        tx.try_send(0, &vec![7; len]).unwrap();
        mtx.try_send(0, &vec![7; len]).unwrap();
        let want = record_size(len);
        assert_eq!((tx.len(), rx.len()), (want, want));
        assert_eq!((mtx.len(), mrx.len()), (want, want));
        assert!(!tx.is_empty() && !rx.is_empty() && !mtx.is_empty() && !mrx.is_empty());
        rx.try_recv().unwrap();
        mrx.try_recv().unwrap();
        assert!(tx.is_empty() && rx.is_empty() && mtx.is_empty() && mrx.is_empty());
    }
}

/// `can_send(len)` answers "would this frame be accepted now": never above the frame cap,
/// and false exactly when a `try_send` of it would say `Full`.
#[test]
fn can_send_and_is_full_agree_with_try_send() {
    let _watchdog = common::watchdog();
    let (mut tx, _rx) = spsc::channel(256).unwrap();
    let (_mrx, region) = mpsc::channel_with(&mpsc::Config::new(256).frame_cap(120)).unwrap();
    let mut mtx = region.producer().unwrap();
    assert!(!tx.can_send(tx.max_frame() + 1));
    assert!(!mtx.can_send(mtx.max_frame() + 1));
    for i in 0u32.. {
        let can = (tx.can_send(40), mtx.can_send(40));
        let sent = (tx.try_send(i, &[0; 40]), mtx.try_send(i, &[0; 40]));
        assert_eq!(can.0, sent.0.is_ok(), "spsc frame {i}");
        assert_eq!(can.1, sent.1.is_ok(), "mpsc frame {i}");
        if sent == (Err(SendError::Full), Err(SendError::Full)) {
            break;
        }
    }
    assert_eq!(tx.is_full(), !tx.can_send(0));
    assert_eq!(mtx.is_full(), !mtx.can_send(0));
}

/// `try_iter` yields what is there and ends at empty; `iter` waits and ends at the close;
/// errors are yielded once, not swallowed.
#[test]
fn iterators_end_where_documented() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    for i in 0..3 {
        tx.try_send(i, b"x").unwrap();
    }
    let tags: Vec<u32> = rx.try_iter().map(|f| f.unwrap().tag).collect();
    assert_eq!(tags, [0, 1, 2]);
    assert_eq!(rx.try_iter().count(), 0);
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            tx.send_timeout(i, b"y", T).unwrap();
        }
    });
    let tags: Vec<u32> = rx.iter().map(|f| f.unwrap().tag).collect();
    assert_eq!(tags, (0..100).collect::<Vec<_>>());
    t.join().unwrap();

    // A corrupt ring is reported once, then the iterator ends.
    let (tx, mut rx) = spsc::channel(4096).unwrap();
    testing::view(tx.shared_memory()).store_u64(
        WRITE_POS_OFF,
        3,
        std::sync::atomic::Ordering::Relaxed,
    );
    let items: Vec<_> = rx.try_iter().collect();
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(RecvError::Corrupt(_))));

    let (mut mrx, region) = mpsc::channel(4096).unwrap();
    let mut mtx = region.producer().unwrap();
    mtx.try_send(1, b"a").unwrap();
    mtx.try_send(2, b"b").unwrap();
    let tags: Vec<u32> = mrx.try_iter().map(|f| f.unwrap().tag).collect();
    assert_eq!(tags, [1, 2]);
    mtx.try_send(3, b"c").unwrap();
    assert_eq!(mrx.iter().next().unwrap().unwrap().tag, 3);
}

/// The MPSC side has what the SPSC side has: clones (by registry slot), batches, in-place
/// reads, blocking receives into a buffer.
#[test]
fn mpsc_has_what_spsc_has() {
    let _watchdog = common::watchdog();
    let (mut rx, region) = mpsc::channel_with(&mpsc::Config::new(4096).slots(2)).unwrap();
    let mut a = region.producer().unwrap();
    let mut b = a.try_clone().unwrap();
    assert_ne!(a.slot(), b.slot());
    assert!(a.try_clone().is_err()); // two slots only
    assert_eq!(a.try_send_batch([(1, &b"a"[..]), (2, &b"bb"[..])]), Ok(2));
    b.try_send(3, b"ccc").unwrap();
    {
        let guard = rx.try_read().unwrap();
        assert_eq!((guard.tag(), guard.to_vec()), (1, b"a".to_vec()));
    }
    let mut buf = [0u8; 8];
    let mut seen = Vec::new();
    assert_eq!(
        rx.try_recv_batch_into(&mut buf, 8, |tag, data| seen.push((tag, data.to_vec()))),
        Ok(2)
    );
    assert_eq!(seen, [(2, b"bb".to_vec()), (3, b"ccc".to_vec())]);
    let t = std::thread::spawn(move || a.send_timeout(9, b"later", T).unwrap());
    assert_eq!(rx.recv_into(&mut buf), Ok((9, 5)));
    t.join().unwrap();
    assert_eq!(
        rx.recv_into_timeout(&mut buf, Duration::from_millis(5)),
        Err(RecvError::Timeout)
    );
}

/// The fan-in receives like a ring: `try_recv`, `recv`, `recv_timeout`, `recv_into`, and
/// iterators that report closes and end when no ring is left.
#[test]
fn the_fan_in_receives_like_a_ring() {
    let _watchdog = common::watchdog();
    let bell: HeapRegion<Bell> = HeapRegion::new(&BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 4).unwrap();
    let mut producers = Vec::new();
    for _ in 0..2 {
        let ring: HeapRegion<Spsc> =
            HeapRegion::new(&spsc::Config::new(1024).shared_bell()).unwrap();
        fanin.add(ring.clone(), OwnerId::unique()).unwrap();
        producers.push(
            spsc::Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique()).unwrap(),
        );
    }
    assert_eq!(fanin.try_recv().map(drop), Err(FanInError::Empty));
    assert_eq!(
        fanin.recv_timeout(Duration::from_millis(2)).map(drop),
        Err(FanInError::Timeout)
    );
    producers[0].try_send(10, b"zero").unwrap();
    producers[1].try_send(11, b"one").unwrap();
    assert_eq!(fanin.len(), record_size(4) + record_size(3));
    let (r, f) = fanin.recv().unwrap();
    assert_eq!((r, f.tag), (RingId(0), 10));
    let mut buf = [0u8; 8];
    assert_eq!(fanin.recv_into(&mut buf), Ok((RingId(1), 11, 3)));
    producers[1].try_send(12, b"two").unwrap();
    drop(producers);
    let items: Vec<_> = fanin
        .iter()
        .map(|r| r.map(|(ring, f)| (ring, f.tag)))
        .collect();
    assert_eq!(
        items,
        // Round robin goes on from ring 1, the last one received from: ring 0 is next.
        [
            Err(FanInError::Closed(RingId(0))),
            Ok((RingId(1), 12)),
            Err(FanInError::Closed(RingId(1))),
        ]
    );
    assert_eq!(fanin.ring_count(), 0);
}

/// A snapshot reads every word and writes none: the region's bytes are the same before and
/// after, and a corrupt region still gives a snapshot whose check names the problem.
#[test]
fn a_snapshot_reads_and_never_writes() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let mut tx = region.producer().unwrap();
    let rx = region.consumer().unwrap();
    tx.try_send(5, &[1; 100]).unwrap();
    let bytes = |r: &Region<Spsc>| {
        let v = testing::view(r);
        let mut b = vec![0u8; v.len()];
        v.copy_out(0, &mut b);
        b
    };
    let before = bytes(&region);
    let snap = RegionSnapshot::read(&region);
    assert_eq!(
        before,
        bytes(&region),
        "taking a snapshot wrote to the region"
    );
    assert_eq!(snap.kind, Some(RingKind::Spsc));
    assert_eq!(snap.used(), Some(record_size(100) as u64));
    assert!(matches!(snap.producer, Role::Held(_)) && matches!(snap.consumer, Role::Held(_)));
    assert_eq!(snap.check(), Ok(()));
    drop(rx);
    assert_eq!(RegionSnapshot::read(&region).consumer, Role::Closed);
    testing::view(&region).store_u64(WRITE_POS_OFF, 3, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        RegionSnapshot::read(&region).check(),
        Err(SnapshotError::Positions(_))
    ));
    let garbage = testing::zeroed_heap_region(64);
    assert_eq!(
        RegionSnapshot::read(&garbage).check(),
        Err(SnapshotError::Header(HeaderError::TooSmall { size: 64 }))
    );
}

/// Every end is `Send` (move it to the thread that uses it) and none is `Sync`: an end's wait
/// state lives in `Cell`s, as rtrb's ends do. A change to either is a break the CHANGELOG must
/// carry, so it is pinned here.
mod send_not_sync {
    use ringbell::channel::{Client, Server};
    use ringbell::doorbell::Doorbell;
    use ringbell::fanin::FanIn;
    use ringbell::region::{Bell, HeapRegion, Mpsc, Spsc};
    use ringbell::{mpsc, spsc};
    use static_assertions::{assert_impl_all, assert_not_impl_any};

    type SpscHeap = HeapRegion<Spsc>;
    type MpscHeap = HeapRegion<Mpsc>;

    assert_impl_all!(spsc::Producer<SpscHeap>: Send);
    assert_impl_all!(spsc::Consumer<SpscHeap>: Send);
    assert_impl_all!(mpsc::Producer<MpscHeap>: Send);
    assert_impl_all!(mpsc::Consumer<MpscHeap>: Send);
    assert_impl_all!(FanIn<SpscHeap, HeapRegion<Bell>>: Send);
    assert_impl_all!(Doorbell<HeapRegion<Bell>>: Send);
    assert_impl_all!(Server: Send);
    assert_impl_all!(Client: Send);

    assert_not_impl_any!(spsc::Producer<SpscHeap>: Sync);
    assert_not_impl_any!(spsc::Consumer<SpscHeap>: Sync);
    assert_not_impl_any!(mpsc::Producer<MpscHeap>: Sync);
    assert_not_impl_any!(mpsc::Consumer<MpscHeap>: Sync);
    assert_not_impl_any!(FanIn<SpscHeap, HeapRegion<Bell>>: Sync);
    assert_not_impl_any!(Doorbell<HeapRegion<Bell>>: Sync);
    assert_not_impl_any!(Server: Sync);
    assert_not_impl_any!(Client: Sync);
}
