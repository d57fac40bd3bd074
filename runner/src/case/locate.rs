//! Maps a JSON field path (e.g. `steps[2].prog[0].get.flags`) to the 1-based
//! line/column in the original source text where the value at that path begins,
//! so semantic errors in case files can name `file:line:col`.
//!
//! This module does not validate JSON: it assumes the text already parsed with
//! serde_json and only scans far enough to find positions. On malformed text it
//! returns `None`; it never panics.

use std::fmt;

/// One step of a [`FieldPath`]: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `steps[2].prog[0].get.flags`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The empty path, naming the whole document.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// A new path extended by object key `k`.
    pub fn key(&self, k: &str) -> Self {
        self.with(Seg::Key(k.to_owned()))
    }

    /// A new path extended by array index `i`.
    pub fn index(&self, i: usize) -> Self {
        self.with(Seg::Index(i))
    }

    fn with(&self, seg: Seg) -> Self {
        FieldPath(self.0.iter().cloned().chain([seg]).collect())
    }
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    if is_ident(k) {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// 1-based line and column (columns count chars, not bytes) where the value at
/// `path` begins. For an object key's value this is the first char of the value;
/// if `at_key` is true and the last segment is a key, the key's opening quote is
/// reported instead. `None` if the path does not exist in the text (or the text
/// is malformed). With duplicate keys the last occurrence wins (`syntax::check` refuses
/// them before anything is located).
pub fn locate(src: &str, path: &FieldPath, at_key: bool) -> Option<(usize, usize)> {
    let s = Scanner { b: src.as_bytes() };
    let mut pos = s.ws(0);
    let mut key_pos = None;
    for seg in &path.0 {
        let (k, v) = match seg {
            Seg::Key(k) => s.find_key(pos, k).map(|(kp, vp)| (Some(kp), vp))?,
            Seg::Index(i) => (None, s.find_index(pos, *i)?),
        };
        key_pos = k;
        pos = v;
    }
    // The value must at least exist (guards against e.g. empty input at the root).
    s.skip_value(pos)?;
    let at = if at_key { key_pos.unwrap_or(pos) } else { pos };
    Some(line_col(src, at))
}

pub(super) fn line_col(src: &str, off: usize) -> (usize, usize) {
    let prefix = src.get(..off).unwrap_or(src);
    let line = prefix.bytes().filter(|&c| c == b'\n').count() + 1;
    let last = prefix.rfind('\n').map_or(0, |i| i + 1);
    (line, prefix[last..].chars().count() + 1)
}

struct Scanner<'a> {
    b: &'a [u8],
}

