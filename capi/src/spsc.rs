//! SPSC ring ends over a memfd: make a ring, pass its descriptor to another process (over a
//! Unix socket, or by inheritance), attach a producer on one side and a consumer on the
//! other.

use std::ffi::c_int;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use ringbell::region::{Region, RegionError, Spsc};
use ringbell::{RecvError, SendError, spsc};

use crate::error::{Failure, RB_E_BUFFER_TOO_SMALL, guard};
use crate::{RB_NO_TIMEOUT, out, slice_arg};

/// The producing end of an SPSC ring (opaque). One thread at a time; it may move between
/// threads.
pub struct rb_producer {
    inner: spsc::Producer<Region<Spsc>>,
}

/// The consuming end of an SPSC ring (opaque). One thread at a time; it may move between
/// threads.
pub struct rb_consumer {
    inner: spsc::Consumer<Region<Spsc>>,
    /// Where a frame lands before it is copied out (at most the ring's frame cap).
    scratch: Vec<u8>,
}

/// Makes an SPSC ring of `capacity` bytes (a power of two, 16 bytes to 2 GiB; 65536 is a
/// good start) in a new memfd and writes its descriptor to *fd. The caller owns the
/// descriptor: pass it to the other process (over a Unix socket with SCM_RIGHTS, or across
/// fork(); it is close-on-exec, so clear FD_CLOEXEC to pass it across exec()), attach an end
/// with rb_producer_attach() or rb_consumer_attach(), and close() it when done (attached
/// ends keep their own). RB_E_INVALID_ARGUMENT for a capacity out of range, RB_E_IO if the
/// system refuses the memfd or the mapping.
///
/// # Safety
///
/// `fd` is NULL or valid for writing an int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_spsc_create(capacity: usize, fd: *mut c_int) -> c_int {
    guard(|| {
        let slot = out(fd, "fd is NULL")?;
        // A header this call would write with bad values is the caller's capacity.
        let region = Region::<Spsc>::create(&spsc::Config::new(capacity)).map_err(|e| match e {
            RegionError::Header(h) => Failure::invalid(&h.to_string()),
            e => e.into(),
        })?;
        let dup = region.fd().try_clone_to_owned()?;
        *slot = dup.into_raw_fd();
        Ok(())
    })
}

/// Maps the ring in `fd` (a duplicate is kept: the caller still owns `fd`) with the region's
/// header checked: a descriptor that is not a memfd gives RB_E_INVALID_ARGUMENT, a memfd
/// that does not hold a valid ring RB_E_CORRUPT — never a crash.
fn open(fd: c_int) -> Result<Region<Spsc>, Failure> {
    if fd < 0 {
        return Err(Failure::invalid("fd is negative"));
    }
    // SAFETY: the caller promises `fd` is an open descriptor for the length of this call;
    // it is only borrowed here, to duplicate it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned: OwnedFd = borrowed.try_clone_to_owned()?;
    Ok(Region::<Spsc>::open(owned)?)
}

/// Attaches the producing end of the ring in `fd` and writes it to *producer. Fails with
/// RB_E_STATE if another producer holds the ring.
///
/// # Safety
///
/// `fd` is an open descriptor; `producer` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_producer_attach(fd: c_int, producer: *mut *mut rb_producer) -> c_int {
    guard(|| {
        let slot = out(producer, "producer is NULL")?;
        let inner = open(fd)?.producer()?;
        *slot = Box::into_raw(Box::new(rb_producer { inner }));
        Ok(())
    })
}

/// Attaches the consuming end of the ring in `fd` and writes it to *consumer. Fails with
/// RB_E_STATE if another consumer holds the ring.
///
/// # Safety
///
/// `fd` is an open descriptor; `consumer` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_consumer_attach(fd: c_int, consumer: *mut *mut rb_consumer) -> c_int {
    guard(|| {
        let slot = out(consumer, "consumer is NULL")?;
        let inner = open(fd)?.consumer()?;
        *slot = Box::into_raw(Box::new(rb_consumer {
            inner,
            scratch: Vec::new(),
        }));
        Ok(())
    })
}

