//! Reactor model: the inline-vs-dispatch decision, completions from worker threads posted
//! through the notify path, and per-connection order.
//!
//! A client pipelines two requests on its request ring and then blocks for both responses;
//! the reactor (the real `Reactor` over a transport made of the crate's fan-in and SPSC
//! rings on loom memory) takes them, runs the first inline or dispatches it depending on
//! whether the second is already pending, dispatches the other to an executor that spawns a
//! thread per job, and sleeps on the one doorbell. Workers may finish in either order. The
//! client checks it gets both responses in request order, then stops the reactor.
//!
//! Mutants: `reply_rings_first` (a responder rings before posting: the reactor re-checks in
//! between and sleeps through the answer — deadlock) and `send_out_of_order` (the stash is
//! sent without waiting for the due sequence number — the client sees id 1 first).
//!
//! The hand-over model: the first request runs inline and will not return until the second
//! has been handled, which only the watcher thread can arrange (it must take the serve loop
//! over and dispatch it). The client checks both answers come in request order. Mutant
//! `back_rings_first` (the reactor thread rings before saying it wants the core back: the
//! watcher, leading, re-checks in between and sleeps holding the core — deadlock).
//!
//! The ordering model: per-key ordering over a transport of plain queues, two connections,
//! two keys, two workers (see `two_keys_from_two_connections`).
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::support::{builder_bounded, no_spin};
use ringbell::channel::Transport;
use ringbell::channel::{
    ClientInfo, ConnId, Incoming, RecvRequestError, RequestId, SendResponseError, Status,
};
use ringbell::doorbell::init_bell;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::reactor::{Access, Executor, Job, Reactor, Request, Responder, ordered};
use ringbell::region::LoomRegion;
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::wire::BELL_REGION_SIZE;
use ringbell::{OwnerId, RecvError, SendError};

const CONN: ConnId = ConnId {
    slot: 0,
    generation: 1,
};

/// One connection: its request ring in a fan-in, its response ring, one doorbell.
struct LoomServer {
    fanin: FanIn<LoomRegion>,
    responses: Producer<LoomRegion>,
}

impl Transport for LoomServer {
    fn max_request(&self) -> usize {
        8
    }
    fn max_response(&self) -> usize {
        8
    }
    fn limits(&self) -> (usize, usize) {
        (4, 1 << 20)
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        match self.fanin.try_recv_into(buf) {
            Ok((RingId(0), tag, len)) => Ok(Incoming {
                control: false,
                conn: CONN,
                id: RequestId(tag),
                len,
            }),
            Err(FanInError::Empty) => Err(RecvRequestError::Empty),
            // The client closes its ring once it has both answers.
            Err(FanInError::Closed(RingId(0))) => Err(RecvRequestError::Detached(CONN, None)),
            other => panic!("unexpected {other:?}"),
        }
    }
    fn has_request(&self) -> bool {
        self.fanin.ready()
    }
    fn try_send_response(
        &mut self,
        _conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        assert_eq!(status, Status::Ok);
        match self.responses.try_send(id.0, body) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => Err(SendResponseError::Full),
            Err(e) => panic!("{e}"),
        }
    }
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        let responses = &self.responses;
        self.fanin.wait_until(|f| {
            f.ready() || ready() || blocked.iter().any(|&(_, n)| responses.can_send(n))
        });
        true
    }
    fn pause(&mut self, _conn: ConnId, paused: bool) {
        self.fanin.set_paused(RingId(0), paused);
    }
    fn housekeeping(&mut self, _accept: bool) -> Vec<ConnId> {
        Vec::new()
    }
    fn shutdown(&mut self) {}
    fn housekeeping_interval(&self) -> Option<std::time::Duration> {
        None
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        Some(ClientInfo {
            conn,
            pid: 1,
            uid: 0,
            gid: 0,
        })
    }
    fn waker(&self) -> Box<dyn Fn() + Send + Sync> {
        let n = self.fanin.notifier();
        Box::new(move || n.notify())
    }
    fn watch_bell(&self) -> Option<ringbell::doorbell::WatchBell> {
        Some(self.fanin.watch_bell())
    }
}

