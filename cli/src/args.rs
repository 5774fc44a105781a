//! The command line, parsed by hand: a subcommand, a few options, at most one operand.
//!
//! Every option takes its value either as the next argument (`--seconds 2`) or after an
//! equals sign (`--seconds=2`). Anything this module does not know is a [`UsageError`],
//! which `main` reports with the usage text and exit status 2. Parsing never panics and
//! never touches the file system: what a path names is decided later, by the subcommand.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

/// The usage text printed by `ringbell --help` (on stdout) and after a usage error (on
/// stderr).
pub const USAGE: &str = "\
usage: ringbell <command> [options]

commands:
  inspect --fd PID:FD [--json]    the header of the region open as descriptor FD in process
                                  PID (/proc/PID/fd/FD), read without writing it
  inspect --fd PATH [--json]      the same for the region in any file (a /proc path, a copy)
  inspect PATH [--json]           a channel server's statistics, if PATH is its socket;
                                  otherwise the region in the file PATH
  bench [--seconds S] [--size BYTES] [--ring BYTES] [--json]
                                  round trips and throughput between this process and a
                                  child process over two SPSC rings in sealed memfds
                                  (defaults: 1 s a phase, 64-byte frames, 64 KiB rings)
  help, --help, -h                this text
  --version, -V                   the version

exit status: 0 success, 1 an error or an inconsistent region (one line on stderr), 2 usage
";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `ringbell --help`: print [`USAGE`].
    Help,
    /// `ringbell --version`.
    Version,
    /// `ringbell inspect`.
    Inspect {
        /// What to inspect.
        target: Target,
        /// Print one JSON object instead of a table.
        json: bool,
    },
    /// `ringbell bench`.
    Bench(BenchArgs),
    /// The bench's child process (`ringbell __bench-peer REQ RESP`): not in the usage text.
    BenchPeer {
        /// The inherited descriptor number of the request ring's memfd.
        requests: i32,
        /// The inherited descriptor number of the response ring's memfd.
        responses: i32,
    },
}

/// What `inspect` looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A file holding a region (`--fd PID:FD` becomes `/proc/PID/fd/FD`).
    Region(PathBuf),
    /// A path given without `--fd`: a server's statistics if it is a socket, else a region.
    Path(PathBuf),
}

/// The options of `ringbell bench`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchArgs {
    /// Seconds each phase (round trips, then throughput) runs: finite, in `(0, 3600]`.
    pub seconds: f64,
    /// Payload bytes of every frame: at least 1 (the ring's frame cap is checked later).
    pub size: usize,
    /// Data-area bytes of each ring (the ring checks it is a power of two).
    pub ring: usize,
    /// Print one JSON object instead of a table.
    pub json: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            seconds: 1.0,
            size: 64,
            ring: 64 << 10,
            json: false,
        }
    }
}

/// The longest phase `bench --seconds` accepts: an hour.
const MAX_SECONDS: f64 = 3600.0;

/// A command line this module does not accept; `main` prints it, then [`USAGE`], and exits
/// with status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A [`UsageError`] with a formatted message.
macro_rules! usage {
    ($($arg:tt)*) => {
        UsageError(format!($($arg)*))
    };
}

/// Parses the whole command line, program name first.
///
/// # Errors
///
/// A [`UsageError`] naming the first argument that is unknown, missing, repeated or out of
/// range.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = Args::new(args.into_iter().skip(1));
    let Some(command) = args.next_raw() else {
        return Err(usage!("no command given"));
    };
    let command = command
        .to_str()
        .ok_or_else(|| usage!("unknown command {:?}", command))?
        .to_owned();
    let parsed = match command.as_str() {
        "help" | "--help" | "-h" => Command::Help,
        "--version" | "-V" => Command::Version,
        "inspect" => parse_inspect(&mut args)?,
        "bench" => parse_bench(&mut args)?,
        "__bench-peer" => parse_bench_peer(&mut args)?,
        other => return Err(usage!("unknown command `{other}`")),
    };
    args.finish()?;
    Ok(parsed)
}

/// `inspect`'s options and operand: one target, `--json` at most once.
fn parse_inspect(args: &mut Args) -> Result<Command, UsageError> {
    let mut target = None;
    let mut json = false;
    while let Some(arg) = args.next()? {
        match arg {
            Arg::Flag(flag) if flag == "--json" => json = set_once(json, "--json")?,
            Arg::Flag(flag) if flag == "--help" || flag == "-h" => return Ok(Command::Help),
            Arg::Flag(flag) if flag == "--fd" => {
                let value = args.value("--fd")?;
                replace_once(&mut target, Target::Region(fd_path(&value)), "a target")?;
            }
            Arg::Flag(flag) => return Err(usage!("unknown option `{flag}` for inspect")),
            Arg::Operand(path) => replace_once(&mut target, Target::Path(path.into()), "a target")?,
        }
    }
    let target = target.ok_or_else(|| usage!("inspect needs --fd PID:FD or a PATH"))?;
    Ok(Command::Inspect { target, json })
}

