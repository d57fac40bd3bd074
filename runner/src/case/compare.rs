//! Expectations that compare two results, or a result with a number: a `then` pattern that
//! starts with `==`, `!=`, `<`, `<=`, `>` or `>=` (a wildcard pattern never matches a rendered
//! result starting so: no result renders that way). Either side names a result, optionally
//! with a field: `"get.calls": "==load#1.runs"` compares the number after `calls=` in
//! `get`'s rendered text with the number after `runs=` in `load#1`'s. Without a field the
//! whole rendered text counts (`"delete": ">=0"`).
//!
//! Pure: parsing here, values from rendered text. Must not: know how results render.

use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A result, and the field of its rendered text (`runs` in `ok(runs=3 …)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRef {
    pub result: String,
    pub field: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Num(i64),
    Result(ResultRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    pub op: CmpOp,
    pub right: Operand,
}

/// The comparison a pattern states; None for a wildcard pattern.
pub fn parse(pattern: &str) -> Option<Result<Comparison, String>> {
    let ops = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(s, op)| pattern.strip_prefix(s).map(|r| (*op, r.trim())))?;
    if rest.is_empty() {
        return Some(Err(format!(
            "`{pattern}` compares with nothing: give a number or a result"
        )));
    }
    let right = match rest.parse::<i64>() {
        Ok(n) => Operand::Num(n),
        Err(_) => Operand::Result(ResultRef::text(rest)),
    };
    Some(Ok(Comparison { op, right }))
}

/// A rule that compares: both sides resolved against the result names `known` has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub left: ResultRef,
    pub op: CmpOp,
    pub right: Operand,
}

/// The comparison rule `result: pattern` states, None for a wildcard pattern; an error says
/// which side names no result.
pub fn rule(
    result: &str,
    pattern: &str,
    known: &dyn Fn(&str) -> bool,
) -> Option<Result<Compare, String>> {
    let c = match parse(pattern)? {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let unknown = |s: &str| format!("`{s}` names no result (nor a result's field)");
    let Some(left) = ResultRef::resolve(result, known) else {
        return Some(Err(unknown(result)));
    };
    let right = match c.right {
        Operand::Num(n) => Operand::Num(n),
        Operand::Result(r) => match ResultRef::resolve(&r.result, known) {
            Some(r) => Operand::Result(r),
            None => return Some(Err(unknown(&r.result))),
        },
    };
    Some(Ok(Compare {
        left,
        op: c.op,
        right,
    }))
}

impl ResultRef {
    /// `name` or `name.field` as written: the split is checked against the result names by
    /// [`ResultRef::resolve`].
    fn text(s: &str) -> ResultRef {
        ResultRef {
            result: s.to_string(),
            field: None,
        }
    }

    /// `s` as a result name (if `known` has it), else as `result.field` with a known result.
    pub fn resolve(s: &str, known: &dyn Fn(&str) -> bool) -> Option<ResultRef> {
        if known(s) {
            return Some(ResultRef::text(s));
        }
        let (r, f) = s.rsplit_once('.')?;
        let field_ok = !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (field_ok && known(r)).then(|| ResultRef {
            result: r.to_string(),
            field: Some(f.to_string()),
        })
    }
}

/// The value of rendered text `got`, or of its `field`: an integer, or else the text.
pub fn value(got: &str, field: Option<&str>) -> Option<Value> {
    let text = match field {
        None => got,
        Some(f) => {
            let at = got.match_indices(f).find_map(|(i, _)| {
                let before = got[..i].chars().last();
                let after = &got[i + f.len()..];
                let starts = before.is_none_or(|c| c == '(' || c == ' ');
                (starts && after.starts_with('=')).then(|| &after[1..])
            })?;
            let end = at.find([' ', ')']).unwrap_or(at.len());
            &at[..end]
        }
    };
    Some(match text.parse::<i64>() {
        Ok(n) => Value::Num(n),
        Err(_) => Value::Text(text.to_string()),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Num(i64),
    Text(String),
}

/// Whether `left op right` holds: numbers by value, texts for `==` and `!=` only.
pub fn holds(op: CmpOp, left: &Value, right: &Value) -> bool {
    let ord = match (left, right) {
        (Value::Num(a), Value::Num(b)) => a.cmp(b),
        (a, b) => match op {
            CmpOp::Eq => return a == b,
            CmpOp::Ne => return a != b,
            _ => return false,
        },
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_that_compare_and_those_that_do_not() {
        assert_eq!(parse("ok*"), None);
        assert_eq!(parse("calls=3 null=*"), None);
        assert_eq!(
            parse("==load#1.runs"),
            Some(Ok(Comparison {
                op: CmpOp::Eq,
                right: Operand::Result(ResultRef::text("load#1.runs"))
            }))
        );
        assert_eq!(
            parse(">= -2"),
            Some(Ok(Comparison {
                op: CmpOp::Ge,
                right: Operand::Num(-2)
            }))
        );
        assert_eq!(parse("<1").map(|c| c.map(|c| c.op)), Some(Ok(CmpOp::Lt)));
        assert!(parse("==").is_some_and(|r| r.is_err()));
    }

    #[test]
    fn references_split_at_a_field_only_when_the_whole_is_no_result() {
        let names = ["get", "st.preset", "load#1"];
        let known = |s: &str| names.contains(&s);
        assert_eq!(
            ResultRef::resolve("st.preset", &known),
            Some(ResultRef::text("st.preset"))
        );
        assert_eq!(
            ResultRef::resolve("load#1.runs", &known),
            Some(ResultRef {
                result: "load#1".into(),
                field: Some("runs".into())
            })
        );
        assert_eq!(ResultRef::resolve("nope.runs", &known), None);
        assert_eq!(ResultRef::resolve("get.", &known), None);
    }

    #[test]
    fn rules_resolve_both_sides() {
        let names = ["get", "load#1"];
        let known = |s: &str| names.contains(&s);
        let c = rule("get.calls", "==load#1.runs", &known).unwrap().unwrap();
        assert_eq!(c.left.field.as_deref(), Some("calls"));
        assert_eq!(
            c.right,
            Operand::Result(ResultRef {
                result: "load#1".into(),
                field: Some("runs".into())
            })
        );
        assert_eq!(rule("get", "ptr:*", &known), None);
        let e = rule("get", "==nothing", &known).unwrap().unwrap_err();
        assert!(e.contains("`nothing` names no result"), "{e}");
        assert!(rule("nothing.calls", ">0", &known).unwrap().is_err());
    }

    #[test]
    fn values_come_from_rendered_text() {
        let attached = "ok(runs=12 recursion_misses=0)";
        assert_eq!(value(attached, Some("runs")), Some(Value::Num(12)));
        assert_eq!(
            value(attached, Some("recursion_misses")),
            Some(Value::Num(0))
        );
        // `misses` is not a field of its own here.
        assert_eq!(value(attached, Some("misses")), None);
        assert_eq!(value("calls=4 null=1", Some("null")), Some(Value::Num(1)));
        assert_eq!(value("ok(runs>0 recursion_misses=0)", Some("runs")), None);
        assert_eq!(value("-ENOENT", None), Some(Value::Text("-ENOENT".into())));
        assert_eq!(value("0", None), Some(Value::Num(0)));
    }

    #[test]
    fn comparisons_hold_by_number_or_by_text() {
        let (n, t) = (Value::Num, |s: &str| Value::Text(s.into()));
        assert!(holds(CmpOp::Eq, &n(3), &n(3)));
        assert!(holds(CmpOp::Lt, &n(-1), &n(0)));
        assert!(!holds(CmpOp::Gt, &n(1), &n(1)));
        assert!(holds(CmpOp::Ge, &n(1), &n(1)));
        assert!(holds(CmpOp::Eq, &t("NULL"), &t("NULL")));
        assert!(holds(CmpOp::Ne, &t("NULL"), &n(0)));
        assert!(!holds(CmpOp::Lt, &t("a"), &t("b")), "texts are not ordered");
    }
}
