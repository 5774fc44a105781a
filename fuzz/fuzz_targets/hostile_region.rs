//! The fuzzer's bytes are the whole shared region (a header and a ring, or garbage), and then
//! a few words it chooses are rewritten between operations. Attaching and every producer and
//! consumer operation must return a value or a typed error: no panic, no access outside the
//! mapping (the sanitizer watches), and every call finishes.
#![no_main]

use std::sync::atomic::Ordering::Relaxed;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringbell::OwnerId;
use ringbell::mpsc::{self, NeverDead};
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::testing::{self, View};
use ringbell::wire::HEADER_SIZE;

#[derive(Arbitrary, Debug)]
enum Poke {
    /// Overwrite the u64 at this (8-aligned) offset.
    Word {
        at: u16,
        value: u64,
    },
    /// Overwrite the u32 at this (4-aligned) offset.
    Half {
        at: u16,
        value: u32,
    },
    Send {
        len: u16,
    },
    Recv,
    HasData,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0: start from a valid SPSC ring, 1: a valid MPSC ring, 2: raw fuzzer bytes.
    base: u8,
    cap_log2: u8,
    bytes: Vec<u8>,
    pokes: Vec<Poke>,
}

/// The hostile peer's write: a word anywhere in the region (aligned, wrapped into range).
fn scribble(view: &View<'_>, poke: &Poke) {
    let len = view.len();
    match *poke {
        Poke::Word { at, value } => {
            view.store_u64((at as usize * 8) % (len & !7).max(8), value, Relaxed)
        }
        Poke::Half { at, value } => {
            view.store_u32((at as usize * 4) % (len & !3).max(4), value, Relaxed)
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let cap = 1usize << (4 + input.cap_log2 % 7);
    let region = match input.base % 3 {
        0 => {
            let cfg = spsc::Config::new(cap);
            let r = testing::zeroed_heap_region(cfg.region_size().unwrap());
            spsc::init(&r, &cfg).unwrap();
            r
        }
        1 => {
            let cfg = mpsc::Config::new(cap.max(64)).slots(2);
            let r = testing::zeroed_heap_region(cfg.region_size().unwrap());
            mpsc::init(&r, &cfg).unwrap();
            r
        }
        _ => testing::zeroed_heap_region(HEADER_SIZE + cap),
    };
    let view = testing::view(&region);
    // The fuzzer's bytes overwrite the region from the start (all of it for raw input).
    let n = input.bytes.len().min(view.len());
    let skip_header = if input.base % 3 == 2 {
        0
    } else {
        HEADER_SIZE.min(n)
    };
    view.copy_in(skip_header, &input.bytes[skip_header..n]);
    let pokes = input.pokes.into_iter().take(200);
    if input.base % 3 == 1 {
        let Ok(mut rx) =
            mpsc::Consumer::attach(region.clone(), OwnerId::new(1).unwrap(), NeverDead)
        else {
            return;
        };
        let mut tx = mpsc::Producer::attach(region.clone(), OwnerId::new(2).unwrap()).ok();
        let mut buf = vec![0u8; 1 << 12];
        for p in pokes {
            match p {
                Poke::Word { .. } | Poke::Half { .. } => scribble(&view, &p),
                Poke::Send { len } => {
                    if let Some(tx) = tx.as_mut() {
                        let _ = tx.try_send(0, &buf[..len as usize % 64]);
                    }
                }
                Poke::Recv => {
                    let _ = rx.try_recv_into(&mut buf);
                }
                Poke::HasData => {
                    let _ = rx.has_data();
                }
            }
        }
        return;
    }
    let tx = Producer::attach(region.clone(), OwnerId::new(3).unwrap()).ok();
    let rx = Consumer::attach(region.clone(), OwnerId::new(4).unwrap()).ok();
    let (Some(mut tx), Some(mut rx)) = (tx, rx) else {
        return;
    };
    let mut buf = vec![0u8; 1 << 12];
    for p in pokes {
        match p {
            Poke::Word { .. } | Poke::Half { .. } => scribble(&view, &p),
            Poke::Send { len } => {
                let _ = tx.try_send(
                    0,
                    &buf[..len as usize % (tx.max_frame() + 1).min(buf.len())],
                );
            }
            Poke::Recv => {
                let _ = rx.try_recv_into(&mut buf);
            }
            Poke::HasData => {
                let _ = rx.has_data();
            }
        }
    }
});
