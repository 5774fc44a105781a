//! `docs/wire.md` against the code: the document's constants tables must hold exactly the
//! public constants of `ringbell::wire`, each with the value the code gives it.
//!
//! Three lists are compared:
//!
//! - the rows of the tables between `<!-- constants:begin -->` and `<!-- constants:end -->`
//!   in `docs/wire.md` (name and value as the document writes them);
//! - [`code_constants`], the real constants, one `c!(NAME)` each, with their values;
//! - every `pub const NAME` declared in `src/wire/*.rs`, found by scanning the sources.
//!
//! A constant added to `src/wire/` without a row in the document and a line in
//! [`code_constants`] fails `every_wire_constant_is_documented_and_checked`; a value changed
//! on either side fails `every_documented_constant_has_the_code_value`. The tests read
//! files and compare strings: nothing waits, so they need no watchdog.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use ringbell::wire;

const BEGIN: &str = "<!-- constants:begin -->";
const END: &str = "<!-- constants:end -->";

/// A constant's value, in the three shapes the document uses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    /// An integer (the document writes it in decimal or as `0x…` hexadecimal).
    Num(u128),
    /// Bytes in memory order (the document writes `"RBC5"`).
    Bytes(Vec<u8>),
    /// An array of strings, in order (the document writes `` `a, b, c` ``).
    List(Vec<String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n} ({n:#x})"),
            Self::Bytes(b) => write!(f, "\"{}\"", b.escape_ascii()),
            Self::List(l) => write!(f, "`{}`", l.join(", ")),
        }
    }
}

/// How a constant of the code becomes a [`Value`].
trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Num(*self as u128)
    }
}

impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Num(u128::from(*self))
    }
}

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Num(u128::from(*self))
    }
}

impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl<const N: usize> ToValue for [&str; N] {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// `(name, value)` of a constant of `ringbell::wire`; `c!(NAME as bytes)` for a `u64` built
/// from bytes in native order, which the document writes as those bytes.
macro_rules! c {
    ($name:ident) => {
        (stringify!($name), ToValue::to_value(&wire::$name))
    };
    ($name:ident as bytes) => {
        (
            stringify!($name),
            Value::Bytes(wire::$name.to_ne_bytes().to_vec()),
        )
    };
}

/// Every public constant of `ringbell::wire`, with its value. A constant missing here fails
/// `every_wire_constant_is_documented_and_checked`.
fn code_constants() -> Vec<(&'static str, Value)> {
    vec![
        // src/wire/header.rs
        c!(MAGIC as bytes),
        c!(LAYOUT_VERSION),
        c!(ENDIAN_MARKER),
        c!(READY),
        c!(HEADER_SIZE),
        c!(MIN_CAPACITY),
        c!(MAX_CAPACITY),
        c!(ROLE_FREE),
        c!(ROLE_CLOSED),
        c!(FLAG_SHARED_BELL),
        c!(FLAG_SHARED_SPACE_BELL),
        c!(FLAG_ASYMMETRIC_FENCES),
        c!(KNOWN_FLAGS),
        c!(MAGIC_OFF),
        c!(VERSION_OFF),
        c!(HEADER_SIZE_OFF),
        c!(CAPACITY_OFF),
        c!(MASK_OFF),
        c!(ENDIAN_OFF),
        c!(KIND_OFF),
        c!(FRAME_CAP_OFF),
        c!(FLAGS_OFF),
        c!(READY_OFF),
        c!(REGISTRY_SLOTS_OFF),
        c!(PRODUCER_OWNER_OFF),
        c!(CONSUMER_OWNER_OFF),
        c!(WRITE_POS_OFF),
        c!(READ_POS_OFF),
        c!(DATA_BELL_OFF),
        c!(SPACE_BELL_OFF),
        c!(RESERVATION_OFF),
        c!(RESERVATION_STAMP_OFF),
        // src/wire/record.rs
        c!(RECORD_HEADER),
        c!(ALIGN),
        c!(PADDING),
        c!(COMMITTED),
        c!(CLAIMED),
        c!(LEN_MASK),
        c!(MPSC_LEN_MASK),
        // src/wire/bell.rs
        c!(BELL_SEQ),
        c!(BELL_WAITERS),
        c!(WAIT_SLEEPER),
        c!(WAIT_ASYNC),
        c!(DOORBELL_SIZE),
        c!(BELL_CAPACITY),
        c!(BELL_REGION_SIZE),
        // src/wire/mpsc.rs
        c!(REGISTRY_SLOT_SIZE),
        c!(MAX_REGISTRY_SLOTS),
        c!(SLOT_OWNER),
        c!(SLOT_STATE),
        c!(SLOT_REC_POS),
        c!(IN_CLAIM),
        c!(RESERVATION_TTL_MS),
        // src/wire/channel.rs
        c!(CLIENT_HELLO_MAGIC),
        c!(CLIENT_HELLO_LEN),
        c!(CLIENT_HELLO_PID_OFF),
        c!(CLIENT_HELLO_FLAGS_OFF),
        c!(CLIENT_HELLO_PIDFD),
        c!(HELLO_MAGIC),
        c!(HELLO_LEN),
        c!(HELLO_OK),
        c!(HELLO_FULL),
        c!(HELLO_UID),
        c!(HELLO_LIMIT),
        c!(HELLO_RESOURCES),
        c!(HELLO_VERDICT_OFF),
        c!(HELLO_SLOT_OFF),
        c!(HELLO_PID_OFF),
        c!(HELLO_IN_FLIGHT_OFF),
        c!(HELLO_FLAGS_OFF),
        c!(HELLO_FLAG_PIDFD),
        c!(HELLO_FLAG_SOCKET),
        c!(HELLO_FLAG_READINESS),
        c!(HELLO_FLAG_SERVER_READINESS),
        c!(HELLO_MAX_REQUEST_OFF),
        c!(HELLO_MAX_RESPONSE_OFF),
        c!(SOCKET_FRAME_HEADER),
        c!(HELLO_FDS),
        c!(REQUEST_CONTROL),
        c!(CONTROL_STATS),
        c!(STATS_MAGIC),
        c!(STATS_HEADER_LEN),
        c!(STATS_SERVER_COUNT_OFF),
        c!(STATS_CONNECTION_COUNT_OFF),
        c!(STATS_RECORD_FIELDS_OFF),
        c!(STATS_UNKNOWN),
        c!(STATS_SERVER_FIELDS),
        c!(STATS_CONNECTION_FIELDS),
        c!(ID_BITS),
        c!(ID_MASK),
        c!(STATUS_OK),
        c!(STATUS_BUSY),
        c!(STATUS_PANICKED),
        c!(STATUS_DROPPED),
        c!(STATUS_TOO_LARGE),
        c!(STATUS_FAILED),
        c!(STATUS_SHUTTING_DOWN),
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses a value cell of the document (conventions in its section 12).
fn parse_value(cell: &str) -> Result<Value, String> {
    let quoted = |open: char, close: char| {
        (cell.len() >= 2 && cell.starts_with(open) && cell.ends_with(close))
            .then(|| &cell[1..cell.len() - 1])
    };
    if let Some(bytes) = quoted('"', '"') {
        return Ok(Value::Bytes(bytes.as_bytes().to_vec()));
    }
    if let Some(list) = quoted('`', '`') {
        return Ok(Value::List(
            list.split(',').map(|s| s.trim().to_owned()).collect(),
        ));
    }
    let number = match cell.strip_prefix("0x") {
        Some(hex) => u128::from_str_radix(hex, 16),
        None => cell.parse::<u128>(),
    };
    number
        .map(Value::Num)
        .map_err(|e| format!("{cell:?} is not a number, a \"byte string\" or a `list`: {e}"))
}

/// The `(name, value cell)` rows of every table between the markers of `docs/wire.md`, with
/// the line each is on; panics on a malformed document.
fn doc_rows(doc: &str) -> Vec<(usize, String, String)> {
    let begin = doc
        .find(BEGIN)
        .expect("docs/wire.md has no constants:begin marker");
    let end = doc
        .find(END)
        .expect("docs/wire.md has no constants:end marker");
    assert!(begin < end, "constants:end comes before constants:begin");
    let first_line = doc[..begin].lines().count() + 1;
    let mut rows = Vec::new();
    for (i, line) in doc[begin..end].lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let at = first_line + i;
        assert_eq!(
            cells.len(),
            2,
            "docs/wire.md:{at}: a constants row has two cells, `name | value`: {line}"
        );
        let is_rule = cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'));
        if cells == ["name", "value"] || is_rule {
            continue;
        }
        let name = cells[0].trim_matches('`').to_owned();
        rows.push((at, name, cells[1].to_owned()));
    }
    assert!(!rows.is_empty(), "no constants rows between the markers");
    rows
}

/// Names declared `pub const NAME` in `src/wire/*.rs` (not `pub const fn`), with their file.
fn source_constants() -> Vec<(String, String)> {
    let dir = root().join("src/wire");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in files {
        let text = read(&file);
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub const ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || name == "fn" || !rest[name.len()..].trim_start().starts_with(':')
            {
                continue;
            }
            let shown = file.strip_prefix(root()).unwrap_or(&file).display();
            names.push((name, shown.to_string()));
        }
    }
    assert!(!names.is_empty(), "no `pub const` found in src/wire");
    names
}

#[test]
fn every_documented_constant_has_the_code_value() {
    let doc = read(&root().join("docs/wire.md"));
    let code = code_constants();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for (line, name, cell) in doc_rows(&doc) {
        if !seen.insert(name.clone()) {
            failures.push(format!("docs/wire.md:{line}: `{name}` is listed twice"));
            continue;
        }
        let Some((_, want)) = code.iter().find(|(n, _)| *n == name) else {
            failures.push(format!(
                "docs/wire.md:{line}: `{name}` is not a constant of ringbell::wire \
                 (or it is missing from code_constants() in tests/wire_doc.rs)"
            ));
            continue;
        };
        match parse_value(&cell) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!(
                "docs/wire.md:{line}: `{name}` is documented as {got}, the code says {want}"
            )),
            Err(e) => failures.push(format!("docs/wire.md:{line}: `{name}`: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_wire_constant_is_documented_and_checked() {
    let doc = read(&root().join("docs/wire.md"));
    let documented: BTreeSet<String> = doc_rows(&doc).into_iter().map(|(_, n, _)| n).collect();
    let checked: BTreeSet<&str> = code_constants().iter().map(|(n, _)| *n).collect();
    let declared = source_constants();
    let mut failures = Vec::new();
    for (name, file) in &declared {
        if !documented.contains(name) {
            failures.push(format!(
                "{file}: `{name}` has no row in the constants tables of docs/wire.md"
            ));
        }
        if !checked.contains(name.as_str()) {
            failures.push(format!(
                "{file}: `{name}` is missing from code_constants() in tests/wire_doc.rs"
            ));
        }
    }
    let declared: BTreeSet<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
    for name in &checked {
        if !declared.contains(name) {
            failures.push(format!(
                "tests/wire_doc.rs: `{name}` is checked but no `pub const {name}` was found in \
                 src/wire/*.rs"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_value_conventions_parse_as_documented() {
    assert_eq!(parse_value("1152"), Ok(Value::Num(1152)));
    assert_eq!(parse_value("0x80000000"), Ok(Value::Num(1 << 31)));
    assert_eq!(parse_value("\"RBC5\""), Ok(Value::Bytes(b"RBC5".to_vec())));
    assert_eq!(
        parse_value("`slot, generation`"),
        Ok(Value::List(vec!["slot".into(), "generation".into()]))
    );
    assert!(parse_value("1 << 31").is_err());
    assert!(parse_value("").is_err());
}