/// `PID:FD` (both decimal) becomes `/proc/PID/fd/FD`; anything else is a path.
fn fd_path(value: &OsStr) -> PathBuf {
    let pid_fd = value
        .to_str()
        .and_then(|s| s.split_once(':'))
        .and_then(|(pid, fd)| {
            let pid: u32 = pid.parse().ok()?;
            let fd: u32 = fd.parse().ok()?;
            Some((pid, fd))
        });
    match pid_fd {
        Some((pid, fd)) => format!("/proc/{pid}/fd/{fd}").into(),
        None => value.into(),
    }
}

/// `bench`'s options, each at most once.
fn parse_bench(args: &mut Args) -> Result<Command, UsageError> {
    let mut out = BenchArgs::default();
    let mut seen = Vec::new();
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Flag(flag) => flag,
            Arg::Operand(op) => return Err(usage!("unexpected argument {:?} for bench", op)),
        };
        if seen.contains(&flag) {
            return Err(usage!("`{flag}` given twice"));
        }
        match flag.as_str() {
            "--json" => out.json = true,
            "--help" | "-h" => return Ok(Command::Help),
            "--seconds" => out.seconds = seconds(&args.value(&flag)?)?,
            "--size" => out.size = bytes(&args.value(&flag)?, "--size")?,
            "--ring" => out.ring = bytes(&args.value(&flag)?, "--ring")?,
            _ => return Err(usage!("unknown option `{flag}` for bench")),
        }
        seen.push(flag);
    }
    Ok(Command::Bench(out))
}

/// The hidden child's two descriptor numbers, non-negative decimals.
fn parse_bench_peer(args: &mut Args) -> Result<Command, UsageError> {
    let mut fd = || -> Result<i32, UsageError> {
        let raw = args
            .next_raw()
            .ok_or_else(|| usage!("__bench-peer needs two fds"))?;
        raw.to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| usage!("bad fd {:?} for __bench-peer", raw))
    };
    let requests = fd()?;
    let responses = fd()?;
    Ok(Command::BenchPeer {
        requests,
        responses,
    })
}

/// A phase length for `--seconds`: finite, above 0, at most [`MAX_SECONDS`].
fn seconds(value: &OsStr) -> Result<f64, UsageError> {
    let s = value.to_str().unwrap_or("");
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_SECONDS => Ok(v),
        _ => Err(usage!(
            "--seconds wants a number of seconds above 0 and at most {MAX_SECONDS}, not {:?}",
            value
        )),
    }
}

/// A byte count: decimal, or with a `K`/`KiB` or `M`/`MiB` suffix (powers of 1024).
fn bytes(value: &OsStr, name: &str) -> Result<usize, UsageError> {
    let bad = || {
        usage!(
            "{name} wants a positive byte count (e.g. 64, 4K, 1M), not {:?}",
            value
        )
    };
    let s = value.to_str().ok_or_else(bad)?;
    let (digits, shift) = match s.find(|c: char| !c.is_ascii_digit()) {
        None => (s, 0),
        Some(at) => match &s[at..] {
            "K" | "k" | "KiB" => (&s[..at], 10),
            "M" | "MiB" => (&s[..at], 20),
            _ => return Err(bad()),
        },
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).filter(|n| *n > 0).ok_or_else(bad)
}

/// `true`, unless the flag `name` was already given.
fn set_once(already: bool, name: &str) -> Result<bool, UsageError> {
    if already {
        Err(usage!("`{name}` given twice"))
    } else {
        Ok(true)
    }
}

/// Fills `slot`, unless it is already filled.
fn replace_once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), UsageError> {
    if slot.is_some() {
        return Err(usage!("more than {what} given"));
    }
    *slot = Some(value);
    Ok(())
}

/// One argument, classified.
enum Arg {
    /// Starts with `-` (an `=value` part, if any, is held back for [`Args::value`]).
    Flag(String),
    /// Anything else: a path.
    Operand(OsString),
}

/// The arguments after the program name, with a held-back `=value`.
struct Args {
    /// The arguments not yet taken.
    rest: std::vec::IntoIter<OsString>,
    /// The last flag, if it came as `--flag=value`, and that value, not yet taken.
    pending: Option<(String, OsString)>,
}

