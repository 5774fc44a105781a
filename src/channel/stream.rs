//! Frames on the connection's socket, for the socket transport: an 8-byte header — body
//! length and tag, `u32` each, native byte order — then the body (see [`wire`](crate::wire),
//! "channel"). Both ends buffer in user space and never block in a read or a write: reads
//! and writes use `MSG_DONTWAIT`, writes `MSG_NOSIGNAL` (a peer gone is an error, never a
//! `SIGPIPE`).
//!
//! The input side keeps at most one chunk read past the frame being assembled; the output
//! side holds what the socket did not take yet, and its owner bounds it (a server answers
//! `Full` past its bound, a client waits).

use std::io;
use std::os::fd::AsFd;
use std::vec::Vec;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{RecvFlags, SendFlags, recv, send};

use crate::wire::SOCKET_FRAME_HEADER;

/// Bytes asked of the socket per read.
const CHUNK: usize = 64 << 10;

/// What the input holds next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A whole frame: its tag and body length.
    Frame { tag: u32, len: usize },
    /// Not a whole frame yet.
    Partial,
    /// A header announcing a body longer than allowed: the peer broke the protocol.
    TooLong { len: u32, position: u64 },
}

/// The receiving side of a framed socket.
#[derive(Debug, Default)]
pub(crate) struct FrameIn {
    buf: Vec<u8>,
    /// Bytes of `buf` already taken.
    start: usize,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// The peer closed its end (a read returned 0) or the socket failed.
    ended: bool,
}

