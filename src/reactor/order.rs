//! Per-key ordering: which requests may run now, and which wait for which. The argument is in
//! the [module docs](super), "Per-key ordering".
//!
//! Only the leader touches the table (it lives in the core, behind the core's lock); workers
//! reach it only through their responders' completions, which the leader settles. So the
//! table itself is sequential code; what the loom model checks is that the leader starts and
//! releases at the right moments whatever order the workers finish in.

use std::collections::HashMap;
use std::collections::VecDeque;

use super::access::Kind;
use super::handler::Request;
use super::responder::Responder;
use crate::channel::ConnId;
use crate::mutant::{self, Mutant};

/// A request that waits for its key.
pub(super) struct Queued {
    pub(super) kind: Kind,
    pub(super) conn: ConnId,
    pub(super) req: Request,
    pub(super) res: Responder,
}

/// One key's state: what runs on it, and what waits, in arrival order. A key with nothing
/// running and nothing waiting is not in the table.
#[derive(Default)]
struct KeyState {
    /// Reads running (started, responder not yet consumed).
    readers: usize,
    /// A write running.
    writer: bool,
    waiting: VecDeque<Queued>,
}

impl KeyState {
    /// Whether a request of `kind` may start now, were nothing waiting ahead of it.
    fn free_for(&self, kind: Kind) -> bool {
        match kind {
            Kind::Read => !self.writer,
            // Mutant `write_ignores_reads`: a write that does not wait for running reads.
            Kind::Write => {
                !self.writer && (self.readers == 0 || mutant::active(Mutant::WriteIgnoresReads))
            }
        }
    }

    fn start(&mut self, kind: Kind) {
        match kind {
            Kind::Read => self.readers += 1,
            // Mutant `early_release`: the write's barrier goes as it starts, not when its
            // responder is consumed.
            Kind::Write => self.writer = !mutant::active(Mutant::EarlyRelease),
        }
    }

    fn idle(&self) -> bool {
        self.readers == 0 && !self.writer && self.waiting.is_empty()
    }
}

/// What became of a request offered to its key.
pub(super) enum Admit {
    /// Start it now: the key counts it as running.
    Start(Queued),
    /// It waits in the key's queue; [`Keys::release`] hands it back when its turn comes.
    Waits,
}

/// Every key with something running or waiting.
pub(super) struct Keys {
    map: HashMap<u64, KeyState>,
    /// Most requests one key may hold waiting.
    pub(super) limit: usize,
}

