//! The greeting a server sends a connecting client: a verdict and, when admitted, the three
//! regions of the connection. The bytes are in [`wire`](crate::wire) ("channel").

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::error::ChannelError;
use super::socket;
use crate::wire::{
    HELLO_FDS, HELLO_FULL, HELLO_IN_FLIGHT_OFF, HELLO_LEN, HELLO_MAGIC, HELLO_OK, HELLO_PID_OFF,
    HELLO_SLOT_OFF, HELLO_UID, HELLO_VERDICT_OFF,
};

/// What a server tells an admitted client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Welcome {
    /// The connection's slot on the server.
    pub(crate) slot: u32,
    /// The serving process's id.
    pub(crate) server_pid: u32,
    /// The server's limit on the client's requests in flight.
    pub(crate) max_in_flight: u32,
}

/// Why a server turned a client away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// At its client limit.
    Full,
    /// The client's user is not admitted.
    User,
}

fn word(m: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&m[at..at + 4]);
    u32::from_ne_bytes(w)
}

fn encode(verdict: u32, slot: u32, pid: u32, in_flight: u32) -> [u8; HELLO_LEN] {
    let mut m = [0u8; HELLO_LEN];
    m[0..4].copy_from_slice(&HELLO_MAGIC);
    m[HELLO_VERDICT_OFF..][..4].copy_from_slice(&verdict.to_ne_bytes());
    m[HELLO_SLOT_OFF..][..4].copy_from_slice(&slot.to_ne_bytes());
    m[HELLO_PID_OFF..][..4].copy_from_slice(&pid.to_ne_bytes());
    m[HELLO_IN_FLIGHT_OFF..][..4].copy_from_slice(&in_flight.to_ne_bytes());
    m
}

/// Greets an admitted client, handing it the bell region, its request ring and its response
/// ring, in that order.
pub(crate) fn welcome(
    sock: &UnixStream,
    w: Welcome,
    fds: [BorrowedFd<'_>; HELLO_FDS],
) -> io::Result<()> {
    let msg = encode(HELLO_OK, w.slot, w.server_pid, w.max_in_flight);
    socket::send_fds(sock, &msg, &fds)
}

/// Tells a client it is refused (best effort: it may be gone already).
pub(crate) fn refuse(sock: &UnixStream, why: Refusal) {
    let verdict = match why {
        Refusal::Full => HELLO_FULL,
        Refusal::User => HELLO_UID,
    };
    let _ = socket::send_fds(sock, &encode(verdict, 0, 0, 0), &[]);
}

/// Waits at most `timeout` for the server's greeting on `sock`; returns what it said and the
/// three descriptors (bell region, request ring, response ring).
pub(crate) fn receive(
    sock: &UnixStream,
    timeout: Duration,
) -> Result<(Welcome, [OwnedFd; HELLO_FDS]), ChannelError> {
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut msg = [0u8; HELLO_LEN];
    let (n, fds) = match socket::recv_fds(sock, &mut msg) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ChannelError::Timeout),
        Err(e) => return Err(e.into()),
    };
    sock.set_read_timeout(None)?;
    if n == 0 {
        return Err(ChannelError::Protocol(
            "connection closed before the greeting",
        ));
    }
    if n != HELLO_LEN || msg[0..4] != HELLO_MAGIC {
        return Err(ChannelError::Protocol("not a ringbell channel server"));
    }
    match word(&msg, HELLO_VERDICT_OFF) {
        HELLO_OK => {}
        HELLO_FULL => return Err(ChannelError::ServerFull),
        HELLO_UID => return Err(ChannelError::NotAdmitted),
        _ => return Err(ChannelError::Protocol("unknown verdict")),
    }
    let fds: [OwnedFd; HELLO_FDS] = fds
        .try_into()
        .map_err(|_| ChannelError::Protocol("expected three descriptors"))?;
    let welcome = Welcome {
        slot: word(&msg, HELLO_SLOT_OFF),
        server_pid: word(&msg, HELLO_PID_OFF),
        max_in_flight: word(&msg, HELLO_IN_FLIGHT_OFF),
    };
    Ok((welcome, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let region = crate::region::Region::create(&crate::doorbell::BellConfig).unwrap();
        use std::os::fd::AsFd;
        let fd = region.fd();
        let w = Welcome {
            slot: 3,
            server_pid: 77,
            max_in_flight: 9,
        };
        welcome(&a, w, [fd.as_fd(), fd.as_fd(), fd.as_fd()]).unwrap();
        let (got, _fds) = receive(&b, Duration::from_secs(5)).unwrap();
        assert_eq!(got, w);
        refuse(&a, Refusal::Full);
        assert!(matches!(
            receive(&b, Duration::from_secs(5)),
            Err(ChannelError::ServerFull)
        ));
        refuse(&a, Refusal::User);
        assert!(matches!(
            receive(&b, Duration::from_secs(5)),
            Err(ChannelError::NotAdmitted)
        ));
    }
}