impl FrameIn {
    /// What comes next, for bodies of at most `max` bytes.
    pub(crate) fn next(&self, max: usize) -> Next {
        let b = &self.buf[self.start..];
        if b.len() < SOCKET_FRAME_HEADER {
            return Next::Partial;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let tag = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        if len as usize > max {
            return Next::TooLong {
                len,
                position: self.offset + self.start as u64,
            };
        }
        match b.len() >= SOCKET_FRAME_HEADER + len as usize {
            true => Next::Frame {
                tag,
                len: len as usize,
            },
            false => Next::Partial,
        }
    }

    /// The body of the whole frame [`next`](Self::next) reported, consumed.
    pub(crate) fn take(&mut self, len: usize) -> &[u8] {
        let at = self.start + SOCKET_FRAME_HEADER;
        self.start = at + len;
        &self.buf[at..at + len]
    }

    /// Whether the peer's end is closed (what is buffered may still hold frames).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Reads what the socket has, without waiting; returns whether anything came. A read of
    /// 0 bytes or an error other than "nothing now" ends the input.
    pub(crate) fn fill(&mut self, sock: impl AsFd) -> bool {
        if self.ended {
            return false;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.offset += self.start as u64;
            self.start = 0;
        }
        // Into spare capacity: no zero-fill of a chunk per read.
        self.buf.reserve(CHUNK);
        let got = loop {
            match recv(
                &sock,
                rustix::buffer::spare_capacity(&mut self.buf),
                RecvFlags::DONTWAIT,
            ) {
                Ok((n, _)) => break Some(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break None,
                Err(_) => break Some(0),
            }
        };
        match got {
            Some(0) => {
                self.ended = true;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Whether a whole frame (of at most `max` bytes), a violation or the end is here.
    pub(crate) fn ready(&self, max: usize) -> bool {
        self.ended || self.next(max) != Next::Partial
    }
}

/// The sending side of a framed socket.
#[derive(Debug, Default)]
pub(crate) struct FrameOut {
    buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    sent: usize,
}

impl FrameOut {
    /// Bytes not yet taken by the socket.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Queues a frame.
    pub(crate) fn push(&mut self, tag: u32, body: &[u8]) {
        self.compact();
        self.buf
            .extend_from_slice(&(body.len() as u32).to_ne_bytes());
        self.buf.extend_from_slice(&tag.to_ne_bytes());
        self.buf.extend_from_slice(body);
    }

    /// Sends what the socket takes now.
    ///
    /// # Errors
    ///
    /// The socket failed or the peer is gone (`EPIPE`, `ECONNRESET`).
    pub(crate) fn flush(&mut self, sock: impl AsFd) -> io::Result<()> {
        while self.sent < self.buf.len() {
            match send(
                &sock,
                &self.buf[self.sent..],
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => self.sent += n,
                Err(rustix::io::Errno::INTR) => continue,
                // Nothing more now; out of kernel buffers or memory is "later" too.
                Err(
                    rustix::io::Errno::AGAIN | rustix::io::Errno::NOBUFS | rustix::io::Errno::NOMEM,
                ) => {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.compact();
        Ok(())
    }

    /// Drops what was sent once it is at least half the buffer: a reader that keeps the
    /// socket full must not make the buffer keep every byte ever sent.
    fn compact(&mut self) {
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent > 0 && self.sent >= self.buf.len() / 2 {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
    }
}

/// Waits at most `timeout` for `sock` to be readable (or hung up), or writable too if
/// `write`, or any of `also` (pidfds) to be readable; whether any became so. `EINTR` counts
/// as "not yet" (the caller loops).
pub(crate) fn wait(
    sock: impl AsFd,
    write: bool,
    also: &[std::os::fd::BorrowedFd<'_>],
    timeout: core::time::Duration,
) -> bool {
    let mut events = PollFlags::IN | PollFlags::RDHUP;
    if write {
        events |= PollFlags::OUT;
    }
    let mut fds = std::vec![PollFd::new(&sock, events)];
    fds.extend(also.iter().map(|fd| PollFd::new(fd, PollFlags::IN)));
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frames_cross_a_socket_whole_and_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut out = FrameOut::default();
        out.push(7, b"hello");
        out.push(8, b"");
        out.flush(&a).unwrap();
        assert_eq!(out.pending(), 0);
        let mut inp = FrameIn::default();
        assert_eq!(inp.next(16), Next::Partial);
        assert!(inp.fill(&b));
        assert_eq!(inp.next(16), Next::Frame { tag: 7, len: 5 });
        assert_eq!(inp.take(5), b"hello");
        assert_eq!(inp.next(16), Next::Frame { tag: 8, len: 0 });
        assert_eq!(inp.take(0), b"");
        assert_eq!(inp.next(16), Next::Partial);
        assert!(!inp.fill(&b)); // nothing now, not the end
        assert!(!inp.ended());
        drop(a);
        assert!(!inp.fill(&b));
        assert!(inp.ended());
    }

    #[test]
    fn a_reader_that_keeps_the_socket_full_does_not_grow_the_buffer() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut out = FrameOut::default();
        let mut inp = FrameIn::default();
        let body = [5u8; 1000];
        let mut most = 0;
        for i in 0..20_000u32 {
            out.push(i, &body);
            out.flush(&a).unwrap();
            // Read a little less than is written: the socket stays full.
            if i % 10 != 0 {
                inp.fill(&b);
                while let Next::Frame { len, .. } = inp.next(4096) {
                    inp.take(len);
                }
            }
            most = most.max(out.buf.len());
        }
        assert!(most < 4 << 20, "the send buffer grew to {most} bytes");
    }

    #[test]
    fn a_header_past_the_limit_is_a_violation_with_its_position() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut out = FrameOut::default();
        out.push(1, b"ok");
        out.push(2, &[0u8; 100]);
        out.flush(&a).unwrap();
        let mut inp = FrameIn::default();
        inp.fill(&b);
        assert_eq!(inp.next(10), Next::Frame { tag: 1, len: 2 });
        inp.take(2);
        assert_eq!(
            inp.next(10),
            Next::TooLong {
                len: 100,
                position: 10
            }
        );
    }

    #[test]
    fn a_full_socket_keeps_the_rest_for_later_and_a_closed_one_is_an_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut out = FrameOut::default();
        let big = vec![1u8; 1 << 20];
        out.push(1, &big);
        out.flush(&a).unwrap();
        assert!(
            out.pending() > 0,
            "a 1 MiB frame fits no socket buffer at once"
        );
        let mut inp = FrameIn::default();
        while out.pending() > 0 {
            inp.fill(&b);
            out.flush(&a).unwrap();
        }
        while inp.next(2 << 20) == Next::Partial {
            assert!(inp.fill(&b));
        }
        assert_eq!(inp.take(1 << 20).len(), 1 << 20);
        drop(b);
        out.push(2, b"x");
        assert!(out.flush(&a).is_err());
    }

    /// A little xorshift generator: the tests need variety, not quality.
    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        use std::io::Write;
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let (a, b) = UnixStream::pair().unwrap();
        let mut want = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..300u32 {
            let len = (next() % 3000) as usize;
            let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut out = FrameOut::default();
            out.push(i, &body);
            bytes.extend_from_slice(&out.buf);
            want.push((i, body));
        }
        let mut inp = FrameIn::default();
        let mut got = Vec::new();
        let mut off = 0;
        while got.len() < want.len() {
            assert!(
                off < bytes.len() || inp.next(4096) != Next::Partial,
                "stuck"
            );
            if off < bytes.len() {
                let n = ((next() % 700) as usize + 1).min(bytes.len() - off);
                (&a).write_all(&bytes[off..off + n]).unwrap();
                off += n;
            }
            inp.fill(&b);
            while let Next::Frame { tag, len } = inp.next(4096) {
                got.push((tag, inp.take(len).to_vec()));
            }
            assert!(!matches!(inp.next(4096), Next::TooLong { .. }));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn garbage_ends_in_whole_frames_a_violation_or_a_partial_never_a_panic() {
        use std::io::Write;
        for seed in 1..300u64 {
            let mut next = rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let (a, b) = UnixStream::pair().unwrap();
            let len = (next() % 200) as usize;
            let junk: Vec<u8> = (0..len).map(|_| (next() % 24) as u8).collect();
            (&a).write_all(&junk).unwrap();
            drop(a);
            let mut inp = FrameIn::default();
            while inp.fill(&b) {}
            assert!(inp.ended());
            let mut taken = 0;
            loop {
                match inp.next(16) {
                    Next::Frame { len, .. } => {
                        taken += SOCKET_FRAME_HEADER + inp.take(len).len();
                        assert!(taken <= junk.len());
                    }
                    Next::TooLong { len, position } => {
                        assert!(len > 16);
                        assert_eq!(position, taken as u64);
                        break;
                    }
                    Next::Partial => {
                        assert!(junk.len() - taken < SOCKET_FRAME_HEADER + 16 + 1);
                        break;
                    }
                }
            }
        }
    }
}
