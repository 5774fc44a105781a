//! The channel server with its reactor: bind, a handler callback that answers through a
//! responder from any thread, an ordering callback, run, stop.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex, TryLockError};

use ringbell::channel::{AnyServer, ServerConfig, TransportKind};
use ringbell::reactor::{
    Access, Executor, Handler, InlineExecutor, Reactor, Request, Responder, StopHandle, ThreadPool,
};

use crate::error::{Failure, RB_E_STATE, RB_E_TOO_LARGE, guard};
use crate::{out, path_arg, slice_arg};

/// Most worker threads a server takes.
const MAX_WORKERS: u32 = 1024;

/// The request has no ordering: it runs whenever (the default).
pub const RB_ACCESS_UNORDERED: c_int = 0;
/// The request reads its key: it runs beside other reads of the key, never beside a write.
pub const RB_ACCESS_READ: c_int = 1;
/// The request writes its key: it runs alone on the key, after everything before it.
pub const RB_ACCESS_WRITE: c_int = 2;

/// Frames travel in shared-memory rings (the default).
pub const RB_TRANSPORT_SHARED_MEMORY: u32 = 0;
/// Frames travel on the Unix socket itself (where processes cannot share memory).
pub const RB_TRANSPORT_SOCKET: u32 = 1;

/// A request as a handler sees it. Everything in it, the body included, is valid only
/// during the callback it is passed to: copy what you keep.
#[repr(C)]
pub struct rb_request {
    /// The request body (NULL when `len` is 0).
    pub body: *const u8,
    /// Its length in bytes.
    pub len: usize,
    /// Its id on its connection.
    pub id: u32,
    /// The client process, from the kernel at connect time.
    pub pid: u32,
    /// The client's user.
    pub uid: u32,
    /// The client's group.
    pub gid: u32,
    /// The connection's slot on the server.
    pub conn_slot: u64,
    /// Tells apart successive connections in one slot.
    pub conn_generation: u64,
}

/// The handler: called once per request, on the thread that runs rb_server_run() or on a
/// worker thread, several at once when the server has workers. It answers through
/// `responder` (rb_respond(), rb_respond_failed(), rb_responder_drop()) now or later, from
/// any thread; exactly one of them must be called for each responder. A request's key (see
/// rb_access) is held until its responder is consumed, not until the handler returns:
/// finish with the key's state before answering. It must not unwind (no C++ exception, no
/// longjmp out of it) and must not call rb_server_free().
pub type rb_handler = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        request: *const rb_request,
        responder: *mut rb_responder,
    ),
>;

/// The ordering classifier: returns RB_ACCESS_UNORDERED, RB_ACCESS_READ or RB_ACCESS_WRITE
/// for a request and, for the last two, writes its key to *key. Requests on one key run as
/// a reader-writer lock would let them, in arrival order; requests on different keys run
/// concurrently. A key is held from the classification until the request's responder is
/// consumed (rb_respond() and the others, possibly later and on another thread). Called
/// before the handler, one call at a time, on the thread that runs rb_server_run() or on
/// the reactor's watcher thread (which serves while a slow inline handler runs): it may run
/// beside handlers, so it must not touch their state unguarded. It must be quick, must not
/// unwind, and must not keep `request`. A negative return refuses
/// the request: it is not run and the client gets RB_E_HANDLER_PANICKED (what a C++
/// classifier that threw returns through ringbell.hpp). Any other value is taken as
/// RB_ACCESS_WRITE (the strictest).
pub type rb_access = Option<
    unsafe extern "C" fn(context: *mut c_void, request: *const rb_request, key: *mut u64) -> c_int,
>;

/// How a server is made. Start from rb_server_options_default() and change what you need:
/// it sets `size`, which lets a later library tell an older program's shorter struct.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rb_server_options {
    /// sizeof(rb_server_options), as rb_server_options_default() sets it.
    pub size: usize,
    /// Worker threads for handlers, at most 1024. 0: every request runs inline on the
    /// thread of rb_server_run(), one at a time.
    pub workers: u32,
    /// RB_TRANSPORT_SHARED_MEMORY or RB_TRANSPORT_SOCKET.
    pub transport: u32,
    /// Most clients at once; 0: the default.
    pub max_clients: u32,
    /// The ordering classifier, or NULL: every request unordered.
    pub access: rb_access,
}

/// The defaults: 2 workers, shared memory, the default client limit, no ordering.
#[unsafe(no_mangle)]
pub extern "C" fn rb_server_options_default() -> rb_server_options {
    rb_server_options {
        size: std::mem::size_of::<rb_server_options>(),
        workers: 2,
        transport: RB_TRANSPORT_SHARED_MEMORY,
        max_clients: 0,
        access: None,
    }
}

