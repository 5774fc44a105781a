//! The greeting a server sends a connecting client: a verdict and, when admitted, the three
//! regions of the connection. The bytes are in [`wire`](crate::wire) ("channel").

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::vec::Vec;

use super::error::ChannelError;
use super::socket;
use crate::clock::Deadline;
use crate::wire::{
    CLIENT_HELLO_FLAGS_OFF, CLIENT_HELLO_LEN, CLIENT_HELLO_MAGIC, CLIENT_HELLO_PID_OFF,
    CLIENT_HELLO_PIDFD, HELLO_FDS, HELLO_FLAG_PIDFD, HELLO_FLAG_READINESS,
    HELLO_FLAG_SERVER_READINESS, HELLO_FLAG_SOCKET, HELLO_FLAGS_OFF, HELLO_FULL,
    HELLO_IN_FLIGHT_OFF, HELLO_LEN, HELLO_LIMIT, HELLO_MAGIC, HELLO_MAX_REQUEST_OFF,
    HELLO_MAX_RESPONSE_OFF, HELLO_OK, HELLO_PID_OFF, HELLO_RESOURCES, HELLO_SLOT_OFF, HELLO_UID,
    HELLO_VERDICT_OFF,
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
    /// The largest request body the server takes.
    pub(crate) max_request: u32,
    /// The largest response body the server sends.
    pub(crate) max_response: u32,
}

/// What an admitted client receives: the greeting and its descriptors.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) welcome: Welcome,
    /// Bell region, request ring, response ring; `None` on the socket transport.
    pub(crate) rings: Option<[OwnedFd; HELLO_FDS]>,
    /// The client's end of its readiness socket, if the server sent one.
    pub(crate) readiness: Option<OwnedFd>,
    /// The ringers' end of this client's pair in the server's readiness set, if sent.
    pub(crate) server_readiness: Option<OwnedFd>,
    /// A pidfd of the serving process, if it sent one.
    pub(crate) server_pidfd: Option<OwnedFd>,
}

/// Why a server turned a client away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// At its client limit.
    Full,
    /// The client's user is not admitted.
    User,
    /// The client's user or process is at its own limit.
    Limit,
    /// No descriptors or memory for another connection.
    Resources,
}

fn word(m: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&m[at..at + 4]);
    u32::from_ne_bytes(w)
}