impl Scanner<'_> {
    fn at(&self, pos: usize) -> Option<u8> {
        self.b.get(pos).copied()
    }

    fn ws(&self, mut pos: usize) -> usize {
        while matches!(self.at(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            pos += 1;
        }
        pos
    }

    /// `pos` is at an opening quote; returns the offset just past the closing quote.
    fn skip_string(&self, pos: usize) -> Option<usize> {
        (self.at(pos)? == b'"').then_some(())?;
        let mut p = pos + 1;
        loop {
            match self.at(p)? {
                b'"' => return Some(p + 1),
                b'\\' => p += 2,
                _ => p += 1,
            }
        }
    }

    /// Reads and unescapes the string at `pos`; returns it and the offset past it.
    fn read_string(&self, pos: usize) -> Option<(String, usize)> {
        let end = self.skip_string(pos)?;
        // Both quotes are ASCII, so this slice of a `&str` is valid UTF-8.
        let mut rest = std::str::from_utf8(&self.b[pos + 1..end - 1]).ok()?;
        let mut units: Vec<u16> = Vec::with_capacity(rest.len());
        while let Some(i) = rest.find('\\') {
            units.extend(rest[..i].encode_utf16());
            let esc = *rest.as_bytes().get(i + 1)?;
            let mut len = 2;
            units.push(match b"\"\\/bfnrt".iter().position(|&c| c == esc) {
                Some(j) => u16::from(b"\"\\/\x08\x0c\n\r\t"[j]),
                None if esc == b'u' => {
                    len = 6;
                    u16::from_str_radix(rest.get(i + 2..i + 6)?, 16).ok()?
                }
                None => return None,
            });
            rest = &rest[i + len..];
        }
        units.extend(rest.encode_utf16());
        // Surrogate pairs from `\uXXXX\uXXXX` combine here.
        Some((String::from_utf16_lossy(&units), end))
    }

    /// Returns the offset after `c` and any whitespace, if `c` is at `pos`.
    fn expect(&self, pos: usize, c: u8) -> Option<usize> {
        (self.at(pos)? == c).then(|| self.ws(pos + 1))
    }

    /// Skips one value starting at `pos` (no leading whitespace); returns its end.
    /// Iterative, so deeply nested input cannot overflow the stack. Scalars are
    /// only skipped, not checked.
    fn skip_value(&self, pos: usize) -> Option<usize> {
        let mut stack: Vec<u8> = Vec::new();
        let mut p = pos;
        loop {
            match self.at(p)? {
                b'"' => {
                    p = self.skip_string(p)?;
                    if stack.is_empty() {
                        return Some(p);
                    }
                    continue;
                }
                b'{' => stack.push(b'}'),
                b'[' => stack.push(b']'),
                c @ (b'}' | b']') => {
                    if stack.pop()? != c {
                        return None;
                    }
                    if stack.is_empty() {
                        return Some(p + 1);
                    }
                }
                _ if stack.is_empty() => {
                    let scalar = |c: &&u8| c.is_ascii_alphanumeric() || b".+-".contains(c);
                    let n = self.b[p..].iter().take_while(scalar).count();
                    return (n > 0).then_some(p + n);
                }
                _ => {}
            }
            p += 1;
        }
    }

    /// Object at `pos`: returns (key offset, value offset) of the last member named `key`.
    fn find_key(&self, pos: usize, key: &str) -> Option<(usize, usize)> {
        let mut p = self.expect(pos, b'{')?;
        let mut found = None;
        loop {
            let (k, end) = self.read_string(p)?;
            let vp = self.expect(self.ws(end), b':')?;
            if k == key {
                found = Some((p, vp));
            }
            p = self.ws(self.skip_value(vp)?);
            match self.at(p)? {
                b',' => p = self.ws(p + 1),
                b'}' => return found,
                _ => return None,
            }
        }
    }

    /// Array at `pos`: returns the offset of element `idx` (checked by the caller).
    fn find_index(&self, pos: usize, idx: usize) -> Option<usize> {
        let mut p = self.expect(pos, b'[')?;
        for _ in 0..idx {
            p = self.expect(self.ws(self.skip_value(p)?), b',')?;
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> FieldPath {
        FieldPath::root()
    }

    fn flags(step: usize) -> FieldPath {
        let prog = p().key("steps").index(step).key("prog");
        prog.index(0).key("get").key("flags")
    }

    const DOC: &str = "{\n  \"name\": \"x\",\n  \"steps\": [\n    1,\n    {\"prog\": [ {\"get\": {\"flags\": 7}} ]}\n  ]\n}";

    #[test]
    fn nested_objects_and_arrays() {
        let path = flags(1);
        assert_eq!(locate(DOC, &path, false), Some((5, 34)));
        assert_eq!(locate(DOC, &path, true), Some((5, 25)));
        assert_eq!(locate(DOC, &p().key("steps").index(0), false), Some((4, 5)));
        assert_eq!(locate(DOC, &p().key("name"), false), Some((2, 11)));
    }

    #[test]
    fn at_key_true_and_false() {
        let src = r#"{"a":   [1, 2]}"#;
        assert_eq!(locate(src, &p().key("a"), false), Some((1, 9)));
        assert_eq!(locate(src, &p().key("a"), true), Some((1, 2)));
        // at_key on an index segment reports the element itself.
        assert_eq!(locate(src, &p().key("a").index(1), true), Some((1, 13)));
    }

    #[test]
    fn keys_with_escapes() {
        let src = r#"{"a\"b": 1, "c\\d": 2, "\u00e9\ud83d\ude00": 3, "t\n": 4}"#;
        assert_eq!(locate(src, &p().key("a\"b"), false), Some((1, 10)));
        assert_eq!(locate(src, &p().key("c\\d"), false), Some((1, 21)));
        assert_eq!(locate(src, &p().key("é😀"), false), Some((1, 46)));
        assert_eq!(locate(src, &p().key("t\n"), false), Some((1, 56)));
        // A string value containing brackets and escaped quotes is skipped correctly.
        let src = r#"{"s": "x\"]}{", "k": true}"#;
        assert_eq!(locate(src, &p().key("k"), false), Some((1, 22)));
    }

    #[test]
    fn last_duplicate_key_wins() {
        let src = "{\"k\": 1,\n \"k\": {\"z\": 2}}";
        assert_eq!(locate(src, &p().key("k"), false), Some((2, 7)));
        assert_eq!(locate(src, &p().key("k"), true), Some((2, 2)));
        assert_eq!(locate(src, &p().key("k").key("z"), false), Some((2, 13)));
    }

    #[test]
    fn unicode_columns_count_chars() {
        let src = "{\"é😀\": \"ü\", \"b\": null}";
        assert_eq!(locate(src, &p().key("b"), false), Some((1, 18)));
        assert_eq!(locate(src, &p().key("b"), true), Some((1, 13)));
    }

    #[test]
    fn missing_paths() {
        assert_eq!(locate(DOC, &p().key("nope"), false), None);
        assert_eq!(locate(DOC, &p().key("steps").index(2), false), None);
        assert_eq!(locate(DOC, &p().key("name").key("x"), false), None);
        assert_eq!(locate(DOC, &p().index(0), false), None);
        assert_eq!(locate("[]", &p().index(0), false), None);
        assert_eq!(locate("{}", &p().key("a"), false), None);
    }

    #[test]
    fn root_path() {
        assert_eq!(locate("  \n {\"a\": 1}", &p(), false), Some((2, 2)));
        assert_eq!(locate("[1]", &p(), true), Some((1, 1)));
        assert_eq!(locate("", &p(), false), None);
    }

    #[test]
    fn malformed_input_returns_none() {
        let deep = "[".repeat(200_000);
        // `|`-separated malformed documents.
        let bad = r#"{|{"a"|{"a":|{"a": 1|{"a" 1}|[1,|"abc|{"a\|{"\u12": 1}|{"\q": 1}|{"a": [1}|]"#;
        let bad = bad.split('|').chain([deep.as_str(), "{\"a\": 1 2}"]);
        for src in bad {
            assert_eq!(locate(src, &p().key("a"), false), None, "{src:.20}");
            assert_eq!(locate(src, &p().index(0).index(1), true), None, "{src:.20}");
        }
        // Every strict prefix of a valid document is rejected.
        let path = p().key("steps").index(1).key("prog");
        assert!(locate(DOC, &path, true).is_some());
        for i in 0..DOC.len() {
            assert_eq!(DOC.get(..i).and_then(|pre| locate(pre, &path, true)), None);
        }
    }

    #[test]
    fn display_paths() {
        assert_eq!(p().to_string(), ".");
        assert_eq!(flags(2).to_string(), "steps[2].prog[0].get.flags");
        assert_eq!(
            p().key("maps").key("my map").key("type").to_string(),
            r#"maps."my map".type"#
        );
        assert_eq!(p().index(0).key("_a1").to_string(), "[0]._a1");
        assert_eq!(p().key("1x").key("").to_string(), r#""1x"."""#);
        assert_eq!(p().key("a\"b").to_string(), r#""a\"b""#);
    }
}
