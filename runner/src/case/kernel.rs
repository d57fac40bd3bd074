//! Kernel series (`6.12`) and requirements on them (`">=6.1, <6.16"`), as an `expect` entry's
//! `when.kernel` states them: the parser, the matching and the canonical text.
//!
//! Owns: the syntax of a requirement and the reading of a series from a kernel release string.
//! Must not: find out which kernel runs (callers pass the release they know), or locate errors
//! in a file (resolution does that with the field path).

use std::fmt;

/// A kernel series, `<major>.<minor>`: what a requirement talks about. Ordered by major, then
/// minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelSeries {
    pub major: u32,
    pub minor: u32,
}

impl KernelSeries {
    /// The series of a kernel release as `uname -r` prints it (`6.1.0-56-cloud-amd64`,
    /// `7.3.4+deb13-cloud-amd64`, `6.18.0`, `6.19-rc1`); None when it does not start with
    /// `<major>.<minor>`.
    pub fn from_release(release: &str) -> Option<KernelSeries> {
        let release = release.trim();
        let (major, rest) = release.split_once('.')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        Some(KernelSeries {
            major: number(major)?,
            minor: number(&rest[..digits])?,
        })
    }

    /// The series exactly as a requirement writes it: `6.12`.
    fn parse(s: &str) -> Result<KernelSeries, String> {
        let shape = || format!("`{s}` is not a kernel series: write <major>.<minor>, e.g. 6.12");
        let mut parts = s.split('.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            return Err(shape());
        };
        let (Some(major), Some(minor)) = (number(major), number(minor)) else {
            return Err(shape());
        };
        if let Some(patch) = parts.next() {
            return Err(if number(patch).is_some() && parts.next().is_none() {
                format!(
                    "`{s}` has a patch level: a requirement names a series, <major>.<minor> ({major}.{minor})"
                )
            } else {
                shape()
            });
        }
        Ok(KernelSeries { major, minor })
    }

    /// Its position on one line, one step per series: `key(6.1) + 1 == key(6.2)`.
    fn key(self) -> u64 {
        (u64::from(self.major) << 32) | u64::from(self.minor)
    }
}

/// Decimal digits that fit in 32 bits.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for KernelSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "=",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Clause {
    Cmp(Op, KernelSeries),
    /// Both ends included.
    Range(KernelSeries, KernelSeries),
}

impl Clause {
    fn matches(&self, s: KernelSeries) -> bool {
        match *self {
            Clause::Cmp(Op::Ge, v) => s >= v,
            Clause::Cmp(Op::Gt, v) => s > v,
            Clause::Cmp(Op::Le, v) => s <= v,
            Clause::Cmp(Op::Lt, v) => s < v,
            Clause::Cmp(Op::Eq, v) => s == v,
            Clause::Range(lo, hi) => lo <= s && s <= hi,
        }
    }

    /// The series it admits as `[from, to)` on the line of [`KernelSeries::key`]; `to` None
    /// is no upper end, `from` None is nothing at all.
    fn span(&self) -> (Option<u64>, Option<u64>) {
        let after = |v: KernelSeries| v.key().checked_add(1);
        match *self {
            Clause::Cmp(Op::Ge, v) => (Some(v.key()), None),
            Clause::Cmp(Op::Gt, v) => (after(v), None),
            Clause::Cmp(Op::Le, v) => (Some(0), after(v)),
            Clause::Cmp(Op::Lt, v) => (Some(0), Some(v.key())),
            Clause::Cmp(Op::Eq, v) => (Some(v.key()), after(v)),
            Clause::Range(lo, hi) => (Some(lo.key()), after(hi)),
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clause::Cmp(op, v) => write!(f, "{}{v}", op.text()),
            Clause::Range(lo, hi) => write!(f, "{lo} - {hi}"),
        }
    }
}

/// A requirement on the kernel series: clauses that must all hold (`>=6.1, <6.16`). A clause
/// is `>=`, `>`, `<=`, `<` or `=` and a series, a bare series (that series), or an inclusive
/// range `6.1 - 6.12`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReq {
    clauses: Vec<Clause>,
}