fn put(m: &mut [u8], at: usize, v: u32) {
    m[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn encode(verdict: u32, w: Welcome, flags: u32) -> [u8; HELLO_LEN] {
    let mut m = [0u8; HELLO_LEN];
    m[0..4].copy_from_slice(&HELLO_MAGIC);
    put(&mut m, HELLO_VERDICT_OFF, verdict);
    put(&mut m, HELLO_SLOT_OFF, w.slot);
    put(&mut m, HELLO_PID_OFF, w.server_pid);
    put(&mut m, HELLO_IN_FLIGHT_OFF, w.max_in_flight);
    put(&mut m, HELLO_FLAGS_OFF, flags);
    put(&mut m, HELLO_MAX_REQUEST_OFF, w.max_request);
    put(&mut m, HELLO_MAX_RESPONSE_OFF, w.max_response);
    m
}

/// A pidfd of this process (`pidfd_open(getpid())`), if the kernel gives one.
pub(crate) fn own_pidfd() -> Option<OwnedFd> {
    rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .ok()
}

/// Sends a client's hello on a fresh connection: its pid and, if it can make one, a pidfd of
/// its own process.
pub(crate) fn hello(sock: &UnixStream) -> io::Result<()> {
    let mut m = [0u8; CLIENT_HELLO_LEN];
    m[0..4].copy_from_slice(&CLIENT_HELLO_MAGIC);
    put(&mut m, CLIENT_HELLO_PID_OFF, std::process::id());
    let pidfd = own_pidfd();
    if pidfd.is_some() {
        put(&mut m, CLIENT_HELLO_FLAGS_OFF, CLIENT_HELLO_PIDFD);
    }
    let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(AsFd::as_fd).collect();
    socket::send_fds(sock, &m, &fds)
}

/// What the server made of the bytes a client sent after connecting.
#[derive(Debug)]
pub(crate) enum ClientHello {
    /// Nothing yet.
    Pending,
    /// A hello, with the client's pidfd if it sent one.
    Hello(Option<OwnedFd>),
    /// Something else, or the end of the stream: the client is watched through its socket.
    Other,
}

/// Reads a client's hello if it has arrived, without waiting.
pub(crate) fn try_client_hello(sock: &UnixStream) -> ClientHello {
    let mut m = [0u8; CLIENT_HELLO_LEN];
    match socket::try_recv_fds(sock, &mut m) {
        Ok(None) => ClientHello::Pending,
        Ok(Some((n, mut fds))) => {
            let flags = if n == CLIENT_HELLO_LEN && m[0..4] == CLIENT_HELLO_MAGIC {
                word(&m, CLIENT_HELLO_FLAGS_OFF)
            } else {
                return ClientHello::Other;
            };
            // One descriptor exactly when the flag says so; anything else is not a hello (the
            // descriptors are closed as `fds` drops).
            match (flags & CLIENT_HELLO_PIDFD != 0, fds.len()) {
                (true, 1) => ClientHello::Hello(fds.pop()),
                (false, 0) => ClientHello::Hello(None),
                _ => ClientHello::Other,
            }
        }
        Err(_) => ClientHello::Other,
    }
}

/// Greets an admitted client, handing it the bell region, its request ring and its response
/// ring, in that order, its end of the readiness socket, and the server's pidfd if there is
/// one.
pub(crate) fn welcome(
    sock: &UnixStream,
    w: Welcome,
    fds: [BorrowedFd<'_>; HELLO_FDS],
    readiness: Option<BorrowedFd<'_>>,
    server_readiness: Option<BorrowedFd<'_>>,
    server_pidfd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut all: Vec<BorrowedFd<'_>> = fds.to_vec();
    let mut flags = 0;
    if let Some(r) = readiness {
        all.push(r);
        flags |= HELLO_FLAG_READINESS;
    }
    if let Some(r) = server_readiness {
        all.push(r);
        flags |= HELLO_FLAG_SERVER_READINESS;
    }
    if let Some(p) = server_pidfd {
        all.push(p);
        flags |= HELLO_FLAG_PIDFD;
    }
    socket::send_fds(sock, &encode(HELLO_OK, w, flags), &all)
}

/// Greets an admitted client of the socket transport: no rings, the server's pidfd if there
/// is one.
pub(crate) fn welcome_socket(
    sock: &UnixStream,
    w: Welcome,
    server_pidfd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut flags = HELLO_FLAG_SOCKET;
    if server_pidfd.is_some() {
        flags |= HELLO_FLAG_PIDFD;
    }
    let fds: Vec<BorrowedFd<'_>> = server_pidfd.into_iter().collect();
    socket::send_fds(sock, &encode(HELLO_OK, w, flags), &fds)
}

/// Tells a client it is refused (best effort: it may be gone already).
pub(crate) fn refuse(sock: &UnixStream, why: Refusal) {
    let verdict = match why {
        Refusal::Full => HELLO_FULL,
        Refusal::User => HELLO_UID,
        Refusal::Limit => HELLO_LIMIT,
        Refusal::Resources => HELLO_RESOURCES,
    };
    let nobody = Welcome {
        slot: 0,
        server_pid: 0,
        max_in_flight: 0,
        max_request: 0,
        max_response: 0,
    };
    let _ = socket::send_fds(sock, &encode(verdict, nobody, 0), &[]);
}

/// Waits until `deadline` for the server's greeting on `sock`.
pub(crate) fn receive(sock: &UnixStream, deadline: Deadline) -> Result<Admitted, ChannelError> {
    let mut msg = [0u8; HELLO_LEN];
    let (n, mut fds) =
        socket::recv_fds_until(sock, &mut msg, deadline)?.ok_or(ChannelError::Timeout)?;
    if n == 0 {
        return Err(ChannelError::Protocol(
            "connection closed before the greeting",
        ));
    }
    if n != HELLO_LEN || msg[0..4] != HELLO_MAGIC {
        return Err(ChannelError::Protocol(
            "not a ringbell channel server of this version",
        ));
    }
    match word(&msg, HELLO_VERDICT_OFF) {
        HELLO_OK => {}
        HELLO_FULL => return Err(ChannelError::ServerFull),
        HELLO_UID => return Err(ChannelError::NotAdmitted),
        HELLO_LIMIT => return Err(ChannelError::LimitReached),
        HELLO_RESOURCES => return Err(ChannelError::ServerOutOfResources),
        _ => return Err(ChannelError::Protocol("unknown verdict")),
    }
    let flags = word(&msg, HELLO_FLAGS_OFF);
    let with_pidfd = flags & HELLO_FLAG_PIDFD != 0;
    let (rings, with_readiness, with_server_readiness) = match flags & HELLO_FLAG_SOCKET {
        0 => (
            HELLO_FDS,
            flags & HELLO_FLAG_READINESS != 0,
            flags & HELLO_FLAG_SERVER_READINESS != 0,
        ),
        _ => (0, false, false),
    };
    let extra =
        usize::from(with_readiness) + usize::from(with_server_readiness) + usize::from(with_pidfd);
    if fds.len() != rings + extra {
        return Err(ChannelError::Protocol("wrong number of descriptors"));
    }
    let server_pidfd = if with_pidfd { fds.pop() } else { None };
    let server_readiness = if with_server_readiness {
        fds.pop()
    } else {
        None
    };
    let readiness = if with_readiness { fds.pop() } else { None };
    let rings = match rings {
        0 => None,
        _ => Some(
            <[OwnedFd; HELLO_FDS]>::try_from(fds)
                .map_err(|_| ChannelError::Protocol("wrong number of descriptors"))?,
        ),
    };
    let welcome = Welcome {
        slot: word(&msg, HELLO_SLOT_OFF),
        server_pid: word(&msg, HELLO_PID_OFF),
        max_in_flight: word(&msg, HELLO_IN_FLIGHT_OFF),
        max_request: word(&msg, HELLO_MAX_REQUEST_OFF),
        max_response: word(&msg, HELLO_MAX_RESPONSE_OFF),
    };
    Ok(Admitted {
        welcome,
        rings,
        readiness,
        server_readiness,
        server_pidfd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    #[test]
    fn greetings_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let region = crate::region::Region::create(&crate::doorbell::BellConfig).unwrap();
        let fd = region.fd();
        let w = Welcome {
            slot: 3,
            server_pid: 77,
            max_in_flight: 9,
            max_request: 1000,
            max_response: 2000,
        };
        welcome(
            &a,
            w,
            [fd.as_fd(), fd.as_fd(), fd.as_fd()],
            None,
            None,
            None,
        )
        .unwrap();
        let got = receive(&b, soon()).unwrap();
        assert_eq!(got.welcome, w);
        assert!(got.server_pidfd.is_none() && got.readiness.is_none());
        welcome(
            &a,
            w,
            [fd.as_fd(), fd.as_fd(), fd.as_fd()],
            Some(fd.as_fd()),
            None,
            None,
        )
        .unwrap();
        let got = receive(&b, soon()).unwrap();
        assert!(got.server_pidfd.is_none() && got.readiness.is_some());
        assert!(got.server_readiness.is_none());
        let pidfd = own_pidfd().expect("pidfd_open on this kernel");
        welcome(
            &a,
            w,
            [fd.as_fd(), fd.as_fd(), fd.as_fd()],
            Some(fd.as_fd()),
            Some(fd.as_fd()),
            Some(pidfd.as_fd()),
        )
        .unwrap();
        let got = receive(&b, soon()).unwrap();
        assert!(got.server_pidfd.is_some() && got.readiness.is_some());
        assert!(got.server_readiness.is_some());
        welcome_socket(&a, w, Some(pidfd.as_fd())).unwrap();
        let got = receive(&b, soon()).unwrap();
        assert!(got.rings.is_none() && got.server_pidfd.is_some());
        assert_eq!(got.welcome, w);
        welcome_socket(&a, w, None).unwrap();
        let got = receive(&b, soon()).unwrap();
        assert!(got.rings.is_none() && got.server_pidfd.is_none());
        for (why, want) in [
            (Refusal::Full, "ServerFull"),
            (Refusal::User, "NotAdmitted"),
            (Refusal::Limit, "LimitReached"),
            (Refusal::Resources, "ServerOutOfResources"),
        ] {
            refuse(&a, why);
            let got = receive(&b, soon()).unwrap_err();
            assert_eq!(format!("{got:?}"), want);
        }
    }

    #[test]
    fn a_client_hello_is_read_when_it_has_come_and_not_waited_for() {
        let (a, b) = UnixStream::pair().unwrap();
        assert!(matches!(try_client_hello(&b), ClientHello::Pending));
        hello(&a).unwrap();
        assert!(matches!(try_client_hello(&b), ClientHello::Hello(Some(_))));
        std::io::Write::write_all(&mut &a, b"not a hello at all").unwrap();
        assert!(matches!(try_client_hello(&b), ClientHello::Other));
    }
}
