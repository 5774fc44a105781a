//! One connection's state in the reactor: its sequence numbers and its reorder stash.

use std::collections::BTreeMap;

use super::shared::Reply;
use crate::channel::ConnId;

/// Per-connection state of the reactor: sequence numbers, requests in flight, and the
/// reorder stash of answers not yet sent.
///
/// Sequence numbers are given in the order requests leave the connection's ring (one reactor
/// thread takes them); a response is sent only when its number is the connection's next
/// due, and each number is sent exactly once: responses go out in request order whatever
/// order handlers finish in (mutant `send_out_of_order`).
pub(super) struct ConnState {
    pub(super) id: ConnId,
    /// Sequence number of the next request taken.
    pub(super) next_seq: u64,
    /// Sequence number of the next response due.
    pub(super) next_send: u64,
    /// Requests with handlers, not answered.
    pub(super) in_flight: usize,
    /// Answered, not sent, by sequence number.
    pub(super) stash: BTreeMap<u64, Reply>,
    pub(super) stash_bytes: usize,
    pub(super) paused: bool,
}

impl ConnState {
    pub(super) fn new(id: ConnId) -> Self {
        Self {
            id,
            next_seq: 0,
            next_send: 0,
            in_flight: 0,
            stash: BTreeMap::new(),
            stash_bytes: 0,
            paused: false,
        }
    }
}
