//! SPSC operations in any order, from any starting position (near `u64::MAX` included),
//! against a `VecDeque` model: every result must match.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringbell::region::HeapRegion;
use ringbell::spsc;
use ringbell::{RecvError, SendError};

#[derive(Arbitrary, Debug)]
enum Op {
    TrySend { tag: u32, len: u16 },
    ReserveCommit { tag: u32, len: u16, used: u16 },
    ReserveAbort { len: u16 },
    TryRecv,
    RecvInto { buf: u16 },
    ReadGuard,
    HasData,
    SendBatch { tag: u32, lens: Vec<u16> },
    RecvBatch { buf: u16, max: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// log2 of the capacity, clamped to 4..=12.
    cap_log2: u8,
    start: u64,
    ops: Vec<Op>,
}

fn payload(tag: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (tag as usize).wrapping_add(i) as u8)
        .collect()
}

fuzz_target!(|input: Input| {
    let cap = 1usize << (4 + input.cap_log2 % 9);
    let cfg = spsc::Config::new(cap).start_position(input.start & !7);
    let region = HeapRegion::new(&cfg).unwrap();
    let mut tx = region.producer().unwrap();
    let mut rx = region.consumer().unwrap();
    let max = tx.max_frame();
    let mut model: VecDeque<(u32, Vec<u8>)> = VecDeque::new();
    for op in input.ops.into_iter().take(2000) {
        match op {
            Op::TrySend { tag, len } => {
                let len = len as usize % (max + 2);
                let data = payload(tag, len);
                match tx.try_send(tag, &data) {
                    Ok(()) => model.push_back((tag, data)),
                    Err(SendError::TooLarge { .. }) => assert!(len > max),
                    Err(SendError::Full) => assert!(len <= max),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::ReserveCommit { tag, len, used } => {
                let len = len as usize % (max + 1);
                if let Ok(mut g) = tx.reserve(len) {
                    let data = payload(tag, len);
                    g.copy_from_slice(&data);
                    let used = used as usize % (len + 1);
                    g.commit_len(tag, used);
                    model.push_back((tag, data[..used].to_vec()));
                }
            }
            Op::ReserveAbort { len } => {
                let _ = tx.reserve(len as usize % (max + 1));
            }
            Op::TryRecv => {
                let got = rx.try_recv().ok().map(|f| (f.tag, f.data));
                assert_eq!(got, model.pop_front());
            }
            Op::RecvInto { buf } => {
                let mut buf = vec![0u8; buf as usize % (max + 1)];
                match rx.try_recv_into(&mut buf) {
                    Ok((tag, len)) => {
                        assert_eq!(Some((tag, buf[..len].to_vec())), model.pop_front())
                    }
                    Err(RecvError::Empty) => assert!(model.is_empty()),
                    Err(RecvError::BufferTooSmall { needed }) => {
                        assert_eq!(needed, model.front().unwrap().1.len())
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Op::ReadGuard => match rx.try_read() {
                Ok(g) => {
                    let (tag, data) = model.pop_front().expect("read from an empty model");
                    assert_eq!((g.tag(), g.to_vec()), (tag, data));
                }
                Err(RecvError::Empty) => assert!(model.is_empty()),
                Err(e) => panic!("{e}"),
            },
            Op::HasData => assert_eq!(rx.has_data(), !model.is_empty()),
            Op::SendBatch { tag, lens } => {
                let frames: Vec<(u32, Vec<u8>)> = lens
                    .iter()
                    .take(16)
                    .enumerate()
                    .map(|(i, &l)| {
                        let t = tag.wrapping_add(i as u32);
                        (t, payload(t, l as usize % (max + 2)))
                    })
                    .collect();
                match tx.try_send_batch(frames.iter().map(|(t, d)| (*t, d.as_slice()))) {
                    Ok(sent) => {
                        model.extend(frames[..sent].iter().cloned());
                        // The first frame not sent fails on its own, for a reason that holds.
                        if let Some((t, d)) = frames.get(sent) {
                            match tx.try_send(*t, d) {
                                Err(SendError::TooLarge { .. }) => assert!(d.len() > max),
                                Err(SendError::Full) => assert!(d.len() <= max),
                                other => panic!("batch stopped early, then {other:?}"),
                            }
                        }
                    }
                    Err(SendError::TooLarge { .. }) => assert!(frames[0].1.len() > max),
                    Err(SendError::Full) => assert!(frames[0].1.len() <= max),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::RecvBatch { buf, max: m } => {
                let mut buf = vec![0u8; buf as usize % (max + 1)];
                let mut got = Vec::new();
                match rx.try_recv_batch_into(&mut buf, m as usize % 20, |t, d| {
                    got.push((t, d.to_vec()))
                }) {
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
});
