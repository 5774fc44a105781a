//! The C ABI called as C calls it: bad arguments are codes, not crashes; a server with
//! `extern "C"` callbacks serves the Rust client; responders answer from other threads; a
//! refusing classifier; ring ends over a descriptor that is not a ring.
//!
//! Every wait has a deadline, and a watchdog ends the process if a test hangs anyway.

use std::ffi::{CStr, CString, c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::Once;
use std::time::Duration;

use ringbell::channel::{Client, Status};
use ringbell_c::*;

const T_US: u64 = 10_000_000;

fn watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(120));
            eprintln!("capi tests: watchdog: a test hung for 120 s");
            std::process::abort();
        });
    });
}

fn sock(name: &str) -> CString {
    let dir = std::env::temp_dir().join(format!("ringbell-capi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    CString::new(dir.join("s.sock").to_str().unwrap()).unwrap()
}

fn last_message() -> String {
    // SAFETY: a NUL-terminated string the library keeps until the next failure here.
    unsafe { CStr::from_ptr(rb_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_code_has_its_own_name_and_unknown_codes_are_named_so() {
    let mut names = std::collections::HashSet::new();
    for code in -22..=0 {
        // SAFETY: static NUL-terminated strings.
        let name = unsafe { CStr::from_ptr(rb_error_name(code)) }
            .to_str()
            .unwrap();
        assert!(
            name.starts_with("RB_") && name != "RB_E_UNKNOWN",
            "{code}: {name}"
        );
        assert!(names.insert(name), "{name} twice");
    }
    for code in [1, -23, c_int::MIN, c_int::MAX] {
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(rb_error_name(code)) };
        assert_eq!(name.to_str().unwrap(), "RB_E_UNKNOWN");
    }
}

#[test]
fn null_and_bad_arguments_are_codes_with_messages() {
    let mut len = 0usize;
    let mut client = null_mut();
    // SAFETY: every pointer is NULL or valid; the functions must check the NULLs.
    unsafe {
        assert_eq!(
            rb_client_connect(null(), &mut client),
            RB_E_INVALID_ARGUMENT
        );
        assert!(last_message().contains("path"), "{}", last_message());
        let nowhere = CString::new("/nonexistent/dir/s.sock").unwrap();
        assert_eq!(
            rb_client_connect(nowhere.as_ptr(), null_mut()),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(rb_client_connect(nowhere.as_ptr(), &mut client), RB_E_IO);
        assert!(client.is_null());
        assert!(!last_message().is_empty());
        assert_eq!(
            rb_client_call(null_mut(), null(), 0, null_mut(), 0, &mut len, 0),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(
            rb_client_send(null_mut(), null(), 0, null_mut(), 0),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(
            rb_client_recv(null_mut(), null_mut(), 0, &mut len, null_mut(), 0),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(rb_client_max_response(null()), 0);
        rb_client_close(null_mut());
        assert_eq!(rb_server_run(null_mut()), RB_E_INVALID_ARGUMENT);
        assert_eq!(rb_server_stop(null()), RB_E_INVALID_ARGUMENT);
        rb_server_free(null_mut());
        assert_eq!(rb_respond(null_mut(), null(), 0), RB_E_INVALID_ARGUMENT);
        rb_responder_drop(null_mut());
        assert_eq!(rb_spsc_create(1000, &mut 0), RB_E_INVALID_ARGUMENT); // not a power of two
        assert_eq!(
            rb_producer_attach(-1, &mut null_mut()),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(
            rb_consumer_recv(null_mut(), null_mut(), null_mut(), 0, &mut len, 0),
            RB_E_INVALID_ARGUMENT
        );
        rb_producer_close(null_mut());
        rb_consumer_close(null_mut());
        let mut status = 0;
        assert_eq!(
            rb_last_error_exit_status(&mut status),
            RB_E_INVALID_ARGUMENT
        );
        assert!(rb_last_error_log_path().is_null());
    }
}

#[test]
fn a_descriptor_that_is_not_a_ring_is_refused() {
    let file = tempfile_with(b"this is not a ringbell region at all, only some text");
    let mut tx = null_mut();
    // SAFETY: an open descriptor and a valid out-pointer.
    let rc = unsafe { rb_producer_attach(file.0, &mut tx) };
    assert!(rc == RB_E_INVALID_ARGUMENT || rc == RB_E_CORRUPT, "{}", rc);
    assert!(tx.is_null());
    // SAFETY: the descriptor is ours.
    unsafe { libc_close(file.0) };
}

struct RawFd(c_int);

fn tempfile_with(bytes: &[u8]) -> RawFd {
    use std::io::Write;
    use std::os::fd::IntoRawFd;
    let path = std::env::temp_dir().join(format!("ringbell-capi-notaring-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    RawFd(f.into_raw_fd())
}

/// # Safety
///
/// `fd` is an open descriptor this test owns.
unsafe fn libc_close(fd: c_int) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: the caller's promise.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

#[test]
fn a_short_buffer_keeps_the_frame_and_says_how_long_it_is() {
    let mut fd = -1;
    // SAFETY: valid out-pointers and buffers of the lengths given; the descriptor is closed.
    unsafe {
        assert_eq!(rb_spsc_create(4096, &mut fd), RB_OK);
        let (mut tx, mut rx) = (null_mut(), null_mut());
        assert_eq!(rb_producer_attach(fd, &mut tx), RB_OK);
        assert_eq!(rb_consumer_attach(fd, &mut rx), RB_OK);
        let mut second = null_mut();
        assert_eq!(rb_producer_attach(fd, &mut second), RB_E_STATE); // one producer a ring
        assert_eq!(
            rb_producer_send(tx, 9, b"0123456789".as_ptr(), 10, T_US),
            RB_OK
        );
        let (mut buf, mut len, mut tag) = ([0u8; 16], 0usize, 0u32);
        assert_eq!(
            rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 4, &mut len, 0),
            RB_E_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 10);
        assert_eq!(
            rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 16, &mut len, 0),
            RB_OK
        );
        assert_eq!((&buf[..len], tag), (&b"0123456789"[..], 9));
        assert_eq!(
            rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 16, &mut len, 0),
            RB_E_EMPTY
        );
        assert_eq!(
            rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 16, &mut len, 1000),
            RB_E_TIMEOUT
        );
        let big = vec![0u8; 4096];
        assert_eq!(
            rb_producer_send(tx, 0, big.as_ptr(), big.len(), 0),
            RB_E_TOO_LARGE
        );
        rb_producer_close(tx);
        assert_eq!(
            rb_consumer_recv(rx, &mut tag, buf.as_mut_ptr(), 16, &mut len, T_US),
            RB_E_CLOSED
        );
        rb_consumer_close(rx);
        libc_close(fd);
    }
}

/// What the test server's callbacks share (its `context`).
struct Shared {
    handled: std::sync::atomic::AtomicUsize,
}

unsafe extern "C" fn handler(context: *mut c_void, req: *const rb_request, res: *mut rb_responder) {
    // SAFETY: the context is the test's `Shared`, alive until the server is freed; the
    // request is valid during this call.
    let (shared, req) = unsafe { (&*(context as *const Shared), &*req) };
    shared
        .handled
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let body = if req.len == 0 {
        Vec::new()
    } else {
        // SAFETY: `len` bytes at `body`, valid during this call.
        unsafe { std::slice::from_raw_parts(req.body, req.len) }.to_vec()
    };
    let res = res as usize; // crosses to another thread: the responder may be answered anywhere
    match body.as_slice() {
        b"fail" => {
            // SAFETY: the responder from this call, consumed once.
            unsafe { rb_respond_failed(res as *mut rb_responder, b"it failed".as_ptr(), 9) };
        }
        b"drop" => {
            // SAFETY: as above.
            unsafe { rb_responder_drop(res as *mut rb_responder) };
        }
        _ => {
            std::thread::spawn(move || {
                // SAFETY: as above, on another thread, which the header allows.
                let rc = unsafe { rb_respond(res as *mut rb_responder, body.as_ptr(), body.len()) };
                assert_eq!(rc, RB_OK);
            });
        }
    }
}

unsafe extern "C" fn classify(_: *mut c_void, req: *const rb_request, key: *mut u64) -> c_int {
    // SAFETY: valid during this call.
    let req = unsafe { &*req };
    // SAFETY: as above.
    let body = unsafe { std::slice::from_raw_parts(req.body, req.len) };
    match body {
        b"refuse" => -1,
        b"w" => {
            // SAFETY: valid for writing during this call.
            unsafe { *key = 1 };
            RB_ACCESS_WRITE
        }
        _ => RB_ACCESS_UNORDERED,
    }
}

struct ServerPtr(*mut rb_server);
// SAFETY: the header allows running a server on one thread and stopping it from another.
unsafe impl Send for ServerPtr {}
// SAFETY: as above; rb_server_run takes its own lock.
unsafe impl Sync for ServerPtr {}

#[test]
fn a_c_server_serves_the_rust_client() {
    watchdog();
    let path = sock("serve");
    let shared = Box::new(Shared {
        handled: std::sync::atomic::AtomicUsize::new(0),
    });
    let mut opts = rb_server_options_default();
    opts.access = Some(classify);
    let mut server = null_mut();
    // SAFETY: valid path, options and out-pointer; the context outlives the server.
    let rc = unsafe {
        rb_server_bind(
            path.as_ptr(),
            &opts,
            Some(handler),
            &*shared as *const Shared as *mut c_void,
            &mut server,
        )
    };
    assert_eq!(rc, RB_OK, "{}", last_message());
    let server = std::sync::Arc::new(ServerPtr(server));
    let s = server.clone();
    // SAFETY: a live server, run on this one thread.
    let serving = std::thread::spawn(move || unsafe { rb_server_run(s.0) });
    let mut c = Client::connect(path.to_str().unwrap()).unwrap();
    let t = Duration::from_secs(10);
    for i in 0..200 {
        let req = format!("req {i}");
        assert_eq!(c.call_timeout(req.as_bytes(), t).unwrap(), req.as_bytes());
    }
    let r = c.call_response_timeout(b"fail", t).unwrap();
    assert_eq!((r.status, &r.body[..]), (Status::Failed, &b"it failed"[..]));
    assert_eq!(
        c.call_response_timeout(b"drop", t).unwrap().status,
        Status::Dropped
    );
    let handled = shared.handled.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        c.call_response_timeout(b"refuse", t).unwrap().status,
        Status::Panicked
    );
    assert_eq!(
        shared.handled.load(std::sync::atomic::Ordering::SeqCst),
        handled,
        "a refused request reached the handler"
    );
    assert_eq!(c.call_timeout(b"w", t).unwrap(), b"w");
    // A second run while the first serves is refused, not a second serve loop.
    // SAFETY: a live server.
    assert_eq!(unsafe { rb_server_run(server.0) }, RB_E_STATE);
    // SAFETY: a live server, from another thread than its run.
    assert_eq!(unsafe { rb_server_stop(server.0) }, RB_OK);
    assert_eq!(serving.join().unwrap(), RB_OK);
    drop(c);
    // SAFETY: stopped, and no thread uses it any more.
    unsafe { rb_server_free(server.0) };
    assert!(!std::path::Path::new(path.to_str().unwrap()).exists());
}

unsafe extern "C" fn echo(_: *mut c_void, req: *const rb_request, res: *mut rb_responder) {
    // SAFETY: valid during this call; the responder is consumed once.
    unsafe { rb_respond(res, (*req).body, (*req).len) };
}

/// Freeing a server that runs on another thread stops it and waits for the run to return
/// (the C++ wrapper's destructor relies on it); options from another header version and
/// absurd worker counts are refused.
#[test]
fn freeing_a_running_server_stops_it_and_waits_and_bad_options_are_refused() {
    watchdog();
    let path = sock("free");
    let mut opts = rb_server_options_default();
    let mut server = null_mut();
    // SAFETY: valid pointers throughout; the server is freed once, after its run started.
    unsafe {
        opts.size -= 8;
        assert_eq!(
            rb_server_bind(path.as_ptr(), &opts, Some(echo), null_mut(), &mut server),
            RB_E_INVALID_ARGUMENT
        );
        opts = rb_server_options_default();
        opts.workers = 5000;
        assert_eq!(
            rb_server_bind(path.as_ptr(), &opts, Some(echo), null_mut(), &mut server),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(
            rb_server_bind(path.as_ptr(), null(), None, null_mut(), &mut server),
            RB_E_INVALID_ARGUMENT
        );
        assert_eq!(
            rb_server_bind(path.as_ptr(), null(), Some(echo), null_mut(), &mut server),
            RB_OK
        );
    }
    let s = ServerPtr(server);
    let (tx, rx) = std::sync::mpsc::channel();
    let serving = std::thread::spawn(move || {
        let s = s;
        // SAFETY: a live server, run on this thread.
        let rc = unsafe { rb_server_run(s.0) };
        tx.send(rc).unwrap();
    });
    let mut c = Client::connect(path.to_str().unwrap()).unwrap();
    assert_eq!(
        c.call_timeout(b"up", Duration::from_secs(10)).unwrap(),
        b"up"
    );
    // SAFETY: the run has started (it answered); nothing uses the server after this.
    unsafe { rb_server_free(server) };
    // The run returned before the free did.
    assert_eq!(rx.try_recv(), Ok(RB_OK));
    serving.join().unwrap();
    assert!(!std::path::Path::new(path.to_str().unwrap()).exists());
    assert!(c.call_timeout(b"gone?", Duration::from_secs(10)).is_err());
}

#[test]
fn the_c_client_calls_a_rust_server_and_sees_statuses_as_codes() {
    watchdog();
    use ringbell::channel::{Server, ServerConfig};
    use ringbell::reactor::{Reactor, Request, Responder};
    let path = sock("client");
    let server = Server::bind(path.to_str().unwrap(), ServerConfig::new()).unwrap();
    let mut reactor = Reactor::new(server, |req: Request, res: Responder| match &req.body[..] {
        b"fail" => res.fail(b"nope, not this key"),
        b"big" => {
            let n = res.max_response() + 1;
            let _ = res.respond(&vec![0; n]);
        }
        b"slow" => {
            std::thread::sleep(Duration::from_millis(300));
            let _ = res.respond(b"late");
        }
        body => {
            let _ = res.respond(body);
        }
    });
    let stop = reactor.stop_handle();
    let serving = std::thread::spawn(move || reactor.run());
    let mut client = null_mut();
    // SAFETY: valid pointers and buffers of the given lengths throughout.
    unsafe {
        assert_eq!(rb_client_connect(path.as_ptr(), &mut client), RB_OK);
        let cap = rb_client_max_response(client);
        let mut buf = vec![0u8; cap];
        let mut len = 0usize;
        assert_eq!(
            rb_client_call(
                client,
                b"hi".as_ptr(),
                2,
                buf.as_mut_ptr(),
                cap,
                &mut len,
                T_US
            ),
            RB_OK
        );
        assert_eq!(&buf[..len], b"hi");
        assert_eq!(
            rb_client_call(
                client,
                b"fail".as_ptr(),
                4,
                buf.as_mut_ptr(),
                cap,
                &mut len,
                T_US
            ),
            RB_E_FAILED
        );
        assert_eq!(&buf[..len], b"nope, not this key");
        assert!(last_message().contains("nope"), "{}", last_message());
        // A buffer too short: the status still decides the code; the body is cut and its
        // whole length said.
        assert_eq!(
            rb_client_call(
                client,
                b"fail".as_ptr(),
                4,
                buf.as_mut_ptr(),
                4,
                &mut len,
                T_US
            ),
            RB_E_FAILED
        );
        assert_eq!((len, &buf[..4]), (18, &b"nope"[..]));
        assert_eq!(
            rb_client_call(
                client,
                b"0123456789".as_ptr(),
                10,
                buf.as_mut_ptr(),
                4,
                &mut len,
                T_US
            ),
            RB_E_BUFFER_TOO_SMALL
        );
        assert_eq!((len, &buf[..4]), (10, &b"0123"[..]));
        // The handler's answer above the cap: its own code, not the caller's TOO_LARGE.
        assert_eq!(
            rb_client_call(
                client,
                b"big".as_ptr(),
                3,
                buf.as_mut_ptr(),
                cap,
                &mut len,
                T_US
            ),
            RB_E_RESPONSE_TOO_LARGE
        );
        // A deadline shorter than the handler: a timeout, and the late answer is discarded.
        assert_eq!(
            rb_client_call(
                client,
                b"slow".as_ptr(),
                4,
                buf.as_mut_ptr(),
                cap,
                &mut len,
                50_000
            ),
            RB_E_TIMEOUT
        );
        assert_eq!(
            rb_client_call(
                client,
                b"next".as_ptr(),
                4,
                buf.as_mut_ptr(),
                cap,
                &mut len,
                T_US
            ),
            RB_OK
        );
        assert_eq!(&buf[..len], b"next");
        let big = vec![1u8; rb_client_max_request(client) + 1];
        assert_eq!(
            rb_client_call(
                client,
                big.as_ptr(),
                big.len(),
                buf.as_mut_ptr(),
                cap,
                &mut len,
                T_US
            ),
            RB_E_TOO_LARGE
        );
        rb_client_close(client);
    }
    stop.stop();
    serving.join().unwrap().unwrap();
}
