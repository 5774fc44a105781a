//! SPSC ring behaviour on heap regions: wrap, limits, counters near `u64::MAX`, purity of
//! `has_data`, a randomized model check, roles and closing.

mod common;

use std::collections::VecDeque;

use common::Rng;
use ringbell::region::{HeapRegion, Spsc};
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::testing;
use ringbell::wire::record_size;
use ringbell::wire::{self, HEADER_SIZE};
use ringbell::{AttachError, OwnerId, RecvError, SendError};

type Tx = Producer<HeapRegion<Spsc>>;
type Rx = Consumer<HeapRegion<Spsc>>;

fn ring(cfg: spsc::Config) -> (HeapRegion<Spsc>, Tx, Rx) {
    let region = HeapRegion::new(&cfg).unwrap();
    let tx = region.producer().unwrap();
    let rx = region.consumer().unwrap();
    (region, tx, rx)
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Rng::new(seed).fill(&mut v);
    v
}

fn recv(rx: &mut Rx) -> Result<(u32, Vec<u8>), RecvError> {
    rx.try_recv().map(|f| (f.tag, f.data))
}

/// Every starting offset of a tiny ring, every frame size: frames cross the end of the data
/// area through padding and arrive intact.
#[test]
fn wrap_at_every_offset() {
    let _watchdog = common::watchdog();
    const CAP: usize = 64;
    for start in (0..CAP as u64).step_by(8) {
        for len in 0..=CAP / 2 - 8 {
            let (_r, mut tx, mut rx) = ring(spsc::Config::new(CAP).start_position(start));
            // Three rounds so the wrap happens at least once from every position.
            for i in 0..3u32 {
                let data = payload(start * 1000 + len as u64 * 10 + i as u64, len);
                tx.try_send(i, &data).unwrap();
                assert!(rx.has_data());
                assert_eq!(recv(&mut rx).unwrap(), (i, data), "start {start} len {len}");
                assert_eq!(recv(&mut rx), Err(RecvError::Empty));
            }
        }
    }
}

/// A ring that is half full when the producer must wrap: the padding and the record still
/// fit exactly when they should, and not otherwise.
#[test]
fn wrap_needs_room_for_padding_and_record() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(64));
    tx.try_send(0, &[1; 16]).unwrap(); // 24 bytes: write at 24
    tx.try_send(1, &[2; 16]).unwrap(); // write at 48
    assert_eq!(recv(&mut rx).unwrap().0, 0); // read at 24: 40 bytes free
    // A 24-byte payload needs 32 bytes but only 16 remain before the end: 16 of padding
    // plus 32 = 48 > 40 free.
    assert_eq!(tx.try_send(2, &[3; 24]), Err(SendError::Full));
    // 8 bytes of payload: 16-byte record fits at the end, no padding.
    tx.try_send(3, &[4; 8]).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), (1, vec![2; 16]));
    assert_eq!(recv(&mut rx).unwrap(), (3, vec![4; 8]));
    tx.try_send(2, &[3; 24]).unwrap(); // wraps to offset 0
    assert_eq!(recv(&mut rx).unwrap(), (2, vec![3; 24]));
}

#[test]
fn zero_and_max_length_frames() {
    let _watchdog = common::watchdog();
    for cap in [16usize, 64, 4096] {
        let (_r, mut tx, mut rx) = ring(spsc::Config::new(cap));
        let max = tx.max_frame();
        assert_eq!(max, cap / 2 - 8);
        for round in 0..5u32 {
            tx.try_send(round, &[]).unwrap();
            assert_eq!(recv(&mut rx).unwrap(), (round, vec![]));
            let data = payload(round as u64, max);
            tx.try_send(round, &data).unwrap();
            assert_eq!(recv(&mut rx).unwrap(), (round, data));
        }
    }
}

/// One byte over the cap is refused at once, whatever the ring holds, and writes nothing.
#[test]
fn max_plus_one_is_refused_at_once() {
    let _watchdog = common::watchdog();
    let (region, mut tx, mut rx) = ring(spsc::Config::new(256));
    let max = tx.max_frame();
    let over = vec![0; max + 1];
    let expect = Err(SendError::TooLarge { len: max + 1, max });
    assert_eq!(tx.try_send(0, &over), expect); // empty ring
    assert_eq!(tx.reserve(max + 1).map(|_| ()), expect);
    assert_eq!(
        tx.reserve(usize::MAX).map(|_| ()).unwrap_err(),
        SendError::TooLarge {
            len: usize::MAX,
            max
        }
    );
    while tx.try_send(1, &[9; 40]).is_ok() {}
    assert_eq!(tx.try_send(0, &over), expect); // full ring: still TooLarge, not Full
    let before = snapshot(&region);
    assert_eq!(tx.try_send(0, &over), expect);
    assert_eq!(before, snapshot(&region), "a refused frame wrote something");
    while let Ok((tag, _)) = recv(&mut rx) {
        assert_eq!(tag, 1);
    }
}

