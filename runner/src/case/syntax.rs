//! The text of a case file, checked before its fields are: UTF-8, one JSON document (RFC 8259)
//! with nothing after it, no object that names a key twice, numbers that are integers within
//! 64 bits, nesting at most [`MAX_DEPTH`] deep. Each error has the byte offset of the offending
//! character and the field path of the value it belongs to.
//!
//! Owns: what serde_json would accept silently (a repeated key keeps its last value, a number
//! past u64 becomes a float) or report without a field path (syntax). Must not: know the case
//! format's fields; the typed deserialization after this check does.

use std::collections::HashMap;

use super::locate::{line_col, FieldPath, Seg};

/// Deeper than any case needs; bounds the recursion of the check (and serde_json's own limit
/// is higher, so the typed deserialization never meets it).
pub const MAX_DEPTH: usize = 64;

/// What is wrong with the text, where.
#[derive(Debug, PartialEq, Eq)]
pub struct TextError {
    /// Byte offset of the offending character (the text's length at its end).
    pub offset: usize,
    pub path: FieldPath,
    pub message: String,
}

/// The bytes as text, or where the first byte that is not UTF-8 is. The path is where that
/// byte sits in the document, found by checking the text before it.
pub fn utf8(bytes: &[u8]) -> Result<&str, TextError> {
    let e = match std::str::from_utf8(bytes) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let at = e.valid_up_to();
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let path = check(before).err().map_or_else(FieldPath::root, |e| e.path);
    let message = match (e.error_len(), bytes.get(at)) {
        (Some(_), Some(b)) => format!("invalid UTF-8: byte 0x{b:02x}; a case file is UTF-8 text"),
        _ => "invalid UTF-8: the file ends inside a character; a case file is UTF-8 text".into(),
    };
    Err(TextError {
        offset: at,
        path,
        message,
    })
}

