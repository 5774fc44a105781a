//! Helpers for the tests that run the built `ringbell` binary: a bounded run, a watchdog for
//! the whole test, a small JSON reader (the command's JSON is checked without serde) and a
//! byte hash.
#![allow(dead_code)] // each test file uses some of them

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long one run of the binary may take before it is killed and the test fails.
pub const RUN_BOUND: Duration = Duration::from_secs(30);

/// How long a whole test may take before its watchdog aborts the test binary.
pub const TEST_BOUND: Duration = Duration::from_secs(90);

/// What a run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

impl Run {
    /// The exit code (`None`: killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `ringbell ARGS`, killing it and failing the test if it has not exited within
/// [`RUN_BOUND`].
#[track_caller]
pub fn ringbell(args: &[&str]) -> Run {
    ringbell_with(args, &[])
}

/// As [`ringbell`], with extra environment variables.
#[track_caller]
pub fn ringbell_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringbell"));
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the ringbell binary");
    // Drain both pipes on threads, so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + RUN_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ringbell") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ringbell {}` did not exit within {RUN_BOUND:?}; stderr so far: {}",
                args.join(" "),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "`ringbell {}` panicked: {}",
        args.join(" "),
        run.stderr
    );
    run
}

/// Aborts the test binary, naming the test, unless dropped within `bound`: a test that
/// hangs (a server that never stops, a join that never returns) fails loudly instead of
/// holding CI.
pub struct Watchdog {
    /// Set (and signalled) when the test is done.
    done: Arc<(Mutex<bool>, Condvar)>,
}

/// A [`Watchdog`] with [`TEST_BOUND`].
#[track_caller]
pub fn watchdog() -> Watchdog {
    let place = std::panic::Location::caller().to_string();
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let seen = done.clone();
    std::thread::spawn(move || {
        let (lock, cv) = &*seen;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, TEST_BOUND, |finished| !*finished)
            .unwrap_or_else(|e| e.into_inner());
        if !*guard {
            eprintln!("WATCHDOG: `{test}` ({place}) ran past {TEST_BOUND:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog { done }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

/// FNV-1a, 64-bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A JSON value, as far as these tests need one: numbers are kept as their text.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object's fields, in order (duplicates kept, so that a test can see them).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON document (surrounding whitespace allowed); panics with the position of
    /// the first thing that is not JSON.
    #[track_caller]
    pub fn parse(text: &str) -> Json {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.at, p.s.len(), "trailing text after the JSON in {text:?}");
        v
    }

    /// The field `key` of an object; panics if this is not an object or it has no such field.
    #[track_caller]
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Object(fields) => {
                let mut hits = fields.iter().filter(|(k, _)| k == key);
                let first = hits
                    .next()
                    .unwrap_or_else(|| panic!("no `{key}` in {self:?}"));
                assert!(hits.next().is_none(), "`{key}` twice in {self:?}");
                &first.1
            }
            other => panic!("not an object: {other:?}"),
        }
    }

    /// This number as a `u64`; panics if it is not a non-negative integer.
    #[track_caller]
    pub fn u64(&self) -> u64 {
        match self {
            Json::Number(n) => n.parse().unwrap_or_else(|_| panic!("not a u64: {n}")),
            other => panic!("not a number: {other:?}"),
        }
    }

    /// This number as an `f64`.
    #[track_caller]
    pub fn f64(&self) -> f64 {
        match self {
            Json::Number(n) => n.parse().unwrap_or_else(|_| panic!("not a number: {n}")),
            other => panic!("not a number: {other:?}"),
        }
    }

    /// This string.
    #[track_caller]
    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    /// This array.
    #[track_caller]
    pub fn array(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// A recursive-descent reader over the bytes of one document.
struct Parser<'a> {
    /// The document.
    s: &'a [u8],
    /// The next byte to read.
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && b" \t\r\n".contains(&self.s[self.at]) {
            self.at += 1;
        }
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "bad JSON at byte {}: {what} in {:?}",
            self.at,
            String::from_utf8_lossy(self.s)
        )
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.at..].starts_with(lit.as_bytes()) {
            self.at += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.s.get(self.at) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Json::Str(self.string()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat("null") => Json::Null,
            _ if self.eat("true") => Json::Bool(true),
            _ if self.eat("false") => Json::Bool(false),
            _ => self.fail("expected a value"),
        }
    }

    fn object(&mut self) -> Json {
        self.at += 1;
        let mut fields = Vec::new();
        self.ws();
        if self.eat("}") {
            return Json::Object(fields);
        }
        loop {
            self.ws();
            if self.s.get(self.at) != Some(&b'"') {
                self.fail("expected a key");
            }
            let key = self.string();
            self.ws();
            if !self.eat(":") {
                self.fail("expected `:`");
            }
            fields.push((key, self.value()));
            self.ws();
            if self.eat("}") {
                return Json::Object(fields);
            }
            if !self.eat(",") {
                self.fail("expected `,` or `}`");
            }
        }
    }

    fn array(&mut self) -> Json {
        self.at += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Json::Array(items);
        }
        loop {
            items.push(self.value());
            self.ws();
            if self.eat("]") {
                return Json::Array(items);
            }
            if !self.eat(",") {
                self.fail("expected `,` or `]`");
            }
        }
    }

    fn string(&mut self) -> String {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                self.fail("unterminated string")
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        self.fail("unterminated escape")
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self.s.get(self.at..self.at + 4).unwrap_or_default();
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .unwrap_or_else(|| self.fail("bad \\u escape"));
                            self.at += 4;
                            code
                        }
                        _ => self.fail("unknown escape"),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => self.fail("control character in a string"),
                b => out.push(b),
            }
        }
        String::from_utf8(out).unwrap_or_else(|_| self.fail("string is not UTF-8"))
    }

    fn number(&mut self) -> Json {
        let start = self.at;
        while self.at < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.at]) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
        if text.parse::<f64>().is_err() {
            self.fail("bad number");
        }
        Json::Number(text.to_owned())
    }
}