#[test]
fn configured_frame_cap_is_enforced() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, _rx) = ring(spsc::Config::new(4096).frame_cap(100));
    assert_eq!(tx.max_frame(), 100);
    tx.try_send(0, &[0; 100]).unwrap();
    assert_eq!(
        tx.try_send(0, &[0; 101]),
        Err(SendError::TooLarge { len: 101, max: 100 })
    );
    assert!(
        spsc::Config::new(4096)
            .frame_cap(4096 / 2 - 7)
            .region_size()
            .is_err()
    );
}

/// Positions are wrapping `u64` counters: starting just below `u64::MAX` the ring crosses
/// zero mid-stream without noticing.
#[test]
fn positions_near_u64_max() {
    let _watchdog = common::watchdog();
    for start in [u64::MAX - 7, u64::MAX - 63, u64::MAX - 255, u64::MAX - 4095] {
        let (region, mut tx, mut rx) = ring(spsc::Config::new(256).start_position(start & !7));
        let mut rng = Rng::new(start);
        let mut model = VecDeque::new();
        for i in 0..2000u32 {
            if rng.below(2) == 0 {
                let data = payload(i as u64, rng.below(tx.max_frame() as u64 + 1) as usize);
                match tx.try_send(i, &data) {
                    Ok(()) => model.push_back((i, data)),
                    Err(SendError::Full) => {}
                    Err(e) => panic!("{e}"),
                }
            } else {
                assert_eq!(recv(&mut rx).ok(), model.pop_front());
            }
        }
        let write = testing::view(&region)
            .load_u64(wire::WRITE_POS_OFF, std::sync::atomic::Ordering::Relaxed);
        assert!(
            write < 1 << 20,
            "positions did not wrap through zero: {write}"
        );
    }
}

fn snapshot(region: &HeapRegion<Spsc>) -> Vec<u8> {
    let mut v = vec![0; region.len()];
    testing::view(&region).copy_out(0, &mut v);
    v
}

/// `has_data` changes nothing: not one byte of shared memory, not the consumer's local state.
#[test]
fn has_data_changes_nothing() {
    let _watchdog = common::watchdog();
    let (region, mut tx, mut rx) = ring(spsc::Config::new(64));
    let check = |rx: &Rx, expect: bool| {
        let (shared, local) = (snapshot(&region), format!("{rx:?}"));
        assert_eq!(rx.has_data(), expect);
        assert_eq!(rx.has_data(), expect);
        assert_eq!(shared, snapshot(&region), "has_data wrote shared memory");
        assert_eq!(local, format!("{rx:?}"), "has_data changed local state");
    };
    check(&rx, false);
    tx.try_send(1, &[1; 16]).unwrap();
    check(&rx, true); // cached write position is stale: has_data must not refresh it
    tx.try_send(2, &[2; 16]).unwrap();
    recv(&mut rx).unwrap();
    recv(&mut rx).unwrap();
    check(&rx, false);
    // Now at offset 48: a 24-byte payload pads 16 bytes and wraps.
    tx.try_send(3, &[3; 16]).unwrap();
    check(&rx, true); // padding ahead, record behind it
    assert_eq!(recv(&mut rx).unwrap(), (3, vec![3; 16]));
    check(&rx, false);
}

/// `has_data` returning true means the next receive yields a frame.
#[test]
fn has_data_true_means_receive_succeeds() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(128));
    let mut rng = Rng::new(7);
    for i in 0..20_000u32 {
        let len = rng.below(tx.max_frame() as u64 + 1) as usize;
        let _ = tx.try_send(i, &payload(i as u64, len));
        if rng.below(3) == 0 && rx.has_data() {
            assert!(recv(&mut rx).is_ok());
        }
    }
}

/// The model of the ring's space accounting: where the next record goes and whether it fits,
/// following the wrap rule of the docs (padding to the end, then the record at offset 0).
struct SpaceModel {
    cap: u64,
    write: u64,
    read: u64,
}

impl SpaceModel {
    /// Bytes a record of `len` takes at the current write position, padding included.
    fn need(&self, len: usize) -> u64 {
        let size = record_size(len) as u64;
        let to_end = self.cap - self.write % self.cap;
        if size > to_end { to_end + size } else { size }
    }
    fn fits(&self, len: usize) -> bool {
        self.need(len) <= self.cap - self.write.wrapping_sub(self.read)
    }
}

