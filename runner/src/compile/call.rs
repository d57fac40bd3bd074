//! Code for a `call` op: stack buffers, tasks found or taken before the call, r1-r5 from the
//! argument sources, the call, and r0 recorded in the op's slot as its `Ret` says.

use super::asm::{Alu, Cond, Reg, Size};
use super::{copy_result, off16, state, store_bytes, CompileError, Gen, Param, MAX_PAYLOAD, STACK};
use crate::case::value::TaskArg;
use crate::case::{Arg, Buf, BufFill, Call, Func, OpSpec, OwnerArg, Ret};
use crate::tables;

const ARG_REGS: [Reg; 5] = [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5];

/// The stack frame, from r10 down: [top: room for "small" buffers, which end at the frame's
/// last byte] [one spilled result per op, zeroed first so a use after a skipped op sees
/// NULL] [each call's buffers].
pub(super) struct Frame {
    /// Bytes above the spilled results.
    pub top: u32,
    /// Per op: the offset from r10 of each of its buffers, in argument order.
    pub buffers: Vec<Vec<i32>>,
}

/// What a call's code depends on besides the call: the program's ops, its frame, the value
/// sizes of the maps.
pub(super) struct Layout<'a> {
    pub ops: &'a [OpSpec],
    pub frame: &'a Frame,
    pub value_sizes: &'a [u32],
}

