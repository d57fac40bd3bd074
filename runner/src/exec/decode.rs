//! Reading what a program's operations got from its result slots, as the compiler laid them
//! out (see `compile::state` and `compile::Slot`).

use super::Res;
use crate::case::{Arg, BufFill, OpSpec, Ret};
use crate::compile::asm::Cond;
use crate::compile::{self, state};

/// The kind of owner an argument finds before the call.
fn owner_kind(a: &Arg) -> Option<&'static str> {
    match a {
        Arg::Owner(o) => Some(o.kind.name),
        Arg::Plus(a, _) | Arg::Walk { base: a, .. } => owner_kind(a),
        _ => None,
    }
}

/// The result of op `op` from its slot in the result map's value `buf`.
pub(super) fn decode(op: &OpSpec, slot: &compile::Slot, buf: &[u8], value_sizes: &[u32]) -> Res {
    let at = slot.offset as usize;
    let word = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().expect("8-byte slice"));
    let st = word(at);
    let ret = word(at + 8);
    match st {
        state::NOT_REACHED => return Res::NotReached,
        state::NO_TASK => return Res::NoTask,
        state::SKIPPED_NULL => return Res::SkippedNull,
        state::NO_OWNER => {
            let kind = match op {
                OpSpec::Call(c) => c.args.iter().find_map(owner_kind),
                _ => None,
            };
            return Res::NoOwner {
                kind: kind.unwrap_or("owner").to_string(),
            };
        }
        _ => {}
    }
    match op {
        OpSpec::Call(c) => match c.ret {
            Ret::Value(_) if ret == 0 => Res::Null,
            Ret::Value(map) => {
                let vs = value_sizes[map];
                let n = vs.min(compile::MAX_PAYLOAD) as usize;
                Res::Ptr {
                    bytes: buf[at + 16..at + 16 + n].to_vec(),
                    total: vs,
                }
            }
            Ret::Ptr | Ret::Task if ret == 0 => Res::Null,
            Ret::Ptr | Ret::Task => Res::TaskPtr,
            Ret::Int => Res::Ret { value: ret as i64 },
            Ret::U64 if ret == 0 => Res::Ret { value: 0 },
            Ret::U64 => Res::Nonzero,
            Ret::Void => Res::Ok,
        },
        OpSpec::Read { width, .. } => Res::Value {
            bytes: ret.to_le_bytes()[..width.bytes() as usize].to_vec(),
        },
        OpSpec::If { .. } => Res::Branch { then: ret != 0 },
        OpSpec::Write { .. } | OpSpec::Add { .. } | OpSpec::Return { .. } => Res::Ok,
    }
}

/// The map whose value op `i`'s result shows: a call's, or the call's a read goes through.
pub(super) fn value_map(ops: &[OpSpec], i: usize) -> Option<usize> {
    let of = |o: &OpSpec| match o.call()?.ret {
        Ret::Value(m) => Some(m),
        _ => None,
    };
    match &ops[i] {
        OpSpec::Read { from, .. } => of(&ops[*from]),
        o => of(o),
    }
}

/// The map a call may fill from a buffer the program never (fully) wrote, if it got a value.
pub(super) fn fills_uninit(op: &OpSpec, res: &Res) -> Option<usize> {
    let c = op.call()?;
    let uninit = c
        .args
        .iter()
        .any(|a| matches!(a, Arg::Buf(b) if matches!(b.fill, BufFill::Uninit | BufFill::Half)));
    match (c.ret, res) {
        (Ret::Value(m), Res::Ptr { .. }) if uninit => Some(m),
        _ => None,
    }
}

/// What a program that stays attached counts as op `op`'s failures.
pub(super) fn counted(op: &OpSpec) -> &'static str {
    match op.call() {
        Some(c) => match compile::counted_failure(c) {
            Some((Cond::Ne, 0)) => "null",
            Some((Cond::Ne, v)) if v == -libc::EBUSY => "ebusy",
            Some(_) => "errors",
            None => "skipped",
        },
        None => "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::value::TaskArg;
    use crate::case::{Call, Func, Width};

    fn call(ret: Ret) -> OpSpec {
        OpSpec::Call(Call {
            name: "c".into(),
            func: Func::Kfunc("bpf_x".into()),
            args: vec![],
            ret,
        })
    }

    /// A result value with one slot at 8: state, return word, then `payload`.
    fn slot(state: u64, ret: u64, payload: &[u8]) -> (compile::Slot, Vec<u8>) {
        let mut buf = vec![0u8; 8];
        buf.extend_from_slice(&state.to_ne_bytes());
        buf.extend_from_slice(&ret.to_ne_bytes());
        buf.extend_from_slice(payload);
        let s = compile::Slot {
            offset: 8,
            payload: payload.len() as u32,
        };
        (s, buf)
    }

    #[test]
    fn results_decode_by_their_kind() {
        let done = state::DONE;
        let cases: Vec<(OpSpec, u64, u64, &[u8], Res)> = vec![
            (
                call(Ret::U64),
                done,
                0xffff_8880_0000_0000,
                &[],
                Res::Nonzero,
            ),
            (call(Ret::U64), done, 0, &[], Res::Ret { value: 0 }),
            (
                call(Ret::Int),
                done,
                -22i64 as u64,
                &[],
                Res::Ret { value: -22 },
            ),
            (call(Ret::Ptr), done, 1, &[], Res::TaskPtr),
            (call(Ret::Task), done, 0, &[], Res::Null),
            (call(Ret::Void), done, 0, &[], Res::Ok),
            (
                call(Ret::Value(0)),
                done,
                1,
                &[7, 0, 0, 0, 0, 0, 0, 0],
                Res::Ptr {
                    bytes: vec![7, 0, 0, 0, 0, 0, 0, 0],
                    total: 8,
                },
            ),
            (call(Ret::Int), state::NO_TASK, 0, &[], Res::NoTask),
            (call(Ret::Int), state::NOT_REACHED, 0, &[], Res::NotReached),
            (
                OpSpec::If {
                    name: "if".into(),
                    cond: crate::case::Cond::Null(0),
                    then_len: 0,
                    else_len: 0,
                },
                done,
                0,
                &[],
                Res::Branch { then: false },
            ),
            (
                OpSpec::Return {
                    name: "r".into(),
                    value: 1,
                },
                done,
                0,
                &[],
                Res::Ok,
            ),
        ];
        for (op, st, ret, payload, want) in cases {
            let (s, buf) = slot(st, ret, payload);
            assert_eq!(decode(&op, &s, &buf, &[8]), want, "{op:?}");
        }
    }

    #[test]
    fn buffers_never_written_taint_their_map() {
        let get = OpSpec::get(
            "g".into(),
            0,
            TaskArg::Current,
            crate::case::value::ValueArg::Uninit,
            crate::case::value::FlagsArg::Const(1),
        );
        let ptr = Res::Ptr {
            bytes: vec![],
            total: 8,
        };
        assert_eq!(fills_uninit(&get, &ptr), Some(0));
        assert_eq!(fills_uninit(&get, &Res::Null), None);
        let read = OpSpec::Read {
            name: "r".into(),
            from: 0,
            offset: 0,
            width: Width::B8,
            null_check: true,
        };
        assert_eq!(value_map(&[get.clone(), read], 1), Some(0));
        assert_eq!(counted(&get), "null");
        let delete = OpSpec::delete("d".into(), 0, TaskArg::Current);
        assert_eq!(counted(&delete), "ebusy");
        assert_eq!(counted(&call(Ret::Int)), "errors");
        assert_eq!(counted(&call(Ret::U64)), "skipped");
    }
}