/// Runs each job on a new thread.
#[derive(Default)]
struct Spawner(Mutex<Vec<thread::JoinHandle<()>>>);

impl Executor for Spawner {
    fn execute(&self, job: Job) {
        self.0.lock().unwrap().push(thread::spawn(job));
    }
    fn runs_concurrently(&self) -> bool {
        true
    }
}

fn region(cfg: &spsc::Config) -> LoomRegion {
    let r = LoomRegion::zeroed(cfg.region_size().unwrap());
    spsc::init(&r, cfg).unwrap();
    r
}

#[test]
fn dispatched_completions_wake_the_reactor_and_go_out_in_order() {
    // Four threads over three regions and a queue: preemption bound 1 (7 s here; bound 2 ran
    // past 6 minutes). Both mutants are caught at bound 1.
    builder_bounded(1).check(|| {
        let World {
            server,
            mut requests,
            mut answers,
        } = world();
        let spawner = Arc::new(Spawner::default());
        let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
            res.respond(&req.body).unwrap();
        })
        .with_executor(spawner.clone())
        // The hand-over has a model of its own (below).
        .inline_budget(None);
        let stop = reactor.stop_handle();

        let client = thread::spawn(move || {
            requests.send(0, &[10]).unwrap();
            requests.send(1, &[11]).unwrap();
            let mut buf = [0u8; 8];
            for want in 0..2u32 {
                let (tag, len) = answers.recv_into(&mut buf).unwrap();
                assert_eq!(tag & 0x1fff_ffff, want, "responses out of request order");
                assert_eq!(tag >> 29, 0, "status Ok");
                assert_eq!(&buf[..len], &[10 + want as u8]);
            }
            stop.stop();
            // Nothing more: the reactor must not have sent a third frame.
            assert_eq!(answers.try_recv_into(&mut buf), Err(RecvError::Empty));
        });
        let stats = reactor.run().unwrap();
        client.join().unwrap();
        for t in spawner.0.lock().unwrap().drain(..) {
            t.join().unwrap();
        }
        assert_eq!(stats.requests, 2);
        assert_eq!(stats.sent, 2);
        assert_eq!(stats.inline + stats.dispatched, 2);
    });
}

/// The model's world: a fan-in of one request ring, its response ring, the client's ends.
struct World {
    server: LoomServer,
    requests: Producer<LoomRegion>,
    answers: Consumer<LoomRegion>,
}

fn world() -> World {
    let bell = LoomRegion::zeroed(BELL_REGION_SIZE);
    init_bell(&bell).unwrap();
    let server_id = OwnerId::new(1).unwrap();
    let client_id = OwnerId::new(2).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 1).unwrap();
    fanin.set_wait_options(no_spin());
    let req_ring = region(&spsc::Config::new(64).shared_bell());
    let resp_ring = region(&spsc::Config::new(64).shared_space_bell());
    assert_eq!(fanin.add(req_ring.clone(), server_id).unwrap(), RingId(0));
    let responses =
        Producer::attach_shared_space_bell(resp_ring.clone(), bell.clone(), server_id).unwrap();
    let mut requests = Producer::attach_shared_bell(req_ring, bell.clone(), client_id).unwrap();
    let mut answers = Consumer::attach_shared_space_bell(resp_ring, bell, client_id).unwrap();
    requests.set_wait_options(no_spin());
    answers.set_wait_options(no_spin());
    World {
        server: LoomServer { fanin, responses },
        requests,
        answers,
    }
}

/// A one-shot event: `set` once, `wait` until set (blocking, not spinning: loom explores a
/// blocked thread for free, a spinning one branch by branch).
#[derive(Default)]
struct Event(Mutex<bool>, loom::sync::Condvar);

