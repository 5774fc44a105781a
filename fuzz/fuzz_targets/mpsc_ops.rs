//! MPSC operations from several logical producers — claims held across other operations,
//! commits and aborts in any order — and the consumer, against a model.
//!
//! The model is the claim order: a list of records, each claimed, committed or aborted. The
//! consumer must deliver committed records in claim order, each once; skip aborted ones; and
//! stop (`Empty`) at a record still claimed, even when later ones are committed. Per-producer
//! order, no loss and no duplicate follow from matching the list exactly.
//!
//! A grant borrows its producer, so grants are held within an *epoch*: every producer is
//! borrowed once per epoch, holds at most one grant, and is spent once it commits or aborts;
//! `Epoch` (or running out of producers) aborts what is still held and starts a new one.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringbell::OwnerId;
use ringbell::mpsc::{self, Grant, NeverDead, Producer};
use ringbell::region::HeapRegion;
use ringbell::testing;
use ringbell::{RecvError, SendError};

const PRODUCERS: usize = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Claim { p: u8, len: u16 },
    Commit { p: u8, tag: u32 },
    Abort { p: u8 },
    TrySend { p: u8, tag: u32, len: u16 },
    Recv,
    RecvInto { buf: u16 },
    HasData,
    Epoch,
}

#[derive(Arbitrary, Debug)]
struct Input {
    cap_log2: u8,
    start: u64,
    ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Claimed,
    Committed,
    Aborted,
}

#[derive(Debug)]
struct Record {
    producer: usize,
    state: State,
    tag: u32,
    data: Vec<u8>,
}

enum Slot<'a> {
    Free(&'a mut Producer<HeapRegion>),
    Held(Grant<'a, HeapRegion>, usize),
    Spent,
}

fn payload(p: usize, seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (p as u32 * 31 + seq).wrapping_add(i as u32) as u8)
        .collect()
}

/// What the consumer must return next according to the model; pops aborted records.
fn expect(model: &mut VecDeque<Record>) -> Option<&Record> {
    while model.front().is_some_and(|r| r.state == State::Aborted) {
        model.pop_front();
    }
    model.front().filter(|r| r.state == State::Committed)
}

