//! Error codes, the thread's last error, and the guard every exported function runs in.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use ringbell::channel::{CallError, ChannelError, ServerExit, StatsError, Status};
use ringbell::region::RegionError;
use ringbell::{AttachError, RecvError, SendError};

/// Success.
pub const RB_OK: c_int = 0;
/// An argument is invalid: a NULL pointer where one is needed, a path that is not UTF-8, a
/// size out of range.
pub const RB_E_INVALID_ARGUMENT: c_int = -1;
/// The deadline passed.
pub const RB_E_TIMEOUT: c_int = -2;
/// No room now (a call that does not wait).
pub const RB_E_FULL: c_int = -3;
/// Nothing to receive now (a call that does not wait).
pub const RB_E_EMPTY: c_int = -4;
/// The peer is gone: the server, or the other end of a ring.
pub const RB_E_DISCONNECTED: c_int = -5;
/// The server process ended; rb_last_error_exit_status() and rb_last_error_log_path() tell
/// how and where its output is.
pub const RB_E_SERVER_EXITED: c_int = -6;
/// A request or frame is larger than the peer takes.
pub const RB_E_TOO_LARGE: c_int = -7;
/// The buffer given is shorter than what arrived; the length it needs is written where the
/// length goes.
pub const RB_E_BUFFER_TOO_SMALL: c_int = -8;
/// The server answered Busy: too many requests in flight; it did not run this one.
pub const RB_E_BUSY: c_int = -9;
/// The server's handler panicked (or threw) on this request.
pub const RB_E_HANDLER_PANICKED: c_int = -10;
/// The server's handler dropped the request unanswered.
pub const RB_E_DROPPED: c_int = -11;
/// The server's handler reported a failure; its message is the response body and
/// rb_last_error_message().
pub const RB_E_FAILED: c_int = -12;
/// The server was shutting down and did not run the request.
pub const RB_E_SHUTTING_DOWN: c_int = -13;
/// Shared memory is corrupt: the peer wrote something no correct peer writes.
pub const RB_E_CORRUPT: c_int = -14;
/// The peer broke the protocol (a wrong greeting, an unknown status).
pub const RB_E_PROTOCOL: c_int = -15;
/// The server refused the connection: full, another user, a per-user or per-process limit,
/// or out of resources (rb_last_error_message() says which).
pub const RB_E_REFUSED: c_int = -16;
/// A system call failed; rb_last_error_message() has the system's message.
pub const RB_E_IO: c_int = -17;
/// The handle was inherited across fork(); only the process that made it may use it.
pub const RB_E_FORKED: c_int = -18;
/// The ring was closed by its other end and holds nothing more.
pub const RB_E_CLOSED: c_int = -19;
/// A Rust panic inside ringbell was caught at the boundary (a bug: please report it).
pub const RB_E_PANIC: c_int = -20;
/// The handle is in the wrong state for this call (a server already running).
pub const RB_E_STATE: c_int = -21;
/// The server's handler answered with more than the response cap; the client gets no body.
/// (RB_E_TOO_LARGE is for what the caller sends.)
pub const RB_E_RESPONSE_TOO_LARGE: c_int = -22;

/// Every code and its name, for rb_error_name().
const NAMES: &[(c_int, &str)] = &[
    (RB_OK, "RB_OK\0"),
    (RB_E_INVALID_ARGUMENT, "RB_E_INVALID_ARGUMENT\0"),
    (RB_E_TIMEOUT, "RB_E_TIMEOUT\0"),
    (RB_E_FULL, "RB_E_FULL\0"),
    (RB_E_EMPTY, "RB_E_EMPTY\0"),
    (RB_E_DISCONNECTED, "RB_E_DISCONNECTED\0"),
    (RB_E_SERVER_EXITED, "RB_E_SERVER_EXITED\0"),
    (RB_E_TOO_LARGE, "RB_E_TOO_LARGE\0"),
    (RB_E_BUFFER_TOO_SMALL, "RB_E_BUFFER_TOO_SMALL\0"),
    (RB_E_BUSY, "RB_E_BUSY\0"),
    (RB_E_HANDLER_PANICKED, "RB_E_HANDLER_PANICKED\0"),
    (RB_E_DROPPED, "RB_E_DROPPED\0"),
    (RB_E_FAILED, "RB_E_FAILED\0"),
    (RB_E_SHUTTING_DOWN, "RB_E_SHUTTING_DOWN\0"),
    (RB_E_CORRUPT, "RB_E_CORRUPT\0"),
    (RB_E_PROTOCOL, "RB_E_PROTOCOL\0"),
    (RB_E_REFUSED, "RB_E_REFUSED\0"),
    (RB_E_IO, "RB_E_IO\0"),
    (RB_E_FORKED, "RB_E_FORKED\0"),
    (RB_E_CLOSED, "RB_E_CLOSED\0"),
    (RB_E_PANIC, "RB_E_PANIC\0"),
    (RB_E_STATE, "RB_E_STATE\0"),
    (RB_E_RESPONSE_TOO_LARGE, "RB_E_RESPONSE_TOO_LARGE\0"),
];

