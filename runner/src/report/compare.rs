//! Judging a comparison rule (see `case::compare`) against an observation: both sides read
//! from the rendered results.

use super::{render, CheckState};
use crate::case::compare::{holds, value, Compare, Operand, ResultRef, Value};
use crate::exec::Observation;

/// A comparison rule against the observation: held, or what each side was.
pub(super) fn judge(c: &Compare, obs: &Observation) -> CheckState {
    let side = |r: &ResultRef| {
        let got = obs.result(&r.result).map(render);
        let v = got.as_deref().and_then(|g| value(g, r.field.as_deref()));
        let name = match &r.field {
            Some(f) => format!("{}.{f}", r.result),
            None => r.result.clone(),
        };
        let shown = match (&v, got) {
            (Some(Value::Num(n)), _) => n.to_string(),
            (Some(Value::Text(t)), _) => t.clone(),
            (None, Some(g)) => format!("{g} (no number {name})"),
            (None, None) => "absent".into(),
        };
        (v, name, shown)
    };
    let (left, _, left_shown) = side(&c.left);
    let (right, right_named) = match &c.right {
        Operand::Num(n) => (Some(Value::Num(*n)), None),
        Operand::Result(r) => {
            let (v, name, shown) = side(r);
            (v, Some(format!("{name} is {shown}")))
        }
    };
    match (&left, &right) {
        (Some(l), Some(r)) if holds(c.op, l, r) => CheckState::Held,
        _ => CheckState::NotHeld {
            got: match right_named {
                Some(r) => format!("got {left_shown} ({r})"),
                None => format!("got {left_shown}"),
            },
        },
    }
}