/// Random operations against a `VecDeque` model: every result matches, including exactly
/// when the ring reports `Full`.
#[test]
fn random_operations_match_a_model() {
    let _watchdog = common::watchdog();
    for seed in 0..16u64 {
        let mut rng = Rng::new(seed);
        let cap = 16usize << rng.below(7); // 16 ..= 1024
        let start = rng.next_u64() & !7;
        let (_r, mut tx, mut rx) = ring(spsc::Config::new(cap).start_position(start));
        // Entries: tag, payload, bytes taken (padding included).
        let mut model: VecDeque<(u32, Vec<u8>, u64)> = VecDeque::new();
        let mut space = SpaceModel {
            cap: cap as u64,
            write: start,
            read: start,
        };
        for step in 0..5_000u32 {
            let ctx = format!("seed {seed} step {step}");
            match rng.below(6) {
                0 | 1 => {
                    let len = rng.below(tx.max_frame() as u64 + 2) as usize;
                    let data = payload(seed ^ step as u64, len);
                    let result = tx.try_send(step, &data);
                    if len > tx.max_frame() {
                        assert!(matches!(result, Err(SendError::TooLarge { .. })), "{ctx}");
                    } else if space.fits(len) {
                        assert_eq!(result, Ok(()), "{ctx}");
                        let need = space.need(len);
                        space.write = space.write.wrapping_add(need);
                        model.push_back((step, data, need));
                    } else {
                        assert_eq!(result, Err(SendError::Full), "{ctx}");
                    }
                }
                2 => {
                    let len = rng.below(tx.max_frame() as u64 + 1) as usize;
                    let data = payload(step as u64, len);
                    let commit = rng.below(2) == 0;
                    match tx.reserve(len) {
                        Ok(mut g) => {
                            assert!(space.fits(len), "{ctx}");
                            g.copy_from_slice(&data);
                            if commit {
                                g.commit(step);
                                let need = space.need(len);
                                space.write = space.write.wrapping_add(need);
                                model.push_back((step, data, need));
                            }
                        }
                        Err(e) => {
                            assert_eq!(e, SendError::Full, "{ctx}");
                            assert!(!space.fits(len), "{ctx}");
                        }
                    }
                }
                3 => assert_eq!(rx.has_data(), !model.is_empty(), "{ctx}"),
                4 => {
                    let mut buf = vec![0; rng.below(cap as u64) as usize];
                    match rx.try_recv_into(&mut buf) {
                        Ok((tag, len)) => {
                            let (t, d, need) = model.pop_front().expect("received from empty");
                            space.read = space.read.wrapping_add(need);
                            assert_eq!((tag, &buf[..len]), (t, &d[..]), "{ctx}");
                        }
                        Err(RecvError::BufferTooSmall { needed }) => {
                            // The frame stays, but padding in front of it was freed.
                            let front = model.front_mut().unwrap();
                            let pad = front.2 - record_size(front.1.len()) as u64;
                            space.read = space.read.wrapping_add(pad);
                            front.2 -= pad;
                            assert_eq!(needed, front.1.len(), "{ctx}");
                            assert!(buf.len() < needed, "{ctx}");
                        }
                        Err(RecvError::Empty) => assert!(model.is_empty(), "{ctx}"),
                        Err(e) => panic!("{ctx}: unexpected {e}"),
                    }
                }
                _ => {
                    let got = recv(&mut rx).ok();
                    let want = model.pop_front().map(|(t, d, need)| {
                        space.read = space.read.wrapping_add(need);
                        (t, d)
                    });
                    assert_eq!(got, want, "{ctx}");
                }
            }
        }
        while let Some((t, d, _)) = model.pop_front() {
            assert_eq!(recv(&mut rx).unwrap(), (t, d));
        }
        // An empty ring accepts a frame of the cap from any position.
        tx.try_send(0, &vec![0; tx.max_frame()]).unwrap();
    }
}

/// Partial commits clamp; aborted grants send nothing.
#[test]
fn grant_commit_len_clamps_and_drop_aborts() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(256));
    let mut g = tx.reserve(10).unwrap();
    g.write_at(0, b"hello");
    g.commit_len(1, 5);
    let mut g = tx.reserve(3).unwrap();
    g.copy_from_slice(b"abc");
    g.commit_len(2, 99);
    drop(tx.reserve(50).unwrap());
    assert_eq!(recv(&mut rx).unwrap(), (1, b"hello".to_vec()));
    assert_eq!(recv(&mut rx).unwrap(), (2, b"abc".to_vec()));
    assert_eq!(recv(&mut rx), Err(RecvError::Empty));
}

