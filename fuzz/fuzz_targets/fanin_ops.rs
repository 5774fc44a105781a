//! Fan-in operations — sends on any ring, closes, pauses, receives — against a model of the
//! fan-in's documented rules: frames of one ring in order, each once; rings served in turn
//! from a cursor; a ring whose producer closed is drained, then reported `Closed` once at its
//! turn and detached; a paused ring is skipped and keeps its frames.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringbell::OwnerId;
use ringbell::SendError;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::region::{Bell, HeapRegion, Spsc};
use ringbell::spsc::{self, Producer};

const RINGS: usize = 4;

#[derive(Arbitrary, Debug)]
enum Op {
    Send { ring: u8, tag: u32, len: u8 },
    Close { ring: u8 },
    Pause { ring: u8, paused: bool },
    Recv { buf: u8 },
    HasData,
}

#[derive(Arbitrary, Debug)]
struct Input {
    cap_log2: u8,
    ops: Vec<Op>,
}

#[derive(Default)]
struct RingModel {
    frames: VecDeque<(u32, Vec<u8>)>,
    closed: bool,
    paused: bool,
    detached: bool,
}

fuzz_target!(|input: Input| {
    let cap = 1usize << (5 + input.cap_log2 % 5);
    let bell = HeapRegion::new(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), RINGS).unwrap();
    let mut producers: Vec<Option<Producer<HeapRegion<Spsc>, HeapRegion<Bell>>>> = Vec::new();
    for k in 0..RINGS {
        let ring = HeapRegion::new(&spsc::Config::new(cap).shared_bell()).unwrap();
        assert_eq!(
            fanin.add(ring.clone(), OwnerId::new(100).unwrap()).unwrap(),
            RingId(k)
        );
        producers.push(Some(
            Producer::attach_shared_bell(ring, bell.clone(), OwnerId::new(1 + k as u64).unwrap())
                .unwrap(),
        ));
    }
    let max = producers[0].as_ref().unwrap().max_frame();
    let mut model: Vec<RingModel> = (0..RINGS).map(|_| RingModel::default()).collect();
    let mut cursor = 0usize;
    let mut seq = 0u8;
    for op in input.ops.into_iter().take(3000) {
        match op {
            Op::Send { ring, tag, len } => {
                let k = ring as usize % RINGS;
                if let Some(p) = producers[k].as_mut() {
                    let len = len as usize % (max + 2);
                    seq = seq.wrapping_add(1);
                    let data = vec![seq; len];
                    match p.try_send(tag, &data) {
                        Ok(()) => model[k].frames.push_back((tag, data)),
                        Err(SendError::TooLarge { .. }) => assert!(len > max),
                        Err(SendError::Full) => assert!(len <= max),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            Op::Close { ring } => {
                let k = ring as usize % RINGS;
                if producers[k].take().is_some() {
                    model[k].closed = true;
                }
            }
            Op::Pause { ring, paused } => {
                let k = ring as usize % RINGS;
                let attached = !model[k].detached;
                assert_eq!(fanin.set_paused(RingId(k), paused), attached);
                if attached {
                    model[k].paused = paused;
                    assert_eq!(fanin.is_paused(RingId(k)), paused);
                }
            }
            Op::Recv { buf } => {
                // The model's turn: the first ring from the cursor with a frame, or closed
                // and drained.
                let want = (0..RINGS).map(|i| (cursor + i) % RINGS).find(|&i| {
                    let m = &model[i];
                    !m.detached && !m.paused && (!m.frames.is_empty() || m.closed)
                });
                let mut buf = vec![0u8; buf as usize % (max + 1)];
                match (fanin.try_recv_into(&mut buf), want) {
                    (Ok((RingId(i), tag, len)), Some(w)) => {
                        assert_eq!(i, w);
                        let (t, d) = model[i].frames.pop_front().expect("a frame");
                        assert_eq!((tag, &buf[..len]), (t, &d[..]));
                        cursor = i + 1;
                    }
                    (Err(FanInError::Closed(RingId(i))), Some(w)) => {
                        assert_eq!(i, w);
                        assert!(model[i].closed && model[i].frames.is_empty());
                        model[i].detached = true;
                        cursor = i + 1;
                    }
                    (Err(FanInError::BufferTooSmall { ring, needed }), Some(w)) => {
                        assert_eq!(ring, RingId(w));
                        let (_, d) = model[w].frames.front().expect("a frame");
                        assert_eq!(needed, d.len());
                        assert!(buf.len() < needed);
                        cursor = w;
                    }
                    (Err(FanInError::Empty), None) => {}
                    (got, want) => panic!("fan-in gave {got:?}, model wants ring {want:?}"),
                }
            }
            Op::HasData => {
                let any = model
                    .iter()
                    .any(|m| !m.detached && !m.paused && !m.frames.is_empty());
                assert_eq!(fanin.has_data(), any);
                let ready = model
                    .iter()
                    .any(|m| !m.detached && !m.paused && (!m.frames.is_empty() || m.closed));
                assert_eq!(fanin.ready(), ready);
            }
        }
    }
    let attached = model.iter().filter(|m| !m.detached).count();
    assert_eq!(fanin.ring_count(), attached);
});