/// Checks that `src` is one JSON document with unique keys and 64-bit integers.
pub fn check(src: &str) -> Result<(), TextError> {
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        pos: 0,
        path: Vec::new(),
    };
    p.ws();
    p.value(0)?;
    p.ws();
    if p.pos < p.b.len() {
        let line = src[p.pos..].lines().next().unwrap_or_default();
        let rest: String = line.chars().take(24).collect();
        let more = if src[p.pos..].trim_end().len() > rest.len() {
            "…"
        } else {
            ""
        };
        return Err(p.err(
            p.pos,
            format!("text after the end of the JSON document: `{rest}{more}`"),
        ));
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
pub fn position(src: &str, offset: usize) -> (usize, usize) {
    line_col(src, offset)
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Path of the value being read.
    path: Vec<Seg>,
}

type Res<T = ()> = Result<T, TextError>;

impl Parser<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> TextError {
        TextError {
            offset,
            path: FieldPath(self.path.clone()),
            message: message.into(),
        }
    }

    /// What is at `at`, for a message: a character in backticks, a control character by its
    /// code point, or the end of the file.
    fn found(&self, at: usize) -> String {
        match self.src.get(at..).and_then(|s| s.chars().next()) {
            None => "the end of the file".into(),
            Some(c) if c.is_control() || c.is_whitespace() => format!("U+{:04X}", c as u32),
            Some(c) => format!("`{c}`"),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Res {
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(self.err(
                self.pos,
                format!("nested deeper than {MAX_DEPTH} levels"),
            )),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.list(depth + 1),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't' | b'f' | b'n') => self.literal(),
            _ => Err(self.err(
                self.pos,
                format!(
                    "expected a value (an object, list, string, number, true, false or null), found {}",
                    self.found(self.pos)
                ),
            )),
        }
    }

    fn object(&mut self, depth: usize) -> Res {
        let open = self.pos;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        // Key → offset of its first occurrence.
        let mut keys: HashMap<String, usize> = HashMap::new();
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err(
                    self.pos,
                    format!(
                        "expected a key (a string in double quotes) in the object opened at {}, found {}",
                        self.at(open),
                        self.found(self.pos)
                    ),
                ));
            }
            let key_at = self.pos;
            let key = self.string()?;
            self.path.push(Seg::Key(key.clone()));
            if let Some(first) = keys.get(&key) {
                return Err(self.err(
                    key_at,
                    format!(
                        "duplicate key `{key}` (first at {}): a key may appear once in an object",
                        self.at(*first)
                    ),
                ));
            }
            keys.insert(key, key_at);
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err(
                    self.pos,
                    format!("expected `:` after the key, found {}", self.found(self.pos)),
                ));
            }
            self.pos += 1;
            self.ws();
            self.value(depth)?;
            self.path.pop();
            self.ws();
            match self.peek() {
                Some(b',') => {
                    let comma = self.pos;
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        return Err(self.err(comma, "trailing comma: no member follows it"));
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!(
                        "expected `,` or `}}` after a member of the object opened at {}, found {}",
                        self.at(open),
                        self.found(self.pos)
                    ),
                    ))
                }
            }
        }
    }

    fn list(&mut self, depth: usize) -> Res {
        let open = self.pos;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        for i in 0.. {
            self.path.push(Seg::Index(i));
            self.value(depth)?;
            self.path.pop();
            self.ws();
            match self.peek() {
                Some(b',') => {
                    let comma = self.pos;
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        return Err(self.err(comma, "trailing comma: no element follows it"));
                    }
                }
                Some(b']') => break,
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!(
                        "expected `,` or `]` after an element of the list opened at {}, found {}",
                        self.at(open),
                        self.found(self.pos)
                    ),
                    ))
                }
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `line L, column C` of a byte offset.
    fn at(&self, offset: usize) -> String {
        let (l, c) = line_col(self.src, offset);
        format!("line {l}, column {c}")
    }

    /// Reads the string at the opening quote; returns it unescaped.
    fn string(&mut self) -> Res<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.pos += 1;
            }
            // Stopped at an ASCII byte (or the end): a char boundary.
            out.push_str(&self.src[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.escape()?),
                Some(b'\n') => {
                    return Err(self.err(
                        self.pos,
                        format!(
                            "a line break in the string opened at {}: close it with `\"`, or write the break as `\\n`",
                            self.at(open)
                        ),
                    ))
                }
                Some(c) => {
                    return Err(self.err(
                        self.pos,
                        format!(
                            "control character U+{c:04X} in a string: write it as an escape (`\\t`, `\\u{c:04x}`)"
                        ),
                    ))
                }
                None => {
                    return Err(self.err(
                        self.pos,
                        format!(
                            "the file ends inside the string opened at {}",
                            self.at(open)
                        ),
                    ))
                }
            }
        }
    }

    /// Reads one escape at the backslash.
    fn escape(&mut self) -> Res<char> {
        let at = self.pos;
        let c = match self.b.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => {
                let shown: String = self.src[at..].chars().take(2).collect();
                return Err(self.err(
                    at,
                    format!(
                        "invalid escape `{shown}`: the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"
                    ),
                ));
            }
        };
        self.pos += 2;
        Ok(c)
    }

    /// `\uXXXX`, or a surrogate pair of two.
    fn unicode_escape(&mut self) -> Res<char> {
        let at = self.pos;
        let hi = self.hex4()?;
        if !(0xd800..0xe000).contains(&hi) {
            return char::from_u32(hi).ok_or_else(|| self.err(at, "invalid \\u escape"));
        }
        let lone = |p: &Self| {
            p.err(
                at,
                format!("lone surrogate `\\u{hi:04x}` in a string: a \\uD800-\\uDBFF escape must be followed by a \\uDC00-\\uDFFF one"),
            )
        };
        if hi >= 0xdc00 || self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
            return Err(lone(self));
        }
        let lo = self.hex4()?;
        if !(0xdc00..0xe000).contains(&lo) {
            return Err(lone(self));
        }
        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        char::from_u32(c).ok_or_else(|| lone(self))
    }

    /// Four hex digits after `\u` at `pos`.
    fn hex4(&mut self) -> Res<u32> {
        let at = self.pos;
        let digits = self.b.get(at + 2..at + 6).unwrap_or_default();
        let n = std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.len() == 4 && d.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match n {
            Some(n) => {
                self.pos += 6;
                Ok(n)
            }
            None => Err(self.err(at, "invalid \\u escape: four hex digits must follow `\\u`")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Res {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_at = self.pos;
        let n = self.digits();
        let bad = |p: &Self, why: &str| {
            let end = p.b[p.pos..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || b"+-.".contains(c)))
                .map_or(p.b.len(), |n| p.pos + n);
            let text = p.src.get(start..end).unwrap_or("");
            p.err(start, format!("invalid number `{text}`: {why}"))
        };
        if n == 0 {
            return Err(bad(self, "a digit must follow `-`"));
        }
        if n > 1 && self.b[int_at] == b'0' {
            return Err(bad(self, "no leading zeros"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(bad(self, "a digit must follow `.`"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(bad(self, "a digit must follow the exponent"));
            }
        }
        let text = &self.src[start..self.pos];
        const RANGE: &str = "-9223372036854775808 (i64::MIN) to 18446744073709551615 (u64::MAX)";
        if !integer {
            return Err(self.err(
                start,
                format!("`{text}` is not an integer: numbers in a case are integers from {RANGE}"),
            ));
        }
        let fits = if text.starts_with('-') {
            text.parse::<i64>().is_ok()
        } else {
            text.parse::<u64>().is_ok()
        };
        if !fits {
            return Err(self.err(
                start,
                format!("`{text}` is out of range: integers go from {RANGE}"),
            ));
        }
        Ok(())
    }

    fn literal(&mut self) -> Res {
        let word = self.b[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let text = &self.src[self.pos..self.pos + word];
        if matches!(text, "true" | "false" | "null") {
            self.pos += word;
            return Ok(());
        }
        Err(self.err(
            self.pos,
            format!("expected a value, found `{text}`: the literals are true, false and null"),
        ))
    }
}

#[cfg(test)]
mod tests;