impl Keys {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            limit,
        }
    }

    /// Whether a request of `kind` on `key` would have to wait and its key's queue is full
    /// (the caller answers it `Busy` instead of offering it).
    pub(super) fn full(&self, key: u64, kind: Kind) -> bool {
        self.map.get(&key).is_some_and(|st| {
            let waits = !st.waiting.is_empty() || !st.free_for(kind);
            waits && st.waiting.len() >= self.limit
        })
    }

    /// Offers a request on `key`, in arrival order (the caller checked [`full`](Self::full)).
    pub(super) fn admit(&mut self, key: u64, q: Queued) -> Admit {
        let st = self.map.entry(key).or_default();
        // Mutant `read_overtakes_write`: a read that starts past a queued write.
        let queue_clear = st.waiting.is_empty()
            || (q.kind == Kind::Read && mutant::active(Mutant::ReadOvertakesWrite));
        if queue_clear && st.free_for(q.kind) {
            st.start(q.kind);
            return Admit::Start(q);
        }
        st.waiting.push_back(q);
        Admit::Waits
    }

    /// A request of `kind` on `key` that was running is over (its responder was consumed):
    /// pushes onto `ready` the waiting requests that may start now, counted as running and
    /// their responders holding the key (so that, should the caller fail to start one, its
    /// responder's drop still gives the key back).
    pub(super) fn release(&mut self, key: u64, kind: Kind, ready: &mut std::vec::Vec<Queued>) {
        let Some(st) = self.map.get_mut(&key) else {
            debug_assert!(false, "a release for key {key} with nothing running");
            return;
        };
        match kind {
            Kind::Read => st.readers = st.readers.saturating_sub(1),
            Kind::Write => st.writer = false,
        }
        // In arrival order: the head starts if the key is free for it; a write at the head
        // stops the scan (it waits for the reads before it, and everything after waits for
        // it); reads after a started read start too.
        while let Some(head) = st.waiting.front() {
            if !st.free_for(head.kind) {
                break;
            }
            let mut q = st.waiting.pop_front().expect("a head");
            st.start(q.kind);
            q.res.hold(key, q.kind);
            ready.push(q);
            if st.writer {
                break; // a write started: everything after it waits for it
            }
        }
        if st.idle() {
            self.map.remove(&key);
        }
    }

    /// Keys with something running or waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::channel::{ClientInfo, RequestId};
    use crate::reactor::shared::Shared;

    fn q(shared: &std::sync::Arc<Shared>, kind: Kind, n: u32) -> Queued {
        let conn = ConnId {
            slot: 0,
            generation: 1,
        };
        Queued {
            kind,
            conn,
            req: Request {
                client: ClientInfo {
                    conn,
                    pid: 1,
                    uid: 0,
                    gid: 0,
                },
                id: RequestId(n),
                body: std::vec::Vec::new(),
            },
            res: Responder::new(shared.clone(), conn, u64::from(n), RequestId(n), 8),
        }
    }

    fn started(a: Admit) -> u32 {
        match a {
            Admit::Start(q) => q.req.id.0,
            Admit::Waits => panic!("expected a start"),
        }
    }

    fn waits(a: Admit) {
        assert!(matches!(a, Admit::Waits), "expected a wait");
    }

    fn ids(ready: &mut std::vec::Vec<Queued>) -> std::vec::Vec<u32> {
        ready.drain(..).map(|q| q.req.id.0).collect()
    }

    #[test]
    fn reads_share_writes_wait_and_release_in_arrival_order() {
        let shared = Shared::new(std::boxed::Box::new(|| {}));
        let mut keys = Keys::new(8);
        let mut ready = std::vec::Vec::new();
        // Two reads run together; a write waits for both; a read after it waits for it.
        assert_eq!(started(keys.admit(1, q(&shared, Kind::Read, 0))), 0);
        assert_eq!(started(keys.admit(1, q(&shared, Kind::Read, 1))), 1);
        waits(keys.admit(1, q(&shared, Kind::Write, 2)));
        waits(keys.admit(1, q(&shared, Kind::Read, 3)));
        waits(keys.admit(1, q(&shared, Kind::Read, 4)));
        waits(keys.admit(1, q(&shared, Kind::Write, 5)));
        // Another key is not held up.
        assert_eq!(started(keys.admit(2, q(&shared, Kind::Write, 6))), 6);
        keys.release(1, Kind::Read, &mut ready);
        assert!(ready.is_empty(), "one read still runs: the write waits");
        keys.release(1, Kind::Read, &mut ready);
        assert_eq!(ids(&mut ready), [2], "the write alone");
        keys.release(1, Kind::Write, &mut ready);
        assert_eq!(
            ids(&mut ready),
            [3, 4],
            "the reads after it, together, not the write"
        );
        keys.release(1, Kind::Read, &mut ready);
        keys.release(1, Kind::Read, &mut ready);
        assert_eq!(ids(&mut ready), [5]);
        keys.release(1, Kind::Write, &mut ready);
        keys.release(2, Kind::Write, &mut ready);
        assert!(ready.is_empty());
        assert_eq!(keys.len(), 0, "idle keys cost nothing");
    }

    #[test]
    fn a_full_queue_is_reported_only_for_requests_that_would_wait() {
        let shared = Shared::new(std::boxed::Box::new(|| {}));
        let mut keys = Keys::new(1);
        assert!(!keys.full(1, Kind::Write));
        assert_eq!(started(keys.admit(1, q(&shared, Kind::Read, 0))), 0);
        assert!(!keys.full(1, Kind::Read), "a read would start: not full");
        waits(keys.admit(1, q(&shared, Kind::Write, 1)));
        assert!(
            keys.full(1, Kind::Read),
            "behind a queued write, the queue of 1 is full"
        );
        assert!(keys.full(1, Kind::Write));
        assert!(!keys.full(2, Kind::Write), "another key");
    }
}
