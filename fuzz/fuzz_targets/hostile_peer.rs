//! A valid ring, and the fuzzer plays the peer: between the local side's operations it writes
//! words of its choice into the shared header, the doorbells and the records (check-then-use
//! bugs show here). Every local call must return a value or a typed error, in bounded time,
//! without a panic or an access outside the mapping.
//!
//! Three scenes:
//! * SPSC, local consumer: the fuzzer is the producer.
//! * SPSC, local producer: the fuzzer is the consumer.
//! * A channel: a real `Server` driven by a `Reactor` (`poll`), an honest client and a hostile
//!   one that scribbles on its own request ring, its response ring and the server's shared
//!   doorbell, and sends what it likes. The server must not crash, and the honest client must
//!   get every answer right and in order.
#![no_main]

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringbell::OwnerId;
use ringbell::channel::{CallError, Client, Server, ServerConfig, Status};
use ringbell::reactor::{Reactor, Request, Responder};
use ringbell::region::HeapRegion;
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::testing::{self, View};
use ringbell::wire::{DATA_BELL_OFF, HEADER_SIZE, READ_POS_OFF, SPACE_BELL_OFF, WRITE_POS_OFF};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Target {
    WritePos,
    ReadPos,
    DataBell,
    SpaceBell,
    /// Anywhere in the header.
    Header(u8),
    /// Anywhere in the data area.
    Data(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The hostile peer writes a word.
    Poke {
        region: u8,
        at: Target,
        value: u64,
        wide: bool,
    },
    /// The hostile peer writes a plausible position: the current one moved by `delta`.
    Nudge {
        at: Target,
        delta: i16,
    },
    /// Local operations.
    Send {
        len: u16,
    },
    Recv {
        buf: u16,
    },
    HasData,
    Timed {
        ms: u8,
    },
    /// Channel only: the honest client sends a request.
    Honest,
    /// Channel only: the hostile client sends a request through the API.
    HostileCall {
        len: u16,
    },
    /// Channel only: one turn of the reactor.
    Serve,
}

#[derive(Arbitrary, Debug)]
struct Input {
    scene: u8,
    cap_log2: u8,
    ops: Vec<Op>,
}

fn offset(at: Target, len: usize, wide: bool) -> usize {
    let o = match at {
        Target::WritePos => WRITE_POS_OFF,
        Target::ReadPos => READ_POS_OFF,
        Target::DataBell => DATA_BELL_OFF,
        Target::SpaceBell => SPACE_BELL_OFF,
        Target::Header(i) => i as usize * 8 % HEADER_SIZE,
        Target::Data(i) => HEADER_SIZE + i as usize * 4,
    };
    let align = if wide { 8 } else { 4 };
    (o % (len & !7).max(8)) & !(align - 1)
}

fn poke(view: &View<'_>, at: Target, value: u64, wide: bool) {
    let o = offset(at, view.len(), wide);
    if wide && o + 8 <= view.len() {
        view.store_u64(o, value, Relaxed);
    } else if o + 4 <= view.len() {
        view.store_u32(o, value as u32, Relaxed);
    }
}

fn nudge(view: &View<'_>, at: Target, delta: i16) {
    let o = offset(at, view.len(), true);
    if o + 8 <= view.len() {
        let v = view.load_u64(o, Relaxed);
        view.store_u64(o, v.wrapping_add(delta as i64 as u64), Relaxed);
    }
}

fn echo(req: Request, res: Responder) {
    let _ = res.respond(&req.body);
}

/// Takes the honest client's next answer, if one is there, and checks it against the first
/// request still unanswered. Returns how many it took (0 or 1).
fn take_answer(
    honest: &mut Client,
    unanswered: &[(ringbell::channel::RequestId, [u8; 4])],
) -> usize {
    match honest.try_recv_response() {
        Ok(r) => {
            let (id, body) = unanswered[0];
            assert_eq!((r.id, r.status), (id, Status::Ok));
            assert_eq!(r.body, body);
            1
        }
        Err(CallError::Empty) => 0,
        Err(e) => panic!("the honest client got {e}"),
    }
}

fn channel(cap: usize, ops: Vec<Op>) {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "ringbell-fuzz-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ));
    let cfg = ServerConfig::default()
        .request_ring(cap.max(256))
        .response_ring(cap.max(256))
        .stash_bytes(4096)
        .max_in_flight(8);
    let server = Server::bind(&path, cfg).unwrap();
    let mut reactor = Reactor::new(server, echo as fn(Request, Responder));
    // Connect both clients: each connect waits for the greeting, which `poll` sends.
    let connect = |reactor: &mut Reactor<Server, fn(Request, Responder)>| {
        let p = path.clone();
        let t = std::thread::spawn(move || Client::connect(p));
        loop {
            reactor.poll();
            if t.is_finished() {
                return t.join().unwrap().unwrap();
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    };

    let mut honest = connect(&mut reactor);
    let mut hostile = connect(&mut reactor);
    let mut sent = Vec::new();
    let mut got = 0usize;
    for op in ops.into_iter().take(300) {
        match op {
            Op::Poke {
                region,
                at,
                value,
                wide,
            } => {
                poke(&client_view(&hostile, region as usize % 3), at, value, wide);
            }
            Op::Nudge { at, delta } => {
                nudge(&client_view(&hostile, delta as usize % 2), at, delta);
            }
            Op::HostileCall { len } => {
                let _ = hostile.try_send_request(&vec![0xAB; len as usize % 300]);
                let _ = hostile.try_recv_response();
            }
            Op::Honest => {
                let body = (sent.len() as u32).to_le_bytes();
                if let Ok(id) = honest.try_send_request(&body) {
                    sent.push((id, body));
                }
            }
            Op::Recv { .. } => got += take_answer(&mut honest, &sent[got..]),
            _ => {
                reactor.poll();
            }
        }
    }
    // Whatever the hostile client did, the honest one gets every answer, in order.
    let mut turns = 0;
    while got < sent.len() {
        reactor.poll();
        got += take_answer(&mut honest, &sent[got..]);
        turns += 1;
        assert!(turns < 100_000, "the honest client starved");
    }
    drop(hostile);
    drop(honest);
    drop(reactor);
    let _ = std::fs::remove_file(&path);
}

/// A view of one of a client's regions: 0 its request ring, 1 its response ring, 2 the
/// server's bell region.
fn client_view(client: &Client, which: usize) -> View<'_> {
    let (requests, responses, bell) = testing::client_regions(client);
    match which {
        0 => testing::view(requests),
        1 => testing::view(responses),
        _ => testing::view(bell),
    }
}

fuzz_target!(|input: Input| {
    let cap = 1usize << (5 + input.cap_log2 % 6);
    if input.scene % 3 == 2 {
        return channel(cap, input.ops);
    }
    let region = HeapRegion::new(&spsc::Config::new(cap)).unwrap();
    let view = testing::view(&region);
    let local_consumer = input.scene % 3 == 0;
    // The peer's handle puts a valid frame in, then stays idle (and alive, so that its role
    // is not closed) while the fuzzer writes its words.
    let mut rx = None;
    let mut tx = None;
    let (_peer_tx, _peer_rx);
    if local_consumer {
        rx = Some(Consumer::attach(region.clone(), OwnerId::new(1).unwrap()).unwrap());
        let mut p = Producer::attach(region.clone(), OwnerId::new(2).unwrap()).unwrap();
        let _ = p.try_send(7, &[1; 12]);
        (_peer_tx, _peer_rx) = (Some(p), None);
    } else {
        tx = Some(Producer::attach(region.clone(), OwnerId::new(2).unwrap()).unwrap());
        let c = Consumer::attach(region.clone(), OwnerId::new(1).unwrap()).unwrap();
        (_peer_tx, _peer_rx) = (None, Some(c));
    }
    let mut buf = vec![0u8; cap];
    for op in input.ops.into_iter().take(500) {
        match op {
            Op::Poke {
                at, value, wide, ..
            } => poke(&view, at, value, wide),
            Op::Nudge { at, delta } => nudge(&view, at, delta),
            Op::Send { len } => {
                if let Some(tx) = tx.as_mut() {
                    let n = len as usize % (tx.max_frame() + 2);
                    let _ = tx.try_send(0, &buf[..n.min(buf.len())]);
                    if let Ok(mut g) = tx.reserve(n.min(tx.max_frame())) {
                        g.write_at(0, &[]);
                        g.commit(1);
                    }
                }
            }
            Op::Recv { buf: b } => {
                if let Some(rx) = rx.as_mut() {
                    let n = b as usize % (buf.len() + 1);
                    let _ = rx.try_recv_into(&mut buf[..n]);
                    if let Ok(g) = rx.try_read() {
                        let mut one = [0u8; 1];
                        if !g.is_empty() {
                            g.read_at(0, &mut one);
                        }
                    }
                }
            }
            Op::HasData => {
                if let Some(rx) = rx.as_ref() {
                    let _ = rx.has_data();
                }
                if let Some(tx) = tx.as_ref() {
                    let _ = tx.can_send(8);
                }
            }
            Op::Timed { ms } => {
                // Blocking calls with a short deadline must return by it, whatever the words.
                let t = Duration::from_micros(u64::from(ms % 4) * 250);
                if let Some(rx) = rx.as_mut() {
                    let _ = rx.recv_into_timeout(&mut buf, t);
                }
                if let Some(tx) = tx.as_mut() {
                    let _ = tx.send_timeout(0, &[2; 8], t);
                }
            }
            Op::Honest | Op::HostileCall { .. } | Op::Serve => {}
        }
    }
});
