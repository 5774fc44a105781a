//! Everything the serve loop touches, and one turn of it: whoever holds a [`Core`] serves
//! (the *leader*: the reactor thread, or the watcher while an inline handler overruns; see
//! [`handover`](super::handover)).

use std::boxed::Box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::vec::Vec;

use super::ReactorStats;
use super::access::{self, Kind};
use super::executor::Executor;
use super::handler::{Handler, Request};
use super::order::{Admit, Keys, Queued};
use super::responder::Responder;
use super::shared::{Completion, Reply, Shared};
use super::stash::ConnState;
use crate::channel::{
    ClientInfo, ConnId, ConnectionStats, Control, Incoming, RecvRequestError, SendResponseError,
    ServerStats, Status, Transport,
};
use crate::clock::Instant;
use crate::mutant::{self, Mutant};
use crate::sync::{Arc, Ordering};

/// Most requests one key may hold waiting before more are answered `Busy`
/// ([`Reactor::key_queue_limit`](super::Reactor::key_queue_limit)).
pub(super) const DEFAULT_KEY_QUEUE: usize = 1024;

/// The serve loop's state.
pub(super) struct Core<T, H, E> {
    pub(super) transport: T,
    pub(super) executor: E,
    pub(super) handler: Arc<H>,
    pub(super) shared: Arc<Shared>,
    /// Every request inline (no executor, no hand-over).
    pub(super) serial: bool,
    pub(super) conns: Vec<Option<ConnState>>,
    /// Requests taken and not yet settled, including one running inline.
    pub(super) in_flight: usize,
    buf: Vec<u8>,
    completions: Vec<Completion>,
    /// Reused for the answers of inline handlers (see `Shared::run_inline`).
    pub(super) inline_done: Vec<Completion>,
    /// Reused by `sleep`: connections whose due response did not fit.
    blocked: Vec<(ConnId, usize)>,
    pub(super) stats: ReactorStats,
    /// When housekeeping last ran, and loop turns since the clock was last read.
    last_housekeeping: Instant,
    since_clock: u32,
    /// Per-key ordering: what runs and what waits on each key.
    pub(super) keys: Keys,
    /// Reused by `settle`: requests whose key came free.
    ready: Vec<Queued>,
    /// Serial mode: requests whose key came free, to run inline at the next turns.
    serial_ready: std::collections::VecDeque<InlineRun>,
}

/// A request to run on the leader's thread, outside the core.
pub(super) struct InlineRun {
    pub(super) conn: ConnId,
    pub(super) req: Request,
    pub(super) res: Responder,
}

impl InlineRun {
    /// Runs the handler, catching a panic (the responder's drop then answers `Panicked`).
    /// Answers given on this thread land in `into` (see `Shared::run_inline`).
    pub(super) fn run<H: Handler>(self, handler: &H, shared: &Shared, into: &mut Vec<Completion>) {
        let Self { conn, req, res } = self;
        let seq = res.seq();
        shared.run_inline(
            conn,
            seq,
            || {
                let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
            },
            into,
        );
    }
}

impl<T: Transport, H: Handler, E: Executor> Core<T, H, E> {
    pub(super) fn new(transport: T, handler: H, executor: E, shared: Arc<Shared>) -> Self {
        let buf = std::vec![0u8; transport.max_request()];
        Self {
            transport,
            executor,
            handler: Arc::new(handler),
            shared,
            serial: false,
            conns: Vec::new(),
            in_flight: 0,
            buf,
            completions: Vec::new(),
            inline_done: Vec::new(),
            blocked: Vec::new(),
            stats: ReactorStats::default(),
            last_housekeeping: Instant::now(),
            since_clock: 0,
            keys: Keys::new(DEFAULT_KEY_QUEUE),
            ready: Vec::new(),
            serial_ready: std::collections::VecDeque::new(),
        }
    }

    /// The same state with another executor.
    pub(super) fn with_executor<E2: Executor>(self, executor: E2) -> Core<T, H, E2> {
        Core {
            transport: self.transport,
            executor,
            handler: self.handler,
            shared: self.shared,
            serial: self.serial,
            conns: self.conns,
            in_flight: self.in_flight,
            buf: self.buf,
            completions: self.completions,
            inline_done: self.inline_done,
            blocked: self.blocked,
            stats: self.stats,
            last_housekeeping: self.last_housekeeping,
            since_clock: self.since_clock,
            keys: self.keys,
            ready: self.ready,
            serial_ready: self.serial_ready,
        }
    }