/// The buffers of a call's arguments, in order, with their sizes.
fn bufs<'a>(c: &'a Call, value_sizes: &[u32]) -> Vec<(&'a Buf, u32)> {
    fn walk<'a>(a: &'a Arg, out: &mut Vec<&'a Buf>) {
        match a {
            Arg::Buf(b) => out.push(b),
            Arg::Plus(a, _) | Arg::Walk { base: a, .. } => walk(a, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    c.args.iter().for_each(|a| walk(a, &mut out));
    let map_size = first_map(c).map_or(0, |m| value_sizes[m]);
    out.into_iter()
        .map(|b| (b, b.size.unwrap_or(map_size)))
        .collect()
}

fn first_map(c: &Call) -> Option<usize> {
    c.maps().first().copied()
}

impl Frame {
    /// Sized in u64 from sizes up to u32::MAX (a size near it must not wrap around to a
    /// small frame), and refused before anything is laid out when it exceeds the BPF stack.
    pub fn new(ops: &[OpSpec], value_sizes: &[u32]) -> Result<Frame, CompileError> {
        let rounded = |size: u32| u64::from(size).div_ceil(8) * 8;
        let calls = || ops.iter().filter_map(|o| o.call());
        let top = calls()
            .flat_map(|c| bufs(c, value_sizes))
            .filter(|(b, _)| b.fill == BufFill::Small)
            .map(|(_, size)| rounded(size))
            .max()
            .unwrap_or(0);
        let spills = u64::try_from(ops.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(8);
        let mut depth = top.saturating_add(spills);
        // Distance below r10 of each buffer, in u64 until the frame is known to fit.
        let mut below = Vec::with_capacity(ops.len());
        for op in ops {
            let mut mine = Vec::new();
            if let Some(c) = op.call() {
                for (b, size) in bufs(c, value_sizes) {
                    if b.fill == BufFill::Small {
                        mine.push(u64::from(size.saturating_sub(1)));
                    } else {
                        depth = depth.saturating_add(rounded(size));
                        mine.push(depth);
                    }
                }
            }
            below.push(mine);
        }
        if depth > u64::from(STACK) {
            return Err(CompileError::StackOverflow(depth));
        }
        // Every distance is at most `depth`, at most STACK: these conversions cannot fail.
        let fits = |d: u64| i32::try_from(d).map_err(|_| CompileError::StackOverflow(depth));
        let buffers = below
            .into_iter()
            .map(|b| b.into_iter().map(|d| fits(d).map(|d| -d)).collect())
            .collect::<Result<_, _>>()?;
        let top = u32::try_from(top).map_err(|_| CompileError::StackOverflow(depth))?;
        Ok(Frame { top, buffers })
    }
}

/// What an argument needs found (a child, an owner) or taken (current) before the call, in r7.
#[derive(Clone)]
enum Prepared<'a> {
    Task(&'a TaskArg),
    Owner(&'a OwnerArg),
}

fn prepared(a: &Arg) -> Option<Prepared<'_>> {
    match a {
        Arg::Task(t @ (TaskArg::Current | TaskArg::Child(_))) => Some(Prepared::Task(t)),
        Arg::Owner(o) => Some(Prepared::Owner(o)),
        Arg::Plus(a, _) | Arg::Walk { base: a, .. } => prepared(a),
        _ => None,
    }
}

/// Whether a later op uses op `i`'s result (as an argument, a condition or a pointer).
pub(super) fn referenced(ops: &[OpSpec], i: usize) -> bool {
    fn uses(a: &Arg, i: usize) -> bool {
        match a {
            Arg::Result { op, .. } => *op == i,
            Arg::Plus(a, _) | Arg::Walk { base: a, .. } => uses(a, i),
            _ => false,
        }
    }
    ops.iter().any(|o| match o {
        OpSpec::Call(c) => c.args.iter().any(|a| uses(a, i)),
        OpSpec::Read { from: t, .. } | OpSpec::Write { to: t, .. } | OpSpec::Add { to: t, .. } => {
            *t == i
        }
        OpSpec::If { cond, .. } => cond.op() == i,
        OpSpec::Return { .. } => false,
    })
}

/// What a program that counts counts as a call's failure: (the condition on r0 under which
/// it is *not* one, the constant).
pub fn counted_failure(c: &Call) -> Option<(Cond, i32)> {
    match c.ret {
        Ret::Value(_) | Ret::Ptr | Ret::Task => Some((Cond::Ne, 0)),
        Ret::Int if c.func.name() == tables::TASK_STORAGE_DELETE.name => {
            Some((Cond::Ne, -libc::EBUSY))
        }
        Ret::Int => Some((Cond::Sge, 0)),
        Ret::U64 | Ret::Void => None,
    }
}

impl Gen {
    /// Emits call op `i` (see the module doc). `deferred` collects results copied out at the
    /// end of the program.
    pub(super) fn call(
        &mut self,
        at: &Layout<'_>,
        i: usize,
        c: &Call,
        slot: u32,
        deferred: &mut Vec<(usize, u32, u32)>,
    ) -> Result<(), CompileError> {
        let (ops, frame, value_sizes) = (at.ops, at.frame, at.value_sizes);
        // Buffers are written before any call: calls clobber r1-r5. A buffer is at most
        // STACK bytes here: `Frame::new` refused larger ones.
        let offsets = &frame.buffers[i];
        for ((b, size), at) in bufs(c, value_sizes).into_iter().zip(offsets) {
            let n = size as usize;
            match &b.fill {
                BufFill::Init(p) => store_bytes(self, *at, &p.bytes(n))?,
                BufFill::Small => store_bytes(self, *at, &vec![0; n.saturating_sub(1)])?,
                BufFill::Half => store_bytes(self, *at, &vec![0; n / 2])?,
                BufFill::Uninit => {}
            }
        }
        let mut tasks = c.args.iter().filter_map(prepared);
        let task = tasks.next();
        if tasks.next().is_some() {
            return Err(CompileError::Unsupported(format!(
                "{}: one task or owner argument found or taken per call",
                c.name
            )));
        }
        let missing = match &task {
            Some(Prepared::Task(t)) => self.task_prepare(t, slot)?,
            Some(Prepared::Owner(o)) => Some(self.owner_prepare(o, slot)?),
            None => None,
        };
        // Task arguments first, then the others in order (any order would do: loads do not
        // clobber other argument registers).
        let mut next_buf = offsets.iter().copied();
        let order = c
            .args
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Arg::Task(_) | Arg::Owner(_)))
            .chain(
                c.args
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !matches!(a, Arg::Task(_) | Arg::Owner(_))),
            );
        // Buffers are numbered in argument order: find each one's offset before reordering.
        let mut buf_of = vec![Vec::new(); c.args.len()];
        for (k, a) in c.args.iter().enumerate() {
            buf_of[k] = (0..count_bufs(a)).filter_map(|_| next_buf.next()).collect();
        }
        for (k, a) in order {
            self.arg(ARG_REGS[k], a, &mut buf_of[k].iter().copied())?;
        }
        match &c.func {
            Func::Helper(h) => self.helper(h),
            Func::Kfunc(k) => self.kfunc(k),
            Func::Value => self.a.mov64_reg(Reg::R0, Reg::R1),
        }
        self.record(ops, i, c, slot, value_sizes, deferred)?;
        match (&task, missing) {
            (Some(Prepared::Task(t)), missing) => self.task_release(t, missing),
            (Some(Prepared::Owner(o)), Some(missing)) => self.owner_release(o, missing),
            _ => {}
        }
        Ok(())
    }

    /// Records r0 of call `i` in its slot.
    fn record(
        &mut self,
        ops: &[OpSpec],
        i: usize,
        c: &Call,
        slot: u32,
        value_sizes: &[u32],
        deferred: &mut Vec<(usize, u32, u32)>,
    ) -> Result<(), CompileError> {
        let spill = self.spill_at(i);
        if matches!(c.ret, Ret::Value(_)) || (c.ret != Ret::Void && referenced(ops, i)) {
            self.a.stx(Size::DW, Reg::R10, spill, Reg::R0);
        }
        if self.counting {
            self.done(slot)?;
            if let Some((ok, v)) = counted_failure(c) {
                self.count_failure(slot, ok, v)?;
            }
            return Ok(());
        }
        match c.ret {
            Ret::Value(m) => {
                let vs = value_sizes[m];
                self.done(slot)?;
                // A NULL check here would make the verifier treat the pointer as checked for
                // every later use; when a later operation deliberately skips the check, the
                // result is copied out at the end of the program instead.
                let unchecked_use = ops.iter().any(|o| match o {
                    OpSpec::Read {
                        from: t,
                        null_check: false,
                        ..
                    }
                    | OpSpec::Write {
                        to: t,
                        null_check: false,
                        ..
                    }
                    | OpSpec::Add {
                        to: t,
                        null_check: false,
                        ..
                    } => *t == i,
                    _ => false,
                });
                if unchecked_use {
                    deferred.push((i, slot, vs));
                } else {
                    copy_result(self, Reg::R0, slot, vs)?;
                }
            }
            Ret::Ptr | Ret::Task => {
                self.done(slot)?;
                let null = self.a.new_label();
                self.a.jmp_imm(Cond::Eq, Reg::R0, 0, null);
                self.put(slot + 8, 1)?;
                self.a.place(null);
            }
            Ret::Int | Ret::U64 => {
                self.a.stx(Size::DW, Reg::R9, off16(slot + 8)?, Reg::R0);
                self.put(slot, state::DONE as i32)?;
            }
            Ret::Void => self.done(slot)?,
        }
        Ok(())
    }

    /// `dst` = argument `a`; `bufs` yields the offsets of its buffers.
    fn arg(
        &mut self,
        dst: Reg,
        a: &Arg,
        bufs: &mut dyn Iterator<Item = i32>,
    ) -> Result<(), CompileError> {
        match a {
            Arg::Const(v) => self.load_const(dst, *v),
            Arg::Runtime(v) => {
                let off = self.param(Param::Flags(*v))?;
                self.a.ldx(Size::DW, dst, Reg::R9, off);
            }
            Arg::Map(m) => self.a.ld_map_fd(dst, *m),
            Arg::Task(TaskArg::Current | TaskArg::Child(_)) | Arg::Owner(_) => {
                self.a.mov64_reg(dst, Reg::R7)
            }
            Arg::Task(TaskArg::Null) => self.a.mov64_imm(dst, 0),
            Arg::Task(TaskArg::Scalar) => self.a.mov64_imm(dst, 1),
            Arg::Pid(c) => {
                let off = self.param(Param::ChildPid(c.clone()))?;
                self.a.ldx(Size::W, dst, Reg::R9, off);
            }
            Arg::Buf(_) => {
                let b = bufs.next().ok_or(CompileError::Offset(0))?;
                self.a.mov64_reg(dst, Reg::R10);
                self.a.alu64_imm(Alu::Add, dst, b);
            }
            Arg::Result { op, offset } => {
                let spill = self.spill_at(*op);
                self.a.ldx(Size::DW, dst, Reg::R10, spill);
                if *offset != 0 {
                    self.a.alu64_imm(Alu::Add, dst, *offset);
                }
            }
            Arg::Ctx => self.a.mov64_reg(dst, Reg::R6),
            Arg::HookArg(n) => {
                let off = off16(n * 8)?;
                self.a.ldx(Size::DW, dst, Reg::R6, off);
            }
            Arg::Plus(inner, by) => {
                self.arg(dst, inner, bufs)?;
                self.a.alu64_imm(Alu::Add, dst, *by);
            }
            Arg::Walk {
                base,
                start,
                fields,
            } => {
                self.arg(dst, base, bufs)?;
                for k in 1..=fields.len() {
                    self.a.ldx_field(dst, dst, start, &fields[..k]);
                }
            }
        }
        Ok(())
    }
}

fn count_bufs(a: &Arg) -> usize {
    match a {
        Arg::Buf(_) => 1,
        Arg::Plus(a, _) | Arg::Walk { base: a, .. } => count_bufs(a),
        _ => 0,
    }
}

/// Bytes of a call's result that its slot holds after the state and return words.
pub(super) fn payload(c: &Call, value_sizes: &[u32]) -> u32 {
    match c.ret {
        Ret::Value(m) => value_sizes[m].min(MAX_PAYLOAD).div_ceil(8) * 8,
        _ => 0,
    }
}