/// The last failure on this thread: its message and, for a server that ended, how.
#[derive(Default)]
struct Last {
    message: Option<CString>,
    exit_status: Option<c_int>,
    log: Option<CString>,
}

thread_local! {
    static LAST: RefCell<Last> = RefCell::new(Last::default());
}

/// A failure: its code and what to say about it.
pub(crate) struct Failure {
    pub(crate) code: c_int,
    message: String,
    exit: Option<ServerExit>,
}

impl Failure {
    pub(crate) fn new(code: c_int, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            exit: None,
        }
    }

    pub(crate) fn invalid(what: &str) -> Self {
        Self::new(RB_E_INVALID_ARGUMENT, what)
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn record(f: &Failure) {
    // `try_with`: a call from a thread-local destructor, after this thread's storage is gone,
    // records nothing rather than panicking.
    let _ = LAST.try_with(|l| {
        let mut l = l.borrow_mut();
        l.message = Some(cstring(&f.message));
        l.exit_status = f.exit.as_ref().and_then(|e| e.status).and_then(|s| {
            s.code()
                .or_else(|| std::os::unix::process::ExitStatusExt::signal(&s).map(|n| 128 + n))
        });
        l.log = f.exit.as_ref().map(|e| cstring(&e.log.to_string_lossy()));
    });
}

/// Runs an exported function's body: its failure is recorded for this thread and returned
/// as a code; a panic is caught and returned as [`RB_E_PANIC`].
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return RB_OK,
        Ok(Err(f)) => f,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Failure::new(RB_E_PANIC, format!("panic inside ringbell: {what}"))
        }
    };
    record(&failure);
    failure.code
}

/// The name of an error code ("RB_E_TIMEOUT"), or "RB_E_UNKNOWN" for a code that is not one.
/// The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn rb_error_name(code: c_int) -> *const c_char {
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("RB_E_UNKNOWN\0", |(_, n)| n)
        .as_ptr()
        .cast()
}

/// What went wrong in the last call that failed on this thread, or "" if none did. Valid
/// until the next failing call on this thread; copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn rb_last_error_message() -> *const c_char {
    LAST.try_with(|l| {
        l.borrow()
            .message
            .as_ref()
            .map_or(c"".as_ptr(), |m| m.as_ptr())
    })
    .unwrap_or(c"".as_ptr())
}

/// If the last failure on this thread was RB_E_SERVER_EXITED with a known end, writes the
/// server's exit code (128 + the signal number if a signal ended it) to *status and returns
/// RB_OK; otherwise returns RB_E_INVALID_ARGUMENT (also for a NULL status) and writes
/// nothing.
///
/// # Safety
///
/// `status` is NULL or valid for writing an int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_last_error_exit_status(status: *mut c_int) -> c_int {
    let code = LAST.try_with(|l| l.borrow().exit_status).ok().flatten();
    match (code, status.is_null()) {
        (Some(c), false) => {
            // SAFETY: not NULL, and the caller promises it is valid for writing an int.
            unsafe { status.write(c) };
            RB_OK
        }
        _ => RB_E_INVALID_ARGUMENT,
    }
}

/// If the last failure on this thread was RB_E_SERVER_EXITED, the file holding what the
/// server printed; NULL otherwise. Valid until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn rb_last_error_log_path() -> *const c_char {
    LAST.try_with(|l| {
        l.borrow()
            .log
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_ptr())
    })
    .unwrap_or(std::ptr::null())
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        let code = match e {
            CallError::TooLarge { .. } => RB_E_TOO_LARGE,
            CallError::Timeout => RB_E_TIMEOUT,
            CallError::Full => RB_E_FULL,
            CallError::Empty => RB_E_EMPTY,
            CallError::Disconnected => RB_E_DISCONNECTED,
            CallError::Forked => RB_E_FORKED,
            CallError::ServerExited(exit) => {
                return Self {
                    code: RB_E_SERVER_EXITED,
                    message,
                    exit: Some((*exit).clone()),
                };
            }
            CallError::Server(s) => status_code(s),
            CallError::Corrupt(_) => RB_E_CORRUPT,
            CallError::BadStatus { .. } => RB_E_PROTOCOL,
            _ => RB_E_PROTOCOL,
        };
        Self::new(code, message)
    }
}