fuzz_target!(|input: Input| {
    let cap = 1usize << (6 + input.cap_log2 % 6);
    let cfg = mpsc::Config::new(cap)
        .slots(PRODUCERS)
        .start_position(input.start & !7);
    let region = testing::zeroed_heap_region(cfg.region_size().unwrap());
    mpsc::init(&region, &cfg).unwrap();
    let mut rx =
        mpsc::Consumer::attach(region.clone(), OwnerId::new(100).unwrap(), NeverDead).unwrap();
    let mut producers: Vec<Producer<HeapRegion>> = (0..PRODUCERS)
        .map(|k| Producer::attach(region.clone(), OwnerId::new(1 + k as u64).unwrap()).unwrap())
        .collect();
    let max = producers[0].max_frame();
    // Records in claim order, from the consumer's position on.
    let mut model: VecDeque<Record> = VecDeque::new();
    let mut seq = 0u32;
    let mut ops = input.ops.into_iter().take(3000).peekable();
    while ops.peek().is_some() {
        // One epoch.
        let mut slots: Vec<Slot<'_>> = producers.iter_mut().map(Slot::Free).collect();
        // A held grant remembers its record as `popped + index` at claim time, where
        // `popped` counts records taken off the model's front during this epoch.
        let mut popped = 0usize;
        let base = |popped: usize, abs: usize| abs - popped;
        for op in ops.by_ref() {
            match op {
                Op::Epoch => break,
                Op::Claim { p, len } => {
                    let k = p as usize % PRODUCERS;
                    let len = len as usize % (max + 2);
                    if !matches!(slots[k], Slot::Free(_)) {
                        continue;
                    }
                    if let Slot::Free(prod) = std::mem::replace(&mut slots[k], Slot::Spent) {
                        match prod.reserve(len) {
                            Ok(g) => {
                                assert!(len <= max);
                                model.push_back(Record {
                                    producer: k,
                                    state: State::Claimed,
                                    tag: 0,
                                    data: Vec::new(),
                                });
                                let abs = popped + model.len() - 1;
                                slots[k] = Slot::Held(g, abs);
                            }
                            Err(SendError::TooLarge { .. }) => assert!(len > max),
                            // Full (room or a wrap not possible now): the producer is spent.
                            Err(SendError::Full) => assert!(len <= max),
                            Err(e) => panic!("reserve: {e}"),
                        }
                    }
                }
                Op::Commit { p, tag } => {
                    let k = p as usize % PRODUCERS;
                    if !matches!(slots[k], Slot::Held(..)) {
                        continue;
                    }
                    if let Slot::Held(mut g, abs) = std::mem::replace(&mut slots[k], Slot::Spent) {
                        seq += 1;
                        let data = payload(k, seq, g.len());
                        g.copy_from_slice(&data);
                        g.commit(tag).unwrap();
                        let r = &mut model[base(popped, abs)];
                        assert_eq!((r.producer, &r.state), (k, &State::Claimed));
                        *r = Record {
                            producer: k,
                            state: State::Committed,
                            tag,
                            data,
                        };
                    }
                }
                Op::Abort { p } => {
                    let k = p as usize % PRODUCERS;
                    if !matches!(slots[k], Slot::Held(..)) {
                        continue;
                    }
                    if let Slot::Held(g, abs) = std::mem::replace(&mut slots[k], Slot::Spent) {
                        drop(g);
                        model[base(popped, abs)].state = State::Aborted;
                    }
                }
                Op::TrySend { p, tag, len } => {
                    let k = p as usize % PRODUCERS;
                    if let Slot::Free(prod) = &mut slots[k] {
                        let len = len as usize % (max + 2);
                        seq += 1;
                        let data = payload(k, seq, len);
                        match prod.try_send(tag, &data) {
                            Ok(()) => model.push_back(Record {
                                producer: k,
                                state: State::Committed,
                                tag,
                                data,
                            }),
                            Err(SendError::TooLarge { .. }) => assert!(len > max),
                            Err(SendError::Full) => assert!(len <= max),
                            Err(e) => panic!("try_send: {e}"),
                        }
                    }
                }
                Op::Recv | Op::RecvInto { .. } => {
                    let size = match op {
                        Op::RecvInto { buf } => buf as usize % (max + 1),
                        _ => max,
                    };
                    let mut buf = vec![0u8; size];
                    let before = model.len();
                    let want = expect(&mut model).map(|r| (r.tag, r.data.clone()));
                    popped += before - model.len();
                    match (rx.try_recv_into(&mut buf), want) {
                        (Ok((tag, len)), Some((t, d))) => {
                            assert_eq!((tag, &buf[..len]), (t, &d[..]));
                            model.pop_front();
                            popped += 1;
                        }
                        (Err(RecvError::Empty), None) => {}
                        (Err(RecvError::BufferTooSmall { needed }), Some((_, d))) => {
                            assert_eq!(needed, d.len());
                            assert!(size < d.len());
                        }
                        (got, want) => panic!("consumer gave {got:?}, model wants {want:?}"),
                    }
                }
                Op::HasData => {
                    let before = model.len();
                    let ready = expect(&mut model).is_some();
                    popped += before - model.len();
                    // A record still claimed at the head: no data yet.
                    assert_eq!(rx.has_data(), ready, "{model:?}");
                }
            }
            if !slots.iter().any(|s| !matches!(s, Slot::Spent)) {
                break;
            }
        }
        // End of the epoch: grants still held abort.
        for s in slots.drain(..) {
            if let Slot::Held(g, abs) = s {
                drop(g);
                model[abs - popped].state = State::Aborted;
            }
        }
    }
    // Drain: everything committed comes out, in claim order, then nothing.
    let mut buf = vec![0u8; max];
    while let Some((t, d)) = expect(&mut model).map(|r| (r.tag, r.data.clone())) {
        let (tag, len) = rx.try_recv_into(&mut buf).unwrap();
        assert_eq!((tag, &buf[..len]), (t, &d[..]));
        model.pop_front();
    }
    assert!(model.is_empty());
    assert_eq!(rx.try_recv_into(&mut buf), Err(RecvError::Empty));
    assert_eq!(rx.skipped(), 0);
});