impl Event {
    fn set(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
    fn wait(&self) {
        let mut set = self.0.lock().unwrap();
        while !*set {
            set = self.1.wait(set).unwrap();
        }
    }
}

#[test]
fn an_overrunning_inline_handler_hands_the_serve_loop_over_in_order() {
    // Four threads (reactor, watcher, client, one worker) over three regions, a queue and
    // two locks: one execution takes more than loom's default thousand branches.
    // Request 0 runs inline and returns only once request 1 has been handled; the client
    // sends request 1 only once request 0 has started (so 0 was alone: inline).
    inline_run_model(When::HandlerStarted);
}

/// The same, with the second request sent as soon as the first has been taken from the ring
/// — while the reactor thread marks the run and arms the doorbell, while it re-checks, or
/// once the handler runs. Whatever the moment, the first request's handler (which returns
/// only once the second has been handled) must not wait for ever: either the re-check sees
/// the second and the first is dispatched after all, or the second's ring reaches the
/// watcher (mutant `odd_after_arm`: a ring between the arming and the counter's odd value
/// is missed — deadlock).
#[test]
fn a_request_at_any_moment_of_an_inline_run_is_not_missed() {
    inline_run_model(When::TakenFromRing);
}

/// When the client of [`inline_run_model`] sends its second request.
#[derive(Clone, Copy, PartialEq)]
enum When {
    /// Once the first request's handler has started: it ran inline, and it hands over.
    HandlerStarted,
    /// As soon as the first request has left the ring: at any point of the inline run.
    TakenFromRing,
}

/// Request 0's handler returns only once request 1 has been handled, which only the
/// watcher taking over the serve loop (or a dispatch instead of the inline run) allows; the
/// client checks the responses' order.
fn inline_run_model(second: When) {
    let mut b = builder_bounded(1);
    b.max_branches = b.max_branches.max(5_000);
    b.check(move || {
        let World {
            server,
            mut requests,
            mut answers,
        } = world();
        let started = (second == When::HandlerStarted).then(|| Arc::new(Event::default()));
        let second_done = Arc::new(Event::default());
        let (s, d) = (started.clone(), second_done.clone());
        let spawner = Arc::new(Spawner::default());
        let mut reactor = Reactor::new(server, move |req: Request, res: Responder| {
            if req.body == [10] {
                if let Some(s) = &s {
                    s.set();
                }
                d.wait();
            } else {
                d.set();
            }
            res.respond(&req.body).unwrap();
        })
        .with_executor(spawner.clone())
        .inline_budget(Some(std::time::Duration::ZERO));
        let stop = reactor.stop_handle();

        let client = thread::spawn(move || {
            requests.send(0, &[10]).unwrap();
            match started {
                Some(started) => started.wait(),
                // Taken (alone, so to run inline): now, at any point of the arming.
                None => {
                    while !requests.is_empty() {
                        thread::yield_now();
                    }
                }
            }
            requests.send(1, &[11]).unwrap();
            let mut buf = [0u8; 8];
            for want in 0..2u32 {
                let (tag, len) = answers.recv_into(&mut buf).unwrap();
                assert_eq!(tag & 0x1fff_ffff, want, "responses out of request order");
                assert_eq!(&buf[..len], &[10 + want as u8]);
            }
            stop.stop();
        });
        let stats = reactor.run().unwrap();
        client.join().unwrap();
        for t in spawner.0.lock().unwrap().drain(..) {
            t.join().unwrap();
        }
        assert_eq!((stats.requests, stats.sent), (2, 2));
        match second {
            When::HandlerStarted => {
                assert_eq!((stats.inline, stats.dispatched, stats.handovers), (1, 1, 1))
            }
            When::TakenFromRing => assert_eq!(stats.inline + stats.dispatched, 2),
        }
    });
}

// ------------------------------------------------------------------ per-key ordering

/// A transport of plain queues for the ordering model: the requests wait in a queue in
/// their arrival order (across two connections), responses land in a list per connection,
/// and the reactor sleeps on a condition variable its waker signals. The rings and the
/// doorbell have models of their own; what this model explores is the ordering table and
/// the completions of workers finishing in any order.
struct Queues {
    requests: std::collections::VecDeque<(usize, u32, [u8; 4])>,
    answers: Arc<Answers>,
    wake: Arc<(Mutex<bool>, loom::sync::Condvar)>,
}

/// Responses per connection, and a condition variable for the one who waits for them all.
#[derive(Default)]
struct Answers {
    /// Per connection: the request ids answered, in the order sent.
    got: Mutex<[Vec<u32>; 2]>,
    more: loom::sync::Condvar,
}

fn conn(i: usize) -> ConnId {
    ConnId {
        slot: i,
        generation: 1,
    }
}

impl Transport for Queues {
    fn max_request(&self) -> usize {
        8
    }
    fn max_response(&self) -> usize {
        8
    }
    fn limits(&self) -> (usize, usize) {
        (4, 1 << 20)
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        match self.requests.pop_front() {
            Some((c, id, body)) => {
                buf[..4].copy_from_slice(&body);
                Ok(Incoming {
                    control: false,
                    conn: conn(c),
                    id: RequestId(id),
                    len: 4,
                })
            }
            None => Err(RecvRequestError::Empty),
        }
    }
    fn has_request(&self) -> bool {
        !self.requests.is_empty()
    }
    fn try_send_response(
        &mut self,
        to: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        assert_eq!(status, Status::Ok);
        assert_eq!(
            body[0] as usize, to.slot,
            "an answer on the wrong connection"
        );
        self.answers.got.lock().unwrap()[to.slot].push(id.0);
        self.answers.more.notify_all();
        Ok(())
    }
    fn wait(&mut self, _blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        let (flag, cv) = &*self.wake;
        let mut rung = flag.lock().unwrap();
        // The waker sets the flag under the lock after whatever makes `ready()` true.
        while !*rung && !ready() && self.requests.is_empty() {
            rung = cv.wait(rung).unwrap();
        }
        *rung = false;
        true
    }
    fn pause(&mut self, _c: ConnId, _paused: bool) {}
    fn housekeeping(&mut self, _accept: bool) -> Vec<ConnId> {
        Vec::new()
    }
    fn shutdown(&mut self) {}
    fn housekeeping_interval(&self) -> Option<std::time::Duration> {
        None
    }
    fn client(&self, c: ConnId) -> Option<ClientInfo> {
        Some(ClientInfo {
            conn: c,
            pid: 1 + c.slot as u32,
            uid: 0,
            gid: 0,
        })
    }
    fn waker(&self) -> Box<dyn Fn() + Send + Sync> {
        let wake = self.wake.clone();
        Box::new(move || {
            *wake.0.lock().unwrap() = true;
            wake.1.notify_all();
        })
    }
    fn watch_bell(&self) -> Option<ringbell::doorbell::WatchBell> {
        None
    }
}

/// Two worker threads taking jobs from a queue: any number of jobs, finishing in any order,
/// within loom's thread limit.
#[derive(Default)]
struct Pool {
    jobs: Mutex<(std::collections::VecDeque<Job>, bool)>,
    more: loom::sync::Condvar,
}

impl Executor for Pool {
    fn execute(&self, job: Job) {
        self.jobs.lock().unwrap().0.push_back(job);
        self.more.notify_one();
    }
    fn runs_concurrently(&self) -> bool {
        true
    }
}

impl Pool {
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.jobs.lock().unwrap();
                loop {
                    if let Some(j) = q.0.pop_front() {
                        break j;
                    }
                    if q.1 {
                        return;
                    }
                    q = self.more.wait(q).unwrap();
                }
            };
            job();
        }
    }
    fn quit(&self) {
        self.jobs.lock().unwrap().1 = true;
        self.more.notify_all();
    }
}