/// One request's answer (opaque): the handler gets it, and exactly one of rb_respond(),
/// rb_respond_failed() or rb_responder_drop() consumes it, from any thread.
pub struct rb_responder {
    inner: Responder,
}

/// The context pointer handed back to the callbacks.
#[derive(Clone, Copy)]
struct Context(*mut c_void);

// SAFETY: the header obliges the caller to give a context that the callbacks may use from
// any thread, several at once; ringbell itself never dereferences it.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

/// The handler and classifier of a C server.
struct CHandler {
    handle: unsafe extern "C" fn(*mut c_void, *const rb_request, *mut rb_responder),
    access: rb_access,
    context: Context,
}

fn view(req: &Request) -> rb_request {
    rb_request {
        body: if req.body.is_empty() {
            std::ptr::null()
        } else {
            req.body.as_ptr()
        },
        len: req.body.len(),
        id: req.id.0,
        pid: req.client.pid,
        uid: req.client.uid,
        gid: req.client.gid,
        conn_slot: req.client.conn.slot as u64,
        conn_generation: req.client.conn.generation,
    }
}

impl Handler for CHandler {
    fn handle(&self, req: Request, res: Responder) {
        let r = view(&req);
        let responder = Box::into_raw(Box::new(rb_responder { inner: res }));
        // SAFETY: a handler the caller gave for this server, with its context; `r` and the
        // body it points to live until the call returns; the responder is a fresh Box the
        // handler consumes through the rb_respond* functions.
        unsafe { (self.handle)(self.context.0, &r, responder) };
    }

    fn access(&self, req: &Request) -> Access {
        let Some(classify) = self.access else {
            return Access::Unordered;
        };
        let r = view(req);
        let mut key = 0u64;
        // SAFETY: the caller's classifier with its context; `r` and `key` outlive the call.
        match unsafe { classify(self.context.0, &r, &mut key) } {
            RB_ACCESS_UNORDERED => Access::Unordered,
            RB_ACCESS_READ => Access::Read(key),
            // The reactor answers a request whose classifier panics `Panicked` without
            // running it; `resume_unwind` takes that path without the panic hook's report.
            n if n < 0 => std::panic::resume_unwind(Box::new("the classifier refused")),
            _ => Access::Write(key),
        }
    }
}

type CReactor = Reactor<AnyServer, CHandler, Arc<dyn Executor + Send + Sync>>;

/// A channel server with its reactor (opaque). Made by rb_server_bind(), freed by
/// rb_server_free().
///
/// Thread safety: rb_server_run() on one thread at a time; rb_server_stop() from any thread,
/// at any time.
pub struct rb_server {
    stop: StopHandle,
    reactor: Mutex<CReactor>,
}

/// Binds a server at `path` (a NUL-terminated UTF-8 path; the socket file is made 0600 and
/// removed when the server is freed) with `options` (NULL: the defaults) and `handler`
/// called with `context`, and writes it to *server. It serves once rb_server_run() is
/// called. Fails with RB_E_IO if the path is taken by a live server.
///
/// `context` is passed to the handler and the classifier, from several threads at once
/// when there are workers: it must stay valid, and safe to use so, until rb_server_free().
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `options` is NULL or valid for reading;
/// `server` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_bind(
    path: *const c_char,
    options: *const rb_server_options,
    handler: rb_handler,
    context: *mut c_void,
    server: *mut *mut rb_server,
) -> c_int {
    guard(|| {
        let slot = out(server, "server is NULL")?;
        let path = path_arg(path)?;
        let handle = handler.ok_or_else(|| Failure::invalid("handler is NULL"))?;
        let opts = match options.is_null() {
            true => rb_server_options_default(),
            false => {
                // SAFETY: not NULL, and the caller promises a struct from this header: its
                // first field, `size`, can be read whatever version it is.
                let size = unsafe { options.cast::<usize>().read() };
                if size != std::mem::size_of::<rb_server_options>() {
                    return Err(Failure::invalid(
                        "options.size is not sizeof(rb_server_options): start from \
                         rb_server_options_default()",
                    ));
                }
                // SAFETY: as above; its size says it is this version's whole struct.
                unsafe { options.read() }
            }
        };
        if opts.workers > MAX_WORKERS {
            return Err(Failure::invalid("more than 1024 workers"));
        }
        let mut cfg = ServerConfig::new().transport(match opts.transport {
            RB_TRANSPORT_SHARED_MEMORY => TransportKind::SharedMemory,
            RB_TRANSPORT_SOCKET => TransportKind::Socket,
            _ => return Err(Failure::invalid("unknown transport")),
        });
        if opts.max_clients > 0 {
            cfg = cfg.max_clients(opts.max_clients as usize);
        }
        let transport = AnyServer::bind(path, cfg)?;
        let executor: Arc<dyn Executor + Send + Sync> = match opts.workers {
            0 => Arc::new(InlineExecutor),
            n => Arc::new(ThreadPool::new(n as usize)),
        };
        let h = CHandler {
            handle,
            access: opts.access,
            context: Context(context),
        };
        let reactor = Reactor::new(transport, h).with_executor(executor);
        let stop = reactor.stop_handle();
        *slot = Box::into_raw(Box::new(rb_server {
            stop,
            reactor: Mutex::new(reactor),
        }));
        Ok(())
    })
}