/// Sends one frame (`tag` and `len` bytes of `data`), waiting at most `timeout_us` for room
/// (0: do not wait, RB_E_FULL if there is none; RB_NO_TIMEOUT: no deadline, a closed or
/// dead consumer still ends the wait). RB_E_TOO_LARGE for a frame above the ring's cap,
/// RB_E_CLOSED if the consumer closed the ring.
///
/// # Safety
///
/// `producer` is a live producer no other thread uses now; `data` is valid for reading
/// `len` bytes (or NULL with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_producer_send(
    producer: *mut rb_producer,
    tag: u32,
    data: *const u8,
    len: usize,
    timeout_us: u64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller promises NULL or a live producer used by this thread only.
        let p = unsafe { producer.as_mut() }.ok_or_else(|| Failure::invalid("producer is NULL"))?;
        let data = slice_arg(data, len)?;
        let sent: Result<(), SendError> = match timeout_us {
            0 => p.inner.try_send(tag, data),
            RB_NO_TIMEOUT => p.inner.send(tag, data),
            us => p.inner.send_timeout(tag, data, Duration::from_micros(us)),
        };
        Ok(sent?)
    })
}

/// Receives one frame into `buf`, waiting at most `timeout_us` (0: do not wait, RB_E_EMPTY
/// if there is none; RB_NO_TIMEOUT: no deadline). Writes its tag to *tag (if not NULL) and
/// its length to *len. RB_E_BUFFER_TOO_SMALL if it does not fit: *len is the length
/// needed and the frame stays in the ring. RB_E_CLOSED once the producer closed the ring
/// and everything in it was received.
///
/// # Safety
///
/// `consumer` is a live consumer no other thread uses now; `buf` is valid for writing
/// `cap` bytes, which may be uninitialized (or NULL with 0); `len` is valid for writing;
/// `tag` is NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_consumer_recv(
    consumer: *mut rb_consumer,
    tag: *mut u32,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_us: u64,
) -> c_int {
    guard(|| {
        // SAFETY: the caller promises NULL or a live consumer used by this thread only.
        let c = unsafe { consumer.as_mut() }.ok_or_else(|| Failure::invalid("consumer is NULL"))?;
        let len = out(len, "len is NULL")?;
        if cap > 0 && buf.is_null() {
            return Err(Failure::invalid("buf is NULL"));
        }
        // The frame lands in our own (initialized) scratch first, cut to the caller's
        // capacity so that a frame that does not fit stays in the ring; then it is copied to
        // the caller's buffer, which C may leave uninitialized and so is never made a slice.
        let fit = cap.min(c.inner.max_frame());
        if c.scratch.len() < fit {
            c.scratch.resize(fit, 0);
        }
        let scratch = &mut c.scratch[..fit];
        let got = match timeout_us {
            0 => c.inner.try_recv_into(scratch),
            RB_NO_TIMEOUT => c.inner.recv_into(scratch),
            us => c
                .inner
                .recv_into_timeout(scratch, Duration::from_micros(us)),
        };
        if let Ok((_, n @ 1..)) = got {
            // SAFETY: `buf` is not NULL when `n` > 0 (then `cap` >= `n` > 0, checked above),
            // the caller promises `cap` writable bytes there, and the scratch is ours.
            unsafe { std::ptr::copy_nonoverlapping(c.scratch.as_ptr(), buf, n) };
        }
        match got {
            Ok((t, n)) => {
                *len = n;
                // SAFETY: the caller promises NULL or valid for writing a u32.
                if let Some(tag) = unsafe { tag.as_mut() } {
                    *tag = t;
                }
                Ok(())
            }
            Err(RecvError::BufferTooSmall { needed }) => {
                *len = needed;
                Err(Failure::new(
                    RB_E_BUFFER_TOO_SMALL,
                    format!("a frame of {needed} bytes, a buffer of {cap}"),
                ))
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Closes the producing end (the consumer sees RB_E_CLOSED after the frames sent) and frees
/// it. NULL: nothing.
///
/// # Safety
///
/// `producer` is NULL or a live producer no other thread uses; it must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_producer_close(producer: *mut rb_producer) {
    // SAFETY: NULL, or a pointer from rb_producer_attach()'s Box, closed once (the caller's rule).
    unsafe { crate::free(producer) };
}

/// Closes the consuming end (the producer's sends fail with RB_E_CLOSED) and frees it.
/// NULL: nothing.
///
/// # Safety
///
/// `consumer` is NULL or a live consumer no other thread uses; it must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_consumer_close(consumer: *mut rb_consumer) {
    // SAFETY: NULL, or a pointer from rb_consumer_attach()'s Box, closed once (the caller's rule).
    unsafe { crate::free(consumer) };
}