/// A request of the ordering model: `[conn, index, key, write]`.
fn access_of(body: &[u8]) -> Access {
    match body[3] {
        0 => Access::Read(u64::from(body[2])),
        _ => Access::Write(u64::from(body[2])),
    }
}

/// What the ordering model saw: requests in the order the reactor classified them (the
/// order they left the transport), and which handlers have ended.
#[derive(Default)]
struct OrderLog {
    arrived: Vec<[u8; 4]>,
    ended: Vec<[u8; 4]>,
}

/// Per-key ordering, the real reactor, two connections, two keys: in arrival order,
/// connection 0 reads key 1, connection 1 writes key 1, connection 0 reads key 1 again and
/// connection 1 writes key 2. Two workers run what the reactor dispatches and finish in any
/// order. At each handler's start the model checks that every earlier request on its key
/// that it must follow — every one, for a write; the writes, for a read — has ended (its
/// handler gave its answer); every request is answered, in request order per connection.
///
/// Mutants: `write_ignores_reads` (the write of key 1 starts while the first read runs),
/// `read_overtakes_write` (the second read starts past the queued write), `early_release`
/// (the write releases its key as it starts, not when it answers).
#[test]
fn two_keys_from_two_connections() {
    builder_bounded(1).check(|| {
        let answers = Arc::new(Answers::default());
        let requests = [
            (0usize, 0u32, [0u8, 0, 1, 0]),
            (1, 0, [1, 0, 1, 1]),
            (0, 1, [0, 1, 1, 0]),
            (1, 1, [1, 1, 2, 1]),
        ];
        let server = Queues {
            requests: requests.iter().copied().collect(),
            answers: answers.clone(),
            wake: Arc::new((Mutex::new(false), loom::sync::Condvar::new())),
        };
        let log = Arc::new(Mutex::new(OrderLog::default()));
        let (la, lh) = (log.clone(), log.clone());
        let handler = ordered(
            move |req: &Request| {
                la.lock()
                    .unwrap()
                    .arrived
                    .push(req.body[..4].try_into().unwrap());
                access_of(&req.body)
            },
            move |req: Request, res: Responder| {
                let me: [u8; 4] = req.body[..4].try_into().unwrap();
                {
                    let log = lh.lock().unwrap();
                    let pos = log
                        .arrived
                        .iter()
                        .position(|r| *r == me)
                        .expect("classified");
                    for earlier in &log.arrived[..pos] {
                        let same_key = earlier[2] == me[2];
                        let must_follow = me[3] == 1 || earlier[3] == 1;
                        assert!(
                            !same_key || !must_follow || log.ended.contains(earlier),
                            "{me:?} started before {earlier:?} ended"
                        );
                    }
                }
                lh.lock().unwrap().ended.push(me);
                res.respond(&me).unwrap();
            },
        );
        let pool = Arc::new(Pool::default());
        let mut reactor = Reactor::new(server, handler)
            .with_executor(pool.clone())
            .inline_budget(None);
        let stop = reactor.stop_handle();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let p = pool.clone();
                thread::spawn(move || p.work())
            })
            .collect();
        let a = answers.clone();
        let client = thread::spawn(move || {
            let mut got = a.got.lock().unwrap();
            while got[0].len() + got[1].len() < 4 {
                got = a.more.wait(got).unwrap();
            }
            drop(got);
            stop.stop();
        });
        let stats = reactor.run().unwrap();
        client.join().unwrap();
        pool.quit();
        for w in workers {
            w.join().unwrap();
        }
        let got = answers.got.lock().unwrap();
        for (c, ids) in got.iter().enumerate() {
            assert_eq!(ids, &[0, 1], "connection {c}: answers out of request order");
        }
        assert_eq!((stats.requests, stats.sent), (4, 4));
        assert_eq!(stats.inline + stats.dispatched, 4);
    });
}
