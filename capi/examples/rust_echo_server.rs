//! The Rust server the C and C++ clients are tested against: `rust_echo_server PATH
//! SECONDS` serves at PATH until SECONDS pass (a bound, so a failed check never leaves it
//! behind), then stops cleanly; the check kills it sooner when it is done.
//!
//! It echoes each request; a request starting with `fail:` is answered as a failure with the
//! rest as its message. It prints `ready` once it listens.

use std::time::Duration;

use ringbell::channel::{Server, ServerConfig};
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

fn echo(req: Request, res: Responder) {
    match req.body.strip_prefix(b"fail:") {
        Some(why) => res.fail(why),
        None => {
            // An echo always fits: the request cap is not above the response cap.
            let _ = res.respond(&req.body);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(secs)) = (args.next(), args.next()) else {
        return Err("usage: rust_echo_server PATH SECONDS".into());
    };
    let secs: f64 = secs.parse()?;
    let server = Server::bind(&path, ServerConfig::new())?;
    let mut reactor = Reactor::new(server, echo).with_executor(ThreadPool::new(2));
    let stop = reactor.stop_handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.stop();
    });
    println!("ready");
    let stats = reactor.run()?;
    eprintln!("rust_echo_server: served {} requests", stats.requests);
    Ok(())
}