#[test]
fn trusted_slices_see_the_same_bytes() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(256));
    let mut g = tx.reserve(4).unwrap();
    // SAFETY: both ends are ours, in this thread: nobody else touches the bytes.
    unsafe { g.as_mut_slice() }.copy_from_slice(b"zero");
    g.commit(0);
    let guard = rx.try_read().unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { guard.as_slice() }, b"zero");
}

#[test]
fn second_producer_or_consumer_is_refused() {
    let _watchdog = common::watchdog();
    let (region, tx, rx) = ring(spsc::Config::new(256));
    assert!(matches!(
        region.producer(),
        Err(AttachError::RoleTaken { .. })
    ));
    assert!(matches!(
        region.consumer(),
        Err(AttachError::RoleTaken { .. })
    ));
    let id = OwnerId::new(5).unwrap();
    assert!(matches!(
        Producer::attach(region.clone(), id),
        Err(AttachError::RoleTaken { .. })
    ));
    drop(tx);
    drop(rx);
    // A closed role stays closed.
    assert_eq!(region.producer().unwrap_err(), AttachError::RoleClosed);
    assert_eq!(region.consumer().unwrap_err(), AttachError::RoleClosed);
}

#[test]
fn producer_close_is_seen_after_draining() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(256));
    tx.try_send(1, b"last words").unwrap();
    assert!(!rx.is_producer_closed());
    drop(tx);
    assert!(rx.is_producer_closed());
    assert_eq!(recv(&mut rx).unwrap(), (1, b"last words".to_vec()));
    assert_eq!(recv(&mut rx), Err(RecvError::Closed));
    assert_eq!(recv(&mut rx), Err(RecvError::Closed));
}

#[test]
fn consumer_close_refuses_sends() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, rx) = ring(spsc::Config::new(256));
    tx.try_send(1, b"x").unwrap();
    drop(rx);
    assert!(tx.is_consumer_closed());
    assert_eq!(tx.try_send(1, b"y"), Err(SendError::Closed));
}