    /// Whether nothing is in flight and nothing waits to be sent.
    /// The stop protocol's end, asked each turn while stopping: true once everything in
    /// flight is answered and sent, or once the drain time (counted from the first turn that
    /// asked) ran out — then what is still stashed is discarded. A transport without a
    /// housekeeping interval (`bounded` false) waits for the drain however long it takes.
    pub(super) fn stop_finished(
        &mut self,
        deadline: &mut Option<Instant>,
        drain: core::time::Duration,
        bounded: bool,
    ) -> bool {
        let deadline = *deadline.get_or_insert_with(|| Instant::now().after(drain));
        if self.drained() {
            return true;
        }
        if bounded && Instant::now() >= deadline {
            self.discard_stashes();
            return true;
        }
        false
    }

    pub(super) fn drained(&self) -> bool {
        self.in_flight == 0 && self.conns.iter().flatten().all(|c| c.stash.is_empty())
    }

    /// Gives up on every unsent response (the drain ran out of time).
    pub(super) fn discard_stashes(&mut self) {
        for c in self.conns.iter_mut().flatten() {
            self.stats.discarded += c.stash.len() as u64;
            c.stash.clear();
        }
    }

    /// Takes at most one request from the server (or notes a detached connection): returns
    /// whether there was anything, and the request if it is to run inline. Only the reactor
    /// thread asks for inline runs (`inline`); a leader that must not block serving (the
    /// watcher) dispatches everything.
    pub(super) fn intake(&mut self, stopping: bool, inline: bool) -> (bool, Option<InlineRun>) {
        if inline {
            if let Some(run) = self.serial_ready.pop_front() {
                return (true, Some(run));
            }
        }
        match self.transport.try_recv_request(&mut self.buf) {
            Ok(inc) => (true, self.take(inc, stopping, inline)),
            Err(RecvRequestError::Detached(conn, _)) => {
                self.forget(conn);
                (true, None)
            }
            Err(_) => (false, None),
        }
    }

    /// Housekeeping (accept, reap) once per the transport's interval: checked on every turn
    /// without progress and every 256th turn with.
    pub(super) fn housekeeping_if_due(&mut self, progress: bool, stopping: bool) {
        let Some(every) = self.transport.housekeeping_interval() else {
            return;
        };
        self.since_clock += 1;
        if progress && self.since_clock < 256 {
            return;
        }
        self.since_clock = 0;
        let now = Instant::now();
        if now.since(self.last_housekeeping) >= every {
            self.last_housekeeping = now;
            self.housekeeping(!stopping);
        }
    }

    /// Sleeps on the transport until a completion, room for a blocked response, a request,
    /// the stop flag (unless already stopping) or `also()` — through the doorbell, so that
    /// whoever makes one of them true and then rings wakes it.
    /// The connections whose next answer waits for room, and its length.
    fn fill_blocked(&mut self) -> Vec<(ConnId, usize)> {
        let mut blocked = core::mem::take(&mut self.blocked);
        blocked.clear();
        blocked.extend(self.conns.iter().flatten().filter_map(
            |c| match c.stash.first_key_value() {
                Some((&seq, r)) if seq == c.next_send => Some((c.id, r.body.len())),
                _ => None,
            },
        ));
        blocked
    }

    /// An event loop's wait, first half (`Reactor::run_async`): what `sleep` waits for,
    /// announced on the transport's wait descriptor ([`Transport::announce`]).
    #[cfg(feature = "tokio")]
    pub(super) fn announce_wait(&mut self, stopping: bool) -> crate::doorbell::Announced {
        let blocked = self.fill_blocked();
        let shared = &*self.shared;
        let ready = || {
            shared.pending.load(Ordering::Acquire) > 0
                || (!stopping && shared.stop.load(Ordering::Acquire))
        };
        self.stats.sleeps += 1;
        let r = self.transport.announce(&blocked, &ready);
        self.blocked = blocked;
        r
    }

    pub(super) fn sleep(&mut self, stopping: bool, also: Option<&dyn Fn() -> bool>) {
        let blocked = self.fill_blocked();
        let shared = &*self.shared;
        // Once stopping, the stop flag no longer ends a sleep (it stays set): the drain sleeps
        // until a completion or room, like any other wait.
        let ready = || {
            shared.pending.load(Ordering::Acquire) > 0
                || (!stopping && shared.stop.load(Ordering::Acquire))
                || also.is_some_and(|f| f())
        };
        self.stats.sleeps += 1;
        self.transport.wait(&blocked, &ready);
        self.blocked = blocked;
    }