impl KernelReq {
    /// Parses a requirement; the error says what is wrong with which part of it.
    pub fn parse(text: &str) -> Result<KernelReq, String> {
        if text.trim().is_empty() {
            return Err(format!("an empty kernel requirement: {EXAMPLES}"));
        }
        let clauses = text
            .split(',')
            .map(|c| clause(c.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let req = KernelReq { clauses };
        // A requirement no series meets is a mistake (`>=6.16, <6.1`), not a rule.
        let (mut from, mut to) = (Some(0u64), None::<u64>);
        for c in &req.clauses {
            let (f, t) = c.span();
            from = from.zip(f).map(|(a, b)| a.max(b));
            to = match (to, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        match (from, to) {
            (Some(f), Some(t)) if f < t => Ok(req),
            (Some(_), None) => Ok(req),
            _ => Err(format!("`{text}` matches no kernel series")),
        }
    }

    /// A requirement as a case writes it: a JSON string.
    pub fn from_json(v: &serde_json::Value) -> Result<KernelReq, String> {
        match v {
            serde_json::Value::String(text) => KernelReq::parse(text),
            v => Err(format!(
                r#"expected a kernel requirement, a string such as ">=6.4" or "6.1 - 6.12", found {}"#,
                super::value::kind_of(v)
            )),
        }
    }

    /// Whether the series meets every clause.
    pub fn matches(&self, series: KernelSeries) -> bool {
        self.clauses.iter().all(|c| c.matches(series))
    }
}

const EXAMPLES: &str = r#"write e.g. ">=6.4", "<6.16", "6.12", ">=6.1, <6.16" or "6.1 - 6.12""#;

fn clause(c: &str) -> Result<Clause, String> {
    if c.is_empty() {
        return Err(format!(
            "an empty clause: clauses are separated by single commas; {EXAMPLES}"
        ));
    }
    let op = [Op::Ge, Op::Le, Op::Gt, Op::Lt, Op::Eq]
        .into_iter()
        .find(|o| c.starts_with(o.text()));
    let rest = op.map_or(c, |o| c[o.text().len()..].trim_start());
    if let Some((lo, hi)) = rest.split_once('-') {
        if let Some(o) = op {
            return Err(format!(
                "`{c}`: a range takes no `{}`: write `{}`",
                o.text(),
                rest
            ));
        }
        let (lo, hi) = (
            KernelSeries::parse(lo.trim())?,
            KernelSeries::parse(hi.trim())?,
        );
        if lo > hi {
            return Err(format!("`{c}`: an empty range ({lo} comes after {hi})"));
        }
        return Ok(Clause::Range(lo, hi));
    }
    let v = KernelSeries::parse(rest).map_err(|e| {
        if rest.starts_with(['<', '>', '=', '!', '~', '^']) {
            format!("`{c}`: unknown comparison: use >=, >, <=, < or =")
        } else {
            e
        }
    })?;
    Ok(Clause::Cmp(op.unwrap_or(Op::Eq), v))
}

/// The canonical text: clauses in the order written, `, ` between them, a bare series as `=`.
impl fmt::Display for KernelReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(major: u32, minor: u32) -> KernelSeries {
        KernelSeries { major, minor }
    }

    #[test]
    fn series_from_releases() {
        let cases = [
            ("6.1.0-56-cloud-amd64", Some(s(6, 1))),
            ("7.3.4+deb13-cloud-amd64", Some(s(7, 3))),
            ("6.18.0", Some(s(6, 18))),
            ("6.18.44-fc-v1098\n", Some(s(6, 18))),
            ("6.19-rc1", Some(s(6, 19))),
            ("5.10", Some(s(5, 10))),
            ("6", None),
            ("", None),
            ("v6.1", None),
            ("6.x", None),
            ("99999999999.1.0", None),
        ];
        for (release, want) in cases {
            assert_eq!(KernelSeries::from_release(release), want, "{release:?}");
        }
        assert_eq!(s(6, 12).to_string(), "6.12");
        assert!(s(6, 9) < s(6, 10) && s(6, 19) < s(7, 0));
    }

    #[test]
    fn requirements_match_and_print_back_canonically() {
        // (requirement, canonical text, series it admits, series it does not)
        type Case = (
            &'static str,
            &'static str,
            &'static [(u32, u32)],
            &'static [(u32, u32)],
        );
        let cases: &[Case] = &[
            (
                ">=6.4",
                ">=6.4",
                &[(6, 4), (6, 12), (7, 0)],
                &[(6, 3), (5, 10)],
            ),
            ("<6.16", "<6.16", &[(6, 15), (5, 10)], &[(6, 16), (7, 3)]),
            ("=6.12", "=6.12", &[(6, 12)], &[(6, 1), (6, 13)]),
            ("6.12", "=6.12", &[(6, 12)], &[(6, 11), (7, 12)]),
            (
                " >= 6.1 ,<6.16",
                ">=6.1, <6.16",
                &[(6, 1), (6, 12)],
                &[(5, 10), (6, 16)],
            ),
            (
                "6.1 - 6.12",
                "6.1 - 6.12",
                &[(6, 1), (6, 5), (6, 12)],
                &[(6, 0), (6, 13)],
            ),
            ("6.1-6.12", "6.1 - 6.12", &[(6, 12)], &[(6, 16)]),
            (">6.1, <=6.2", ">6.1, <=6.2", &[(6, 2)], &[(6, 1), (6, 3)]),
            ("6.12 - 6.12", "6.12 - 6.12", &[(6, 12)], &[(6, 11)]),
        ];
        for (text, canonical, yes, no) in cases {
            let r = KernelReq::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), *canonical);
            assert_eq!(KernelReq::parse(canonical), Ok(r.clone()), "{canonical}");
            for &(a, b) in *yes {
                assert!(r.matches(s(a, b)), "{text} should match {a}.{b}");
            }
            for &(a, b) in *no {
                assert!(!r.matches(s(a, b)), "{text} should not match {a}.{b}");
            }
        }
    }

    #[test]
    fn malformed_requirements_say_what_is_wrong() {
        let cases = [
            ("", "an empty kernel requirement"),
            ("  ", "an empty kernel requirement"),
            (
                ">=6.4.1",
                "`6.4.1` has a patch level: a requirement names a series, <major>.<minor> (6.4)",
            ),
            ("6.1.0-56-cloud-amd64", "`6.1.0` has a patch level"),
            (
                "6",
                "`6` is not a kernel series: write <major>.<minor>, e.g. 6.12",
            ),
            (">=6.x", "`6.x` is not a kernel series"),
            ("6.1.2.3", "`6.1.2.3` is not a kernel series"),
            ("=>6.4", "`=>6.4`: unknown comparison"),
            ("!=6.4", "`!=6.4`: unknown comparison"),
            (">=6.1,", "an empty clause"),
            (">=6.1,, <6.2", "an empty clause"),
            (
                ">=6.1 - 6.12",
                "`>=6.1 - 6.12`: a range takes no `>=`: write `6.1 - 6.12`",
            ),
            (
                "6.12 - 6.1",
                "`6.12 - 6.1`: an empty range (6.12 comes after 6.1)",
            ),
            ("6.1 - ", "`` is not a kernel series"),
            (">=6.16, <6.1", "`>=6.16, <6.1` matches no kernel series"),
            (">6.1, <6.2", "`>6.1, <6.2` matches no kernel series"),
            ("=6.1, =6.2", "`=6.1, =6.2` matches no kernel series"),
            ("<0.0", "`<0.0` matches no kernel series"),
            (">=4294967296.0", "`4294967296.0` is not a kernel series"),
        ];
        for (text, want) in cases {
            match KernelReq::parse(text) {
                Ok(r) => panic!("{text:?} parsed as {r}"),
                Err(e) => assert!(e.starts_with(want), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn the_largest_series_is_no_overflow() {
        let max = s(u32::MAX, u32::MAX);
        assert!(KernelReq::parse(">4294967295.4294967295").is_err());
        let r = KernelReq::parse("<=4294967295.4294967295").expect("every series");
        assert!(r.matches(max) && r.matches(s(0, 0)));
        assert!(KernelReq::parse("=4294967295.4294967295").is_ok_and(|r| r.matches(max)));
    }
}
