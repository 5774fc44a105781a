//! JSON output, written by hand: objects of scalar fields, and arrays of such objects.
//!
//! Keys are fixed identifiers chosen in this crate; string values (paths, error messages) are
//! escaped per RFC 8259: `"` and `\` get a backslash, control characters become `\n`, `\t`,
//! `\r`, `\b`, `\f` or `\u00XX`, everything else is copied (the output is UTF-8). A float that
//! is not finite is written as `null`, which JSON can carry and `NaN` is not.

use std::fmt::Write as _;

/// One JSON object being written, `{` already out; [`finish`](Self::finish) closes it.
#[derive(Debug)]
pub struct Object {
    /// The text so far.
    out: String,
    /// No field written yet (so the next needs no comma).
    empty: bool,
}

impl Default for Object {
    fn default() -> Self {
        Self::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self {
            out: String::from("{"),
            empty: true,
        }
    }

    /// Writes `"key":` (and the comma before it, if needed).
    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_string(&mut self.out, key);
        self.out.push(':');
        &mut self.out
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        push_string(out, value);
        self
    }

    /// An unsigned integer field.
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        let _ = write!(out, "{value}");
        self
    }

    /// A float field (`null` if it is not finite).
    pub fn float(&mut self, key: &str, value: f64) -> &mut Self {
        let out = self.key(key);
        if value.is_finite() {
            // `{:?}` prints the shortest text that reads back to the same f64, always with a
            // digit after the point or an exponent: valid JSON for every finite value.
            let _ = write!(out, "{value:?}");
        } else {
            out.push_str("null");
        }
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// A field that is `null`.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    /// An unsigned integer field, or `null`.
    pub fn opt_uint(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.uint(key, v),
            None => self.null(key),
        }
    }

    /// A string field, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// An array of objects.
    pub fn objects(&mut self, key: &str, items: Vec<Object>) -> &mut Self {
        let out = self.key(key);
        out.push('[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&item.finish());
        }
        out.push(']');
        self
    }

    /// The object's text, closed.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string, quotes included.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut o = Object::new();
        o.str("s", "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(
            o.finish(),
            r#"{"s":"a\"b\\c\nd\u0001e"#.to_owned() + "\u{7f}é\"}"
        );
    }

    #[test]
    fn scalars_and_nesting() {
        let mut inner = Object::new();
        inner.uint("n", 1);
        let mut o = Object::new();
        o.uint("u", u64::MAX)
            .float("f", 0.5)
            .float("big", 1e300)
            .float("nan", f64::NAN)
            .bool("b", false)
            .opt_uint("none", None)
            .opt_str("s", Some("x"))
            .objects("list", vec![inner, Object::new()])
            .objects("empty", Vec::new());
        assert_eq!(
            o.finish(),
            r#"{"u":18446744073709551615,"f":0.5,"big":1e300,"nan":null,"b":false,"none":null,"s":"x","list":[{"n":1},{}],"empty":[]}"#
        );
    }

    #[test]
    fn whole_floats_keep_a_point() {
        let mut o = Object::new();
        o.float("f", 3.0);
        assert_eq!(o.finish(), r#"{"f":3.0}"#);
    }
}