    pub(super) fn housekeeping(&mut self, accept: bool) {
        for conn in self.transport.housekeeping(accept) {
            self.forget(conn);
        }
    }

    fn forget(&mut self, conn: ConnId) {
        self.stats.detached += 1;
        if let Some(slot) = self.conns.get_mut(conn.slot) {
            if slot.as_ref().is_some_and(|c| c.id == conn) {
                let c = slot.take().expect("checked");
                self.in_flight -= c.in_flight;
                self.stats.discarded += c.stash.len() as u64;
            }
        }
    }

    fn state(&mut self, conn: ConnId) -> &mut ConnState {
        if self.conns.len() <= conn.slot {
            self.conns.resize_with(conn.slot + 1, || None);
        }
        let slot = &mut self.conns[conn.slot];
        if slot.as_ref().is_some_and(|c| c.id != conn) {
            // The slot's previous connection is gone (its detach was seen by the server
            // first); its answers are void.
            let old = slot.take().expect("checked");
            self.in_flight -= old.in_flight;
            self.stats.discarded += old.stash.len() as u64;
            self.stats.detached += 1;
        }
        self.conns[conn.slot].get_or_insert_with(|| ConnState::new(conn))
    }

    /// Answers a request that does not run (`Busy`, `ShuttingDown`, `Panicked` from its
    /// classifier) in its place in the connection's order, counting it.
    fn answer_at_once(&mut self, inc: &Incoming, seq: u64, status: Status) {
        match status {
            Status::Busy => self.stats.busy += 1,
            Status::Panicked => self.stats.panicked += 1,
            _ => {}
        }
        let reply = Reply {
            id: inc.id,
            status,
            body: Vec::new(),
        };
        self.park(inc.conn, seq, reply);
    }

    /// Answers a control request here, in its connection's turn: never given to the handler,
    /// not counted as a request, answered even while stopping. Statistics go only to a
    /// client of the server's own effective user. Cold and out of line: the request path
    /// pays one test of a flag for it.
    #[cold]
    #[inline(never)]
    fn control(&mut self, inc: &Incoming) {
        let st = self.state(inc.conn);
        let seq = st.next_seq;
        st.next_seq += 1;
        let (status, body) = match Control::parse(&self.buf[..inc.len]) {
            Control::Stats => {
                let own = rustix::process::geteuid().as_raw();
                let max = self.transport.max_response();
                // Unknown client: nobody's identity, refused like another user.
                let uid = self.transport.client(inc.conn).map_or(u32::MAX, |c| c.uid);
                if uid != own {
                    (
                        Status::Failed,
                        b"statistics are only for the server's own user".to_vec(),
                    )
                } else if ServerStats::MIN_LEN > max {
                    // The header and server fields (200 bytes) pass a very small response cap.
                    (
                        Status::Failed,
                        b"statistics do not fit the server's response cap".to_vec(),
                    )
                } else {
                    (Status::Ok, self.server_stats().encode(max))
                }
            }
            Control::Unknown => (Status::Failed, b"unknown control request".to_vec()),
        };
        let reply = Reply {
            id: inc.id,
            status,
            body,
        };
        self.park(inc.conn, seq, reply);
    }

    /// What a statistics control request answers: the counters, and each connection as the
    /// transport knows it with what this reactor holds for it.
    fn server_stats(&self) -> ServerStats {
        let mut conns = self.transport.connection_stats();
        if conns.is_empty() {
            conns = (self.conns.iter().flatten())
                .filter_map(|c| self.transport.client(c.id))
                .map(|i| ConnectionStats::new(i.conn, i.pid, i.uid, i.gid))
                .collect();
        }
        let mut stash_bytes = 0;
        for c in &mut conns {
            let held = self.conns.get(c.conn.slot).and_then(Option::as_ref);
            if let Some(st) = held.filter(|st| st.id == c.conn) {
                c.in_flight = st.in_flight as u64;
                c.stash_bytes = st.stash_bytes as u64;
                c.paused = st.paused;
                stash_bytes += c.stash_bytes;
            }
        }
        let s = &self.stats;
        ServerStats {
            pid: std::process::id(),
            uid: rustix::process::geteuid().as_raw(),
            requests: s.requests,
            inline: s.inline,
            dispatched: s.dispatched,
            busy: s.busy,
            sent: s.sent,
            panicked: s.panicked,
            detached: s.detached,
            discarded: s.discarded,
            pauses: s.paused,
            max_stash_bytes: s.max_stash_bytes as u64,
            sleeps: s.sleeps,
            handovers: s.handovers,
            key_waits: s.key_waits,
            in_flight: self.in_flight as u64,
            stash_bytes,
            total_connections: conns.len() as u64,
            wait: self.transport.wait_stats(),
            connections: conns,
        }
    }

