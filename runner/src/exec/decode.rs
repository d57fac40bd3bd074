//! Reading what a program's operations got from its result slots, as the compiler laid them
//! out (see `compile::state` and `compile::Slot`).

use super::Res;
use crate::case::{Arg, BufFill, OpSpec, Ret};
use crate::compile::asm::Cond;
use crate::compile::{self, state};

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