impl Args {
    /// All of `args`, none taken.
    fn new(args: impl Iterator<Item = OsString>) -> Self {
        Self {
            rest: args.collect::<Vec<_>>().into_iter(),
            pending: None,
        }
    }

    /// The next argument as it is, unclassified (the command, the hidden peer's numbers).
    fn next_raw(&mut self) -> Option<OsString> {
        self.rest.next()
    }

    /// The next argument, classified; a `--flag=value` holds its value back for
    /// [`value`](Self::value).
    ///
    /// # Errors
    ///
    /// If the last flag came with a value and nobody took it (`--json=yes`).
    fn next(&mut self) -> Result<Option<Arg>, UsageError> {
        if let Some((flag, _)) = self.pending.take() {
            return Err(usage!("`{flag}` takes no value"));
        }
        let Some(arg) = self.rest.next() else {
            return Ok(None);
        };
        let Some(text) = arg.to_str() else {
            return Ok(Some(Arg::Operand(arg)));
        };
        if !text.starts_with('-') || text == "-" {
            return Ok(Some(Arg::Operand(arg)));
        }
        Ok(Some(match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                self.pending = Some((flag.to_owned(), value.into()));
                Arg::Flag(flag.to_owned())
            }
            _ => Arg::Flag(text.to_owned()),
        }))
    }

    /// The value of option `name`: its `=value`, or the next argument.
    fn value(&mut self, name: &str) -> Result<OsString, UsageError> {
        if let Some((_, value)) = self.pending.take() {
            return Ok(value);
        }
        self.rest
            .next()
            .ok_or_else(|| usage!("`{name}` needs a value"))
    }

    /// Checks that nothing is left over.
    fn finish(mut self) -> Result<(), UsageError> {
        match self.next()? {
            None => Ok(()),
            Some(Arg::Flag(extra)) => Err(usage!("unexpected argument {extra:?}")),
            Some(Arg::Operand(extra)) => Err(usage!("unexpected argument {extra:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(
            std::iter::once("ringbell")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn pid_fd_becomes_a_proc_path_and_anything_else_stays_a_path() {
        let inspect = |target| Command::Inspect {
            target: Target::Region(PathBuf::from(target)),
            json: false,
        };
        assert_eq!(
            parse_str(&["inspect", "--fd", "12:3"]),
            Ok(inspect("/proc/12/fd/3"))
        );
        assert_eq!(
            parse_str(&["inspect", "--fd=12:3"]),
            Ok(inspect("/proc/12/fd/3"))
        );
        assert_eq!(
            parse_str(&["inspect", "--fd", "/tmp/r"]),
            Ok(inspect("/tmp/r"))
        );
        assert_eq!(parse_str(&["inspect", "--fd", "x:3"]), Ok(inspect("x:3")));
    }

    #[test]
    fn a_positional_path_is_decided_later() {
        assert_eq!(
            parse_str(&["inspect", "/run/s.sock", "--json"]),
            Ok(Command::Inspect {
                target: Target::Path("/run/s.sock".into()),
                json: true
            })
        );
    }

    #[test]
    fn bench_options_and_their_defaults() {
        assert_eq!(
            parse_str(&["bench"]),
            Ok(Command::Bench(BenchArgs::default()))
        );
        let got = parse_str(&[
            "bench",
            "--seconds",
            "0.2",
            "--size=4K",
            "--ring",
            "1M",
            "--json",
        ]);
        assert_eq!(
            got,
            Ok(Command::Bench(BenchArgs {
                seconds: 0.2,
                size: 4096,
                ring: 1 << 20,
                json: true
            }))
        );
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["inspect"],
            &["inspect", "a", "b"],
            &["inspect", "--fd"],
            &["inspect", "--json", "--json", "x"],
            &["inspect", "--json=yes", "x"],
            &["inspect", "--json=x"],
            &["bench", "--json=1"],
            &["bench", "--seconds=1", "--json=", "x"],
            &["inspect", "--verbose", "x"],
            &["bench", "--seconds", "0"],
            &["bench", "--seconds", "nan"],
            &["bench", "--seconds", "-1"],
            &["bench", "--seconds", "1e9"],
            &["bench", "--size", "0"],
            &["bench", "--size", "12Q"],
            &["bench", "--size", "99999999999999999999"],
            &["bench", "--size", "1", "--size", "2"],
            &["bench", "extra"],
            &["__bench-peer", "3"],
            &["__bench-peer", "3", "-4"],
            &["--help", "extra"],
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["bench", "-h"]), Ok(Command::Help));
        assert_eq!(parse_str(&["-V"]), Ok(Command::Version));
    }
}