    /// Gives a request its sequence number and either answers it at once (`Busy`,
    /// `ShuttingDown`), dispatches it, or returns it to run inline.
    fn take(&mut self, inc: Incoming, stopping: bool, inline: bool) -> Option<InlineRun> {
        if inc.control && mutant::keep(Mutant::ControlToHandler) {
            self.control(&inc);
            return None;
        }
        self.stats.requests += 1;
        let (max_in_flight, _) = self.transport.limits();
        let in_flight_before = self.in_flight;
        let st = self.state(inc.conn);
        let seq = st.next_seq;
        st.next_seq += 1;
        let refusal = if stopping {
            Some(Status::ShuttingDown)
        } else if st.in_flight >= max_in_flight {
            Some(Status::Busy)
        } else {
            None
        };
        if let Some(status) = refusal {
            self.answer_at_once(&inc, seq, status);
            return None;
        }
        // A request always comes from an attached connection; should the lookup fail, claim
        // nobody's identity (not root's).
        let client = self.transport.client(inc.conn).unwrap_or(ClientInfo {
            conn: inc.conn,
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        });
        let mut req = Request {
            client,
            id: inc.id,
            body: self.buf[..inc.len].to_vec(),
        };
        // A panic in the classifier answers the request `Panicked` (it never runs): the
        // connection's sequence must not be left with a gap.
        let order = match catch_unwind(AssertUnwindSafe(|| self.handler.access(&req))) {
            Ok(a) => access::split(a),
            Err(_) => {
                self.answer_at_once(&inc, seq, Status::Panicked);
                return None;
            }
        };
        if let Some((key, kind)) = order {
            if self.keys.full(key, kind) {
                // Its key's queue is full: answered at once, never dropped.
                self.answer_at_once(&inc, seq, Status::Busy);
                return None;
            }
        }
        self.state(inc.conn).in_flight += 1;
        self.in_flight += 1;
        let mut res = Responder::new(
            self.shared.clone(),
            inc.conn,
            seq,
            inc.id,
            self.transport.max_response(),
        );
        if let Some((key, kind)) = order {
            let q = Queued {
                kind,
                conn: inc.conn,
                req,
                res,
            };
            match self.keys.admit(key, q) {
                Admit::Start(q) => (req, res) = (q.req, q.res),
                Admit::Waits => {
                    self.stats.key_waits += 1;
                    // SeqCst: the leader's half of the pair in `Shared::post` (an inline
                    // answer that releases a key); `collect` reads `pending` after this.
                    self.shared.key_waiting.fetch_add(1, Ordering::SeqCst);
                    return None;
                }
            }
            res.hold(key, kind);
        }
        if inline && (self.serial || (in_flight_before == 0 && !self.transport.has_request())) {
            self.stats.inline += 1;
            return Some(InlineRun {
                conn: inc.conn,
                req,
                res,
            });
        }
        self.stats.dispatched += 1;
        let handler = self.handler.clone();
        // A panic drops `res` while unwinding, which answers `Panicked`.
        self.executor.execute(Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
        }));
        None
    }

    /// Hands a request taken to run inline to the executor after all (the re-check after
    /// arming the watcher found other work).
    pub(super) fn dispatch(&mut self, run: InlineRun) {
        self.stats.inline -= 1;
        self.stats.dispatched += 1;
        let handler = self.handler.clone();
        let InlineRun { req, res, .. } = run;
        self.executor.execute(Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
        }));
    }

    /// Whether work is waiting: a request, or an answer to send.
    pub(super) fn work_waiting(&self) -> bool {
        self.transport.has_request() || self.shared.pending.load(Ordering::Acquire) > 0
    }

    /// Settles the answers an inline handler gave on the leader's thread and sends what is
    /// due on its connection now, not after a loop turn.
    pub(super) fn finish_inline(&mut self, conn: ConnId, mine: &mut Vec<Completion>) {
        self.settle(mine);
        self.collect();
        self.flush(conn.slot);
    }

    /// Moves completions from the queue into their connections' stashes.
    pub(super) fn collect(&mut self) -> bool {
        // SeqCst: see `Shared::post` (an inline answer that releases a key).
        if self.shared.pending.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut done = core::mem::take(&mut self.completions);
        self.shared.take(&mut done);
        let any = !done.is_empty();
        self.settle(&mut done);
        self.completions = done;
        any
    }

    /// A request that held `key` is over: starts (dispatches) what waited for it.
    fn release(&mut self, key: u64, kind: Kind) {
        let mut ready = core::mem::take(&mut self.ready);
        self.keys.release(key, kind, &mut ready);
        for Queued { conn, req, res, .. } in ready.drain(..) {
            self.shared.key_waiting.fetch_sub(1, Ordering::Relaxed);
            if self.serial {
                // Serial mode runs every request on the reactor thread: this one waits for
                // the loop's next turn there.
                self.stats.inline += 1;
                self.serial_ready.push_back(InlineRun { conn, req, res });
                continue;
            }
            self.stats.dispatched += 1;
            let handler = self.handler.clone();
            // A panic drops `res` while unwinding, which answers `Panicked` (and releases).
            self.executor.execute(Box::new(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
            }));
        }
        self.ready = ready;
    }

    fn settle(&mut self, done: &mut Vec<Completion>) {
        for c in done.drain(..) {
            // First, whether or not its connection is still there: the key must come free.
            if let Some((key, kind)) = c.order {
                self.release(key, kind);
            }
            let live = self
                .conns
                .get_mut(c.conn.slot)
                .and_then(Option::as_mut)
                .filter(|s| s.id == c.conn);
            let Some(st) = live else {
                self.stats.discarded += 1;
                continue;
            };
            st.in_flight -= 1;
            self.in_flight -= 1;
            if c.reply.status == Status::Panicked {
                self.stats.panicked += 1;
            }
            self.park(c.conn, c.seq, c.reply);
        }
    }

    fn park(&mut self, conn: ConnId, seq: u64, reply: Reply) {
        let (_, limit) = self.transport.limits();
        let Some(st) = self.conns.get_mut(conn.slot).and_then(Option::as_mut) else {
            return;
        };
        if seq == st.next_send && st.stash.is_empty() {
            // The common case: the reply due next, nothing parked before it. Send it now.
            match self
                .transport
                .try_send_response(conn, reply.id, reply.status, &reply.body)
            {
                Ok(()) => {
                    st.next_send += 1;
                    self.stats.sent += 1;
                    return;
                }
                Err(SendResponseError::Gone | SendResponseError::Forked) => {
                    self.forget(conn);
                    return;
                }
                // Parked below; `flush` deals with it.
                Err(SendResponseError::Full | SendResponseError::TooLarge { .. }) => {}
            }
        }
        st.stash_bytes += reply.cost();
        st.stash.insert(seq, reply);
        self.stats.max_stash_bytes = self.stats.max_stash_bytes.max(st.stash_bytes);
        if !st.paused && st.stash_bytes >= limit {
            st.paused = true;
            self.stats.paused += 1;
            self.transport.pause(conn, true);
        }
    }

    pub(super) fn flush_all(&mut self) -> bool {
        let mut any = false;
        for slot in 0..self.conns.len() {
            any |= self.flush(slot);
        }
        any
    }

    fn flush(&mut self, slot: usize) -> bool {
        let (_, limit) = self.transport.limits();
        let mut sent = false;
        let Some(st) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let mut gone = false;
        while let Some(entry) = st.stash.first_entry() {
            let in_order = *entry.key() == st.next_send;
            if !in_order && mutant::keep(Mutant::SendOutOfOrder) {
                break;
            }
            let r = entry.get();
            match self
                .transport
                .try_send_response(st.id, r.id, r.status, &r.body)
            {
                Ok(()) => {}
                Err(SendResponseError::Full) => break,
                Err(SendResponseError::TooLarge { .. }) => {
                    // A responder checks the cap; a reply past it cannot reach here. Should
                    // it, the client still gets an answer.
                    let r = entry.into_mut();
                    st.stash_bytes -= r.cost();
                    r.status = Status::TooLarge;
                    r.body = Vec::new();
                    st.stash_bytes += r.cost();
                    continue;
                }
                Err(SendResponseError::Gone | SendResponseError::Forked) => {
                    gone = true;
                    break;
                }
            }
            let r = entry.remove();
            st.stash_bytes -= r.cost();
            st.next_send += 1;
            self.stats.sent += 1;
            sent = true;
        }
        if gone {
            let id = st.id;
            self.forget(id);
            return true;
        }
        if st.paused && (st.stash.is_empty() || st.stash_bytes <= limit / 2) {
            st.paused = false;
            let id = st.id;
            self.transport.pause(id, false);
        }
        sent
    }
}
