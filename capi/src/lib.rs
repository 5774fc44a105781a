//! The C ABI of [`ringbell`]: channel clients and servers (with the reactor), and SPSC ring
//! ends over a memfd, as opaque handles and plain functions for C and C++.
//!
//! The header, `capi/include/ringbell.h`, is generated from this crate by cbindgen
//! (`scripts/c-check.sh` regenerates it and fails if the checked-in copy differs);
//! `capi/include/ringbell.hpp` wraps it for C++ (RAII handles, `std::span`,
//! `std::string_view`, exceptions). Build: `cargo build --release -p ringbell-c` gives
//! `target/release/libringbell_c.so` and `libringbell_c.a`.
//!
//! # Rules at the boundary
//!
//! - Every function that can fail returns an `int`: [`RB_OK`] or a negative `RB_E_*` code;
//!   [`rb_error_name`] names it and [`rb_last_error_message`] says what happened, per
//!   thread (like `errno` and `strerror`).
//! - No panic crosses into C: each function runs under `catch_unwind` and a panic comes back
//!   as [`RB_E_PANIC`].
//! - Nothing may unwind into Rust either: the callbacks a C program gives (a handler, a
//!   classifier) are called through `extern "C"` function pointers, and a C++ exception or a
//!   `longjmp` through them is undefined behaviour. The header says so; the C++ wrapper's
//!   trampolines are `noexcept` and catch everything.
//! - Pointers are checked for NULL; everything else a pointer promises (its length, its
//!   lifetime, one thread at a time) is the caller's, as each function's "Safety" says.
//!
//! # Examples
//!
//! The functions are callable from Rust too, which is how this crate tests them:
//!
//! ```
//! use ringbell_c::*;
//!
//! let mut fd = -1;
//! // SAFETY: valid out-pointers; the descriptor is closed below.
//! unsafe {
//!     assert_eq!(rb_spsc_create(4096, &mut fd), RB_OK);
//!     let (mut tx, mut rx) = (std::ptr::null_mut(), std::ptr::null_mut());
//!     assert_eq!(rb_producer_attach(fd, &mut tx), RB_OK);
//!     assert_eq!(rb_consumer_attach(fd, &mut rx), RB_OK);
//!     assert_eq!(rb_producer_send(tx, 7, b"hi".as_ptr(), 2, 0), RB_OK);
//!     let (mut buf, mut len, mut tag) = ([0u8; 16], 0usize, 0u32);
//!     assert_eq!(rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 16, &mut len, 0), RB_OK);
//!     assert_eq!((&buf[..len], tag), (&b"hi"[..], 7));
//!     rb_producer_close(tx);
//!     rb_consumer_close(rx);
//!     rustix::io::close(fd);
//! }
//! ```

#![allow(non_camel_case_types)] // C's names: rb_client, rb_server, …

mod client;
mod error;
mod server;
mod spsc;

use std::ffi::{CStr, c_char};

pub use client::*;
pub use error::{
    RB_E_BUFFER_TOO_SMALL, RB_E_BUSY, RB_E_CLOSED, RB_E_CORRUPT, RB_E_DISCONNECTED, RB_E_DROPPED,
    RB_E_EMPTY, RB_E_FAILED, RB_E_FORKED, RB_E_FULL, RB_E_HANDLER_PANICKED, RB_E_INVALID_ARGUMENT,
    RB_E_IO, RB_E_PANIC, RB_E_PROTOCOL, RB_E_REFUSED, RB_E_RESPONSE_TOO_LARGE, RB_E_SERVER_EXITED,
    RB_E_SHUTTING_DOWN, RB_E_STATE, RB_E_TIMEOUT, RB_E_TOO_LARGE, RB_OK, rb_error_name,
    rb_last_error_exit_status, rb_last_error_log_path, rb_last_error_message,
};
pub use server::*;
pub use spsc::*;

use error::Failure;

/// A timeout that waits without a deadline (a dead peer still ends the wait).
pub const RB_NO_TIMEOUT: u64 = u64::MAX;

/// Frees a handle made by `Box::into_raw` (NULL: nothing), catching a panic in its drop.
///
/// # Safety
///
/// `p` is NULL or from `Box::into_raw`, not freed before and not used after.
unsafe fn free<T>(p: *mut T) {
    if !p.is_null() {
        // A panic in the handle's drop stays on this side of the boundary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller's promise: from `Box::into_raw`, freed once, never used after.
            drop(unsafe { Box::from_raw(p) })
        }));
    }
}

/// An out-pointer, checked for NULL.
fn out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: every exported function's contract: NULL, or valid for writing a `T`, not
    // aliased during the call.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::invalid(what))
}

/// A NUL-terminated UTF-8 path argument.
fn path_arg<'a>(p: *const c_char) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid("path is NULL"));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string that lives through
    // the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::invalid("path is not UTF-8"))
}

/// A (pointer, length) argument as a slice; NULL is allowed with length 0.
fn slice_arg<'a>(p: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    match (p.is_null(), len) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Failure::invalid("a NULL buffer with a nonzero length")),
        // SAFETY: not NULL, and the caller promises `len` readable bytes that stay
        // unchanged through the call.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(p, len) }),
    }
}
