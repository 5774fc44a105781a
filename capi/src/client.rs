//! The channel client: connect, call with a deadline, pipelined send and receive, close.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use ringbell::channel::{Client, Response, Status};

use crate::error::{Failure, guard, status_code};
use crate::{RB_NO_TIMEOUT, out, path_arg, slice_arg};

/// A connection to a channel server (opaque). Made by rb_client_connect(), freed by
/// rb_client_close().
///
/// Thread safety: a client may be moved to another thread, but must not be used from two
/// threads at once (lock around it, or give each thread its own).
pub struct rb_client {
    inner: Client,
}

fn client_mut<'a>(c: *mut rb_client) -> Result<&'a mut Client, Failure> {
    // SAFETY: the caller promises `c` is NULL or a live client from rb_client_connect()
    // that no other thread uses now (the header's rule).
    unsafe { c.as_mut() }
        .map(|c| &mut c.inner)
        .ok_or_else(|| Failure::invalid("client is NULL"))
}

/// A timeout in microseconds; `None` for RB_NO_TIMEOUT.
fn timeout(us: u64) -> Option<Duration> {
    (us != RB_NO_TIMEOUT).then(|| Duration::from_micros(us))
}

/// Copies as much of `body` as fits into the caller's buffer and writes its whole length to
/// `*len`; says whether all of it fitted.
fn deliver(body: &[u8], buf: *mut u8, cap: usize, len: *mut usize) -> Result<bool, Failure> {
    let len = out(len, "response_len is NULL")?;
    let n = body.len().min(cap);
    if n > 0 {
        if buf.is_null() {
            return Err(Failure::invalid("response buffer is NULL"));
        }
        // SAFETY: `buf` is not NULL and the caller promises `cap` writable bytes there; `n`
        // is at most `cap`; a Vec's bytes never overlap the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), buf, n) };
    }
    *len = body.len();
    Ok(n == body.len())
}

/// Connects to the channel server listening at `path` (a NUL-terminated UTF-8 path) and
/// writes the new client to *client. Fails with RB_E_REFUSED if the server turns it away,
/// RB_E_IO if nobody listens there, RB_E_TIMEOUT if the server does not greet it in time.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `client` is NULL or valid for writing a
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_connect(
    path: *const c_char,
    client: *mut *mut rb_client,
) -> c_int {
    guard(|| {
        let slot = out(client, "client is NULL")?;
        let path = path_arg(path)?;
        let inner = Client::connect(path)?;
        *slot = Box::into_raw(Box::new(rb_client { inner }));
        Ok(())
    })
}

/// The largest request body the server takes, in bytes (0 for a NULL client).
///
/// # Safety
///
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_max_request(client: *const rb_client) -> usize {
    // SAFETY: the caller promises NULL or a live client.
    unsafe { client.as_ref() }.map_or(0, |c| c.inner.max_request())
}

/// The largest response body the server sends, in bytes (0 for a NULL client): a response
/// buffer this long is always long enough.
///
/// # Safety
///
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_max_response(client: *const rb_client) -> usize {
    // SAFETY: the caller promises NULL or a live client.
    unsafe { client.as_ref() }.map_or(0, |c| c.inner.max_response())
}

/// Sends a request and waits for its response, at most `timeout_us` microseconds for both
/// (RB_NO_TIMEOUT: no deadline; a dead server still ends the wait).
///
/// On RB_OK the response body is in `response` and its length in *response_len. A status
/// other than Ok comes back as its code (RB_E_BUSY, RB_E_FAILED, RB_E_RESPONSE_TOO_LARGE, …),
/// with the body (a failure's message) delivered the same way. A body longer than
/// `response_cap` is cut to it and *response_len says its whole length; the status still
/// decides the code, so RB_E_BUFFER_TOO_SMALL means the request succeeded and its answer was
/// cut (the rest is lost: a buffer of rb_client_max_response() bytes is never too small). On
/// RB_E_TIMEOUT the response, if it comes later, is discarded; the request may have run.
///
/// # Safety
///
/// `client` is a live client used by no other thread now; `request` is valid for reading
/// `request_len` bytes (or NULL with length 0); `response` is valid for writing
/// `response_cap` bytes (or NULL with capacity 0); `response_len` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_call(
    client: *mut rb_client,
    request: *const u8,
    request_len: usize,
    response: *mut u8,
    response_cap: usize,
    response_len: *mut usize,
    timeout_us: u64,
) -> c_int {
    guard(|| {
        let c = client_mut(client)?;
        let req = slice_arg(request, request_len)?;
        let r = match timeout(timeout_us) {
            None => c.call_response(req),
            Some(t) => c.call_response_timeout(req, t),
        }?;
        answer(r, response, response_cap, response_len)
    })
}

/// Delivers a response's body and turns its status into the return code: an error status
/// first, then a body cut short.
fn answer(r: Response, buf: *mut u8, cap: usize, len: *mut usize) -> Result<(), Failure> {
    let whole = deliver(&r.body, buf, cap, len)?;
    match r.status {
        Status::Ok if whole => Ok(()),
        Status::Ok => Err(Failure::new(
            crate::error::RB_E_BUFFER_TOO_SMALL,
            format!(
                "an answer of {} bytes cut to the buffer's {cap}",
                r.body.len()
            ),
        )),
        s => Err(Failure::new(
            status_code(s),
            match s {
                Status::Failed => String::from_utf8_lossy(&r.body).into_owned(),
                s => format!("the server answered {s:?}"),
            },
        )),
    }
}

/// Sends a request without waiting for its response (pipelining), waiting at most
/// `timeout_us` for room; writes its id to *id. Responses come back in request order
/// through rb_client_recv().
///
/// # Safety
///
/// As rb_client_call() for `client` and `request`; `id` is NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_send(
    client: *mut rb_client,
    request: *const u8,
    request_len: usize,
    id: *mut u32,
    timeout_us: u64,
) -> c_int {
    guard(|| {
        let c = client_mut(client)?;
        let req = slice_arg(request, request_len)?;
        let sent = match timeout(timeout_us) {
            None => c.send_request(req),
            Some(t) => c.send_request_timeout(req, t),
        }?;
        // SAFETY: the caller promises NULL or valid for writing a u32.
        if let Some(id) = unsafe { id.as_mut() } {
            *id = sent.0;
        }
        Ok(())
    })
}

/// Receives the next response to a request sent with rb_client_send(), waiting at most
/// `timeout_us`; writes its request id to *id (if not NULL) and its body as
/// rb_client_call() does, and returns its status as rb_client_call() does.
///
/// # Safety
///
/// As rb_client_call() for `client`, `response` and `response_len`; `id` is NULL or valid
/// for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_recv(
    client: *mut rb_client,
    response: *mut u8,
    response_cap: usize,
    response_len: *mut usize,
    id: *mut u32,
    timeout_us: u64,
) -> c_int {
    guard(|| {
        let c = client_mut(client)?;
        let r = match timeout(timeout_us) {
            None => c.recv_response(),
            Some(t) => c.recv_response_timeout(t),
        }?;
        // SAFETY: the caller promises NULL or valid for writing a u32.
        if let Some(id) = unsafe { id.as_mut() } {
            *id = r.id.0;
        }
        answer(r, response, response_cap, response_len)
    })
}

/// Closes the connection and frees the client (NULL: nothing). Responses not received are
/// discarded.
///
/// # Safety
///
/// `client` is NULL or a live client no other thread uses; it must not be used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_client_close(client: *mut rb_client) {
    // SAFETY: NULL, or a pointer from rb_client_connect()'s Box, closed once (the caller's rule).
    unsafe { crate::free(client) };
}