/// The code of a response status (RB_OK for Ok).
pub(crate) fn status_code(s: Status) -> c_int {
    match s {
        Status::Ok => RB_OK,
        Status::Busy => RB_E_BUSY,
        Status::Panicked => RB_E_HANDLER_PANICKED,
        Status::Dropped => RB_E_DROPPED,
        Status::TooLarge => RB_E_RESPONSE_TOO_LARGE,
        Status::Failed => RB_E_FAILED,
        Status::ShuttingDown => RB_E_SHUTTING_DOWN,
        _ => RB_E_PROTOCOL,
    }
}

impl From<ChannelError> for Failure {
    fn from(e: ChannelError) -> Self {
        let message = e.to_string();
        let code = match e {
            ChannelError::ServerFull
            | ChannelError::NotAdmitted
            | ChannelError::LimitReached
            | ChannelError::ServerOutOfResources => RB_E_REFUSED,
            ChannelError::Forked => RB_E_FORKED,
            ChannelError::Protocol(_) => RB_E_PROTOCOL,
            ChannelError::Timeout => RB_E_TIMEOUT,
            ChannelError::PathTooLong { .. } | ChannelError::InvalidPath => RB_E_INVALID_ARGUMENT,
            ChannelError::Config(_) => RB_E_INVALID_ARGUMENT,
            ChannelError::Attach(AttachError::Corrupt(_) | AttachError::Header(_))
            | ChannelError::Region(RegionError::Header(_)) => RB_E_CORRUPT,
            _ => RB_E_IO,
        };
        Self::new(code, message)
    }
}

impl From<StatsError> for Failure {
    fn from(e: StatsError) -> Self {
        match e {
            StatsError::Call(c) => c.into(),
            StatsError::Refused(_) => Self::new(RB_E_REFUSED, e.to_string()),
            _ => Self::new(RB_E_PROTOCOL, e.to_string()),
        }
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        let message = e.to_string();
        let code = match e {
            SendError::TooLarge { .. } => RB_E_TOO_LARGE,
            SendError::Full => RB_E_FULL,
            SendError::Closed => RB_E_CLOSED,
            SendError::Timeout => RB_E_TIMEOUT,
            SendError::Disconnected => RB_E_DISCONNECTED,
            SendError::Forked => RB_E_FORKED,
            _ => RB_E_CORRUPT,
        };
        Self::new(code, message)
    }
}

impl From<RecvError> for Failure {
    fn from(e: RecvError) -> Self {
        let message = e.to_string();
        let code = match e {
            RecvError::Empty => RB_E_EMPTY,
            RecvError::Closed => RB_E_CLOSED,
            RecvError::Timeout => RB_E_TIMEOUT,
            RecvError::BufferTooSmall { .. } => RB_E_BUFFER_TOO_SMALL,
            RecvError::Disconnected => RB_E_DISCONNECTED,
            RecvError::Forked => RB_E_FORKED,
            _ => RB_E_CORRUPT,
        };
        Self::new(code, message)
    }
}

impl From<AttachError> for Failure {
    fn from(e: AttachError) -> Self {
        let code = match e {
            AttachError::Corrupt(_) => RB_E_CORRUPT,
            AttachError::RoleTaken { .. } | AttachError::RoleClosed => RB_E_STATE,
            _ => RB_E_INVALID_ARGUMENT,
        };
        Self::new(code, e.to_string())
    }
}

impl From<RegionError> for Failure {
    fn from(e: RegionError) -> Self {
        let code = match e {
            RegionError::Io { .. } => RB_E_IO,
            RegionError::Header(_) | RegionError::MissingSeals { .. } => RB_E_CORRUPT,
            _ => RB_E_INVALID_ARGUMENT,
        };
        Self::new(code, e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::new(RB_E_IO, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_at_the_boundary_and_said() {
        let code = guard(|| panic!("boom {}", 42));
        assert_eq!(code, RB_E_PANIC);
        // SAFETY: a NUL-terminated string the library keeps until the next failure here.
        let msg = unsafe { std::ffi::CStr::from_ptr(rb_last_error_message()) };
        assert_eq!(msg.to_str().unwrap(), "panic inside ringbell: boom 42");
        assert_eq!(guard(|| Ok(())), RB_OK);
        // The message stays until the next failure.
        // SAFETY: as above.
        let msg = unsafe { std::ffi::CStr::from_ptr(rb_last_error_message()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }

    #[test]
    fn a_nul_inside_a_message_does_not_lose_it() {
        assert_eq!(guard(|| Err(Failure::new(RB_E_IO, "a\0b"))), RB_E_IO);
        // SAFETY: as above.
        let msg = unsafe { std::ffi::CStr::from_ptr(rb_last_error_message()) };
        assert_eq!(msg.to_str().unwrap(), "a b");
    }
}
