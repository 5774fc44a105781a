//! The Rust client the C server is tested against: `rust_client PATH` makes calls to the
//! server at PATH and checks every answer (echo, failure with its message, ordered keys),
//! then prints `ok`; `rust_client PATH --bench N` times N calls of 64 bytes and prints the
//! round trip's median and 99th percentile in nanoseconds.

use std::time::{Duration, Instant};

use ringbell::channel::{CallError, Client, Status};

const T: Duration = Duration::from_secs(10);

fn check(client: &mut Client) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..1000u32 {
        let req = format!("hello {i}");
        let got = client.call_timeout(req.as_bytes(), T)?;
        if got != req.as_bytes() {
            return Err(format!("asked {req:?}, got {:?}", String::from_utf8_lossy(&got)).into());
        }
    }
    match client.call_response_timeout(b"fail:no such key", T)? {
        r if r.status == Status::Failed && r.body == b"no such key" => {}
        r => return Err(format!("a failure came back as {r:?}").into()),
    }
    // Pipelined: sixteen at once (the C server answers some from another thread, later),
    // back in request order.
    let ids: Vec<_> = (0..16)
        .map(|i| client.send_request_timeout(format!("later:{i}").as_bytes(), T))
        .collect::<Result<_, CallError>>()?;
    for (i, id) in ids.into_iter().enumerate() {
        let r = client.recv_response_timeout(T)?;
        if r.id != id || r.body != format!("later:{i}").as_bytes() {
            return Err(format!("pipelined answer {i} was {r:?}").into());
        }
    }
    // Ordered writes on one key from the C classifier: the counter the server keeps per key
    // comes back incremented once per write, in order.
    for n in 1..=50u32 {
        let got = client.call_timeout(b"w:k", T)?;
        if got != n.to_string().as_bytes() {
            return Err(format!("write {n} on key k answered {got:?}").into());
        }
    }
    Ok(())
}

fn bench(client: &mut Client, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let req = [7u8; 64];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n.min(1000) {
        client.call_timeout(&req, T)?; // warm up
    }
    for _ in 0..n {
        let t = Instant::now();
        client.call_timeout(&req, T)?;
        times.push(t.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "rust client: {n} calls, p50 {} ns, p99 {} ns",
        p(0.5),
        p(0.99)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: rust_client PATH [--bench N]")?;
    let mut client = Client::connect(path)?;
    match args.get(1).map(String::as_str) {
        Some("--bench") => bench(&mut client, args.get(2).ok_or("--bench N")?.parse()?),
        _ => {
            check(&mut client)?;
            println!("ok");
            Ok(())
        }
    }
}