/// Serves on the calling thread until rb_server_stop(): takes requests, runs the handler,
/// sends the answers in each connection's request order. On a stop it finishes the
/// requests it has taken (up to the reactor's drain time) and returns RB_OK. Returns
/// RB_E_STATE if another thread is running it, RB_E_IO if the server cannot serve (it was
/// inherited across fork()).
///
/// # Safety
///
/// `server` is NULL or a live server.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_run(server: *mut rb_server) -> c_int {
    guard(|| {
        // SAFETY: the caller promises NULL or a live server; only shared access is taken.
        let s = unsafe { server.as_ref() }.ok_or_else(|| Failure::invalid("server is NULL"))?;
        let mut reactor = match s.reactor.try_lock() {
            Ok(r) => r,
            // A panic inside an earlier run left the lock poisoned; the reactor is whole.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    RB_E_STATE,
                    "the server is running on another thread",
                ));
            }
        };
        reactor.run()?;
        Ok(())
    })
}

/// Asks the server to stop: rb_server_run() finishes what it has taken and returns. From
/// any thread, before or during a run (a run that starts after it returns at once). Not
/// async-signal-safe: from a signal handler, set a flag or write to a pipe instead.
///
/// # Safety
///
/// `server` is NULL or a live server.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_stop(server: *const rb_server) -> c_int {
    guard(|| {
        // SAFETY: the caller promises NULL or a live server.
        let s = unsafe { server.as_ref() }.ok_or_else(|| Failure::invalid("server is NULL"))?;
        s.stop.stop();
        Ok(())
    })
}

/// Frees a server (NULL: nothing): stops it, waits for a rb_server_run() running on another
/// thread to return (it finishes what it has taken first), lets the workers finish their
/// handlers, closes every connection and removes the socket file. Never call it from a
/// handler: it would wait for itself.
///
/// # Safety
///
/// `server` is NULL or a live server; no thread may start rb_server_run() on it or use it
/// after this call begins.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_server_free(server: *mut rb_server) {
    if server.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: a live server (the caller's rule); only shared access is taken.
        let s = unsafe { &*server };
        s.stop.stop();
        // A run on another thread holds the lock until it returns.
        drop(s.reactor.lock());
    }));
    // SAFETY: a pointer from rb_server_bind()'s Box, freed once (the caller's rule), and no
    // run holds it any more.
    unsafe { crate::free(server) };
}

fn take_responder(res: *mut rb_responder) -> Result<Responder, Failure> {
    if res.is_null() {
        return Err(Failure::invalid("responder is NULL"));
    }
    // SAFETY: a responder from the handler's call, consumed once (the header's rule).
    Ok(unsafe { Box::from_raw(res) }.inner)
}

/// Answers the request with `body` and frees the responder, whatever it returns. If the
/// body is longer than rb_responder_max_response(), returns RB_E_TOO_LARGE and the client
/// gets a TooLarge status instead.
///
/// # Safety
///
/// `responder` is one the handler got and no function consumed yet; `body` is valid for
/// reading `len` bytes (or NULL with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_respond(
    responder: *mut rb_responder,
    body: *const u8,
    len: usize,
) -> c_int {
    guard(|| {
        let res = take_responder(responder)?;
        let body = slice_arg(body, len)?;
        res.respond(body)
            .map_err(|e| Failure::new(RB_E_TOO_LARGE, e.to_string()))
    })
}

/// Answers the request with a failure: the client gets RB_E_FAILED with `message` as the
/// body. Frees the responder.
///
/// # Safety
///
/// As rb_respond().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_respond_failed(
    responder: *mut rb_responder,
    message: *const u8,
    len: usize,
) -> c_int {
    guard(|| {
        let res = take_responder(responder)?;
        res.fail(slice_arg(message, len)?);
        Ok(())
    })
}

/// Frees the responder without an answer: the client gets RB_E_DROPPED.
///
/// # Safety
///
/// `responder` is NULL or one the handler got and no function consumed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_responder_drop(responder: *mut rb_responder) {
    if !responder.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            take_responder(responder).map(drop)
        }));
    }
}

/// The largest body rb_respond() takes for this request (0 for NULL).
///
/// # Safety
///
/// `responder` is NULL or one the handler got and no function consumed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rb_responder_max_response(responder: *const rb_responder) -> usize {
    // SAFETY: the caller promises NULL or a live responder.
    unsafe { responder.as_ref() }.map_or(0, |r| r.inner.max_response())
}