#[test]
fn threads_stream_in_order() {
    let _watchdog = common::watchdog();
    let n: u32 = if cfg!(miri) { 500 } else { 200_000 };
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(1024));
    let producer = std::thread::spawn(move || {
        let mut rng = Rng::new(99);
        for i in 0..n {
            let len = rng.below(100) as usize;
            let data = payload(i as u64, len);
            loop {
                match tx.try_send(i, &data) {
                    Ok(()) => break,
                    Err(SendError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    let mut rng = Rng::new(99);
    let mut i = 0;
    while i < n {
        match recv(&mut rx) {
            Ok((tag, data)) => {
                let len = rng.below(100) as usize;
                assert_eq!((tag, data), (i, payload(i as u64, len)));
                i += 1;
            }
            Err(RecvError::Empty) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(recv(&mut rx), Err(RecvError::Closed));
}

#[test]
fn header_size_constant_matches() {
    let _watchdog = common::watchdog();
    assert_eq!(HEADER_SIZE, 1024);
    assert_eq!(
        spsc::Config::new(64).region_size().unwrap(),
        HEADER_SIZE + 64
    );
}

/// Batches across threads: frames of random sizes sent in batches of random length and
/// received in batches of random length arrive in order, intact, each once.
#[test]
fn threads_stream_in_order_in_batches() {
    let _watchdog = common::watchdog();
    let n: u32 = if cfg!(miri) { 500 } else { 200_000 };
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(1024));
    let producer = std::thread::spawn(move || {
        let mut rng = Rng::new(7);
        let mut i = 0;
        while i < n {
            let k = (1 + rng.below(16) as u32).min(n - i);
            let frames: Vec<(u32, Vec<u8>)> = (i..i + k)
                .map(|j| (j, payload(u64::from(j), (j as usize * 7) % 100)))
                .collect();
            match tx.try_send_batch(frames.iter().map(|(t, d)| (*t, d.as_slice()))) {
                Ok(sent) => i += sent as u32,
                Err(SendError::Full) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut rng = Rng::new(8);
    let mut next = 0;
    let mut buf = [0u8; 128];
    while next < n {
        let max = 1 + rng.below(20) as usize;
        match rx.try_recv_batch_into(&mut buf, max, |tag, data| {
            assert_eq!(tag, next);
            assert_eq!(data, payload(u64::from(next), (next as usize * 7) % 100));
            next += 1;
        }) {
            Ok(got) => assert!(got >= 1 && got <= max),
            Err(RecvError::Empty) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(
        rx.try_recv_batch_into(&mut buf, 4, |_, _| panic!()),
        Err(RecvError::Closed)
    );
}

/// Batches against the `VecDeque` model: what a batch reports sent is exactly what arrives,
/// a batch stops at the first frame that does not fit (and sends nothing only with that
/// frame's error), and receives in batches take frames in order.
#[test]
fn batches_match_the_model() {
    let _watchdog = common::watchdog();
    let mut rng = Rng::new(11);
    for _ in 0..200 {
        let (_r, mut tx, mut rx) = ring(spsc::Config::new(256));
        let max = tx.max_frame();
        let mut model: std::collections::VecDeque<(u32, Vec<u8>)> = Default::default();
        for step in 0..200u32 {
            if rng.below(2) == 0 {
                let k = rng.below(6) as u32;
                let frames: Vec<(u32, Vec<u8>)> = (0..k)
                    .map(|j| {
                        let len = rng.below(max as u64 + 2) as usize;
                        (step * 8 + j, payload(u64::from(step * 8 + j), len))
                    })
                    .collect();
                let r = tx.try_send_batch(frames.iter().map(|(t, d)| (*t, d.as_slice())));
                match r {
                    Ok(sent) => {
                        assert!(sent <= frames.len());
                        model.extend(frames[..sent].iter().cloned());
                        if sent < frames.len() {
                            // The first frame not sent fails on its own.
                            let (t, d) = &frames[sent];
                            assert!(tx.try_send(*t, d).is_err());
                        }
                    }
                    Err(SendError::TooLarge { len, .. }) => assert_eq!(len, frames[0].1.len()),
                    Err(SendError::Full) => assert!(frames[0].1.len() <= max),
                    Err(e) => panic!("{e}"),
                }
                assert!(r.is_ok() || !frames.is_empty());
            } else {
                let want = 1 + rng.below(4) as usize;
                let mut buf = vec![0u8; rng.below(max as u64 + 1) as usize];
                let mut got = Vec::new();
                match rx.try_recv_batch_into(&mut buf, want, |t, d| got.push((t, d.to_vec()))) {
                    Ok(n) => {
                        assert_eq!(n, got.len());
                        for g in got {
                            assert_eq!(Some(g), model.pop_front());
                        }
                    }
                    Err(RecvError::Empty) => assert!(model.is_empty()),
                    Err(RecvError::BufferTooSmall { needed }) => {
                        assert_eq!(needed, model.front().unwrap().1.len())
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

/// A batch callback that panics: the frames it was given count as received (no duplicate),
/// the rest stay, and the space is freed once the ring looks empty — the producer is never
/// left waiting for it.
#[test]
fn a_panicking_batch_callback_loses_nothing_and_frees_the_space() {
    let _watchdog = common::watchdog();
    let (_r, mut tx, mut rx) = ring(spsc::Config::new(256));
    let mut sent = 0u32;
    while tx.try_send(sent, &[sent as u8; 24]).is_ok() {
        sent += 1;
    }
    let mut buf = [0u8; 64];
    let mut seen = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.try_recv_batch_into(&mut buf, 8, |tag, _| {
            seen.push(tag);
            assert!(tag < 2, "the callback panics on its third frame (test)");
        })
    }));
    assert!(r.is_err());
    assert_eq!(seen, [0, 1, 2]);
    let mut rest = Vec::new();
    loop {
        match rx.try_recv_into(&mut buf) {
            Ok((tag, _)) => rest.push(tag),
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(rest, (3..sent).collect::<Vec<_>>());
    // All space is free again.
    for i in 0..sent {
        tx.try_send(i, &[0; 24]).unwrap();
    }
}

/// A frame iterator that panics mid-batch: the frames it yielded are sent (with the next
/// publish, or at the drop), once.
#[test]
fn a_panicking_batch_iterator_sends_what_it_yielded_once() {
    let _watchdog = common::watchdog();
    for drop_first in [false, true] {
        let (_r, mut tx, mut rx) = ring(spsc::Config::new(1024));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tx.try_send_batch((0..5u32).map(|i| {
                assert!(i < 2, "the iterator panics on its third item (test)");
                (i, &b"x"[..])
            }))
        }));
        assert!(r.is_err());
        if drop_first {
            drop(tx);
        } else {
            tx.try_send(9, b"y").unwrap();
        }
        let mut tags = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(f) => tags.push(f.tag),
                Err(RecvError::Empty | RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            tags,
            if drop_first {
                vec![0, 1]
            } else {
                vec![0, 1, 9]
            }
        );
    }
}
