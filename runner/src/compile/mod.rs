//! Compile layer: an instance's `prog` step becomes a `ProgramSpec` — BPF instructions from the
//! typed assembler, the maps they reference, the run-time parameters it reads, and the layout of
//! the result slots it writes.
//!
//! Owns: code generation and result layout, deterministic and byte-for-byte testable. Must not:
//! make syscalls. Map value sizes are inputs (a `"max"` size is measured by the executor first).

pub mod asm;
pub mod text;

use crate::case::value::TaskArg;
use crate::case::value::{FlagsArg, ValueArg};
use crate::case::{OpSpec, StepSpec, Width};
use crate::tables::{self, Helper, ProgType};
use asm::{Asm, Cond, Reg, Size};

/// Bytes of a map value that a `get` copies back to user space.
pub const MAX_PAYLOAD: u32 = 64;
/// The BPF stack.
const STACK: u32 = 512;

/// Slot states written by the program (the slot's first u64).
pub mod state {
    /// The program never reached the operation.
    pub const NOT_REACHED: u64 = 0;
    pub const DONE: u64 = 1;
    /// `bpf_task_from_pid` found no task: the helper was not called.
    pub const NO_TASK: u64 = 2;
    /// The pointer was NULL and the operation checks for it: nothing was read or written.
    pub const SKIPPED_NULL: u64 = 3;
}

/// Where an operation's result lives in the result map's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub offset: u32,
    /// Bytes of payload after the state and return words.
    pub payload: u32,
}

/// What the program reads at run time, one u64 each, from the result map after the slots
/// (user space writes them before the program runs): values the verifier must not know, and
/// values only known at run time. Programs of every type read them the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// A flags value the verifier cannot know.
    Flags(u64),
    /// The pid of a child process, for `bpf_task_from_pid`.
    ChildPid(String),
    /// The runner's triggering thread as `bpf_get_current_pid_tgid` gives it (tgid << 32 |
    /// tid): attached programs act only for that thread's own events.
    RunnerThread,
}

/// One loadable program and everything needed to run and observe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub prog_type: &'static ProgType,
    /// Map relocations index the instance's maps; index `maps.len()` is the result map.
    pub program: asm::Program,
    /// Values user space writes at `params_offset` before every run.
    pub params: Vec<Param>,
    pub params_offset: u32,
    /// One slot per operation, in order.
    pub slots: Vec<Slot>,
    /// Size of the result map's value: a u64 "finished" word, the slots, then the params.
    pub result_size: u32,
    /// Helpers the program calls (probed before loading).
    pub helpers: Vec<&'static Helper>,
    /// kfuncs the program calls (looked up in the kernel's BTF).
    pub kfuncs: Vec<&'static str>,
    /// Per-CPU kernel values the program reads (their variables looked up in the kernel's BTF).
    pub percpu: Vec<&'static tables::PerCpuValue>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("the stack buffers need {0} bytes; the BPF stack has {STACK}")]
    StackOverflow(u64),
    #[error("offset {0} is out of range")]
    Offset(u32),
    #[error("assembler: {0}")]
    Asm(#[from] asm::AsmError),
}

struct Gen {
    a: Asm,
    /// Count calls and failures instead of recording one run (programs that stay attached).
    counting: bool,
    helpers: Vec<&'static Helper>,
    kfuncs: Vec<&'static str>,
    percpu: Vec<&'static tables::PerCpuValue>,
    params: Vec<Param>,
    params_offset: u32,
    result_map: usize,
}

impl Gen {
    fn helper(&mut self, h: &'static Helper) {
        if !self.helpers.contains(&h) {
            self.helpers.push(h);
        }
        self.a.call_helper(h.id);
    }
    /// `dst = ` this CPU's per-CPU kernel value (through `bpf_this_cpu_ptr`; clobbers r0-r5).
    fn percpu_value(&mut self, size: Size, dst: Reg, v: &'static tables::PerCpuValue) {
        if !self.helpers.contains(&&tables::THIS_CPU_PTR) {
            self.helpers.push(&tables::THIS_CPU_PTR);
        }
        if !self.percpu.contains(&v) {
            self.percpu.push(v);
        }
        self.a
            .percpu_value(size, dst, v.name, tables::THIS_CPU_PTR.id);
    }
    fn kfunc(&mut self, name: &'static str) {
        if !self.kfuncs.contains(&name) {
            self.kfuncs.push(name);
        }
        self.a.call_kfunc(name);
    }
    /// Offset from r9 of a parameter's u64.
    fn param(&mut self, f: Param) -> Result<i16, CompileError> {
        let i = match self.params.iter().position(|x| *x == f) {
            Some(i) => i,
            None => {
                self.params.push(f);
                self.params.len() - 1
            }
        };
        off16(self.params_offset + i as u32 * 8)
    }
    /// `*(u64 *)(r9 + off) += 1`, through r1.
    fn bump(&mut self, off: u32) -> Result<(), CompileError> {
        let o = off16(off)?;
        self.a.ldx(Size::DW, Reg::R1, Reg::R9, o);
        self.a.alu64_imm(asm::Alu::Add, Reg::R1, 1);
        self.a.stx(Size::DW, Reg::R9, o, Reg::R1);
        Ok(())
    }
    /// Marks an operation done: its state word is DONE, or, when counting, one call more.
    fn done(&mut self, slot: u32) -> Result<(), CompileError> {
        if self.counting {
            self.bump(slot)
        } else {
            self.put(slot, state::DONE as i32)
        }
    }
    /// When counting: one failure more (slot's second word) if `r0 == failure`.
    fn count_failure(&mut self, slot: u32, failure: i32) -> Result<(), CompileError> {
        let skip = self.a.new_label();
        self.a.jmp_imm(Cond::Ne, Reg::R0, failure, skip);
        self.bump(slot + 8)?;
        self.a.place(skip);
        Ok(())
    }
    /// `*(u64 *)(r9 + off) = imm`
    fn put(&mut self, off: u32, imm: i32) -> Result<(), CompileError> {
        self.a.st_imm(Size::DW, Reg::R9, off16(off)?, imm);
        Ok(())
    }
    /// dst = a 64-bit constant, in the shortest form.
    fn load_const(&mut self, dst: Reg, v: u64) {
        if (v as i64) >= i32::MIN as i64 && (v as i64) <= i32::MAX as i64 {
            self.a.mov64_imm(dst, v as i64 as i32);
        } else {
            self.a.ld_imm64(dst, v);
        }
    }
    /// Puts the task argument in r7 (child) or leaves it to `task_to_r2`. Returns the label
    /// to jump to when a child's task is not found.
    fn task_prepare(
        &mut self,
        task: &TaskArg,
        slot: u32,
    ) -> Result<Option<asm::Label>, CompileError> {
        match task {
            TaskArg::Child(name) => {
                let off = self.param(Param::ChildPid(name.clone()))?;
                self.a.ldx(Size::W, Reg::R1, Reg::R9, off);
                self.kfunc(tables::KFUNC_TASK_FROM_PID);
                let found = self.a.new_label();
                let missing = self.a.new_label();
                self.a.jmp_imm(Cond::Ne, Reg::R0, 0, found);
                if !self.counting {
                    self.put(slot, state::NO_TASK as i32)?;
                }
                self.a.ja(missing);
                self.a.place(found);
                self.a.mov64_reg(Reg::R7, Reg::R0);
                Ok(Some(missing))
            }
            TaskArg::Current => {
                self.helper(&tables::GET_CURRENT_TASK_BTF);
                self.a.mov64_reg(Reg::R7, Reg::R0);
                Ok(None)
            }
            TaskArg::Null | TaskArg::Scalar => Ok(None),
        }
    }
    fn task_to_r2(&mut self, task: &TaskArg) {
        match task {
            TaskArg::Child(_) | TaskArg::Current => self.a.mov64_reg(Reg::R2, Reg::R7),
            TaskArg::Null => self.a.mov64_imm(Reg::R2, 0),
            TaskArg::Scalar => self.a.mov64_imm(Reg::R2, 1),
        }
    }
    fn task_release(&mut self, task: &TaskArg, missing: Option<asm::Label>) {
        if let TaskArg::Child(_) = task {
            self.a.mov64_reg(Reg::R1, Reg::R7);
            self.kfunc(tables::KFUNC_TASK_RELEASE);
        }
        if let Some(l) = missing {
            self.a.place(l);
        }
    }
}

fn off16(off: u32) -> Result<i16, CompileError> {
    i16::try_from(off).map_err(|_| CompileError::Offset(off))
}

fn size_of(bytes: u32) -> Size {
    match bytes {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => Size::DW,
    }
}

fn width(w: Width) -> Size {
    size_of(w.bytes())
}

/// Copies `len` bytes from `*(src + 0..)` to `*(r9 + dst..)` with the widest loads that fit.
fn copy_out(g: &mut Gen, src: Reg, len: u32, dst: u32) -> Result<(), CompileError> {
    let mut k = 0;
    while k < len {
        let step = [8, 4, 2, 1].into_iter().find(|s| k + s <= len).unwrap_or(1);
        g.a.ldx(size_of(step), Reg::R1, src, off16(k)?);
        g.a.stx(size_of(step), Reg::R9, off16(dst + k)?, Reg::R1);
        k += step;
    }
    Ok(())
}

fn payload_of(op: &OpSpec, value_sizes: &[u32], counting: bool) -> u32 {
    match op {
        _ if counting => 0,
        OpSpec::Get { map, .. } => value_sizes[*map].min(MAX_PAYLOAD).div_ceil(8) * 8,
        OpSpec::Read { .. } => 8,
        OpSpec::Delete { .. } | OpSpec::Write { .. } | OpSpec::CurrentTask { .. } => 0,
    }
}

/// How a program records what its operations got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One run: each slot holds its operation's state, result and bytes.
    Once,
    /// Any number of runs (a program that stays attached): the finished word counts runs; each
    /// slot counts calls and failures (NULL from get and current_task, -EBUSY from delete).
    Count,
}

/// Compiles the operations of one `prog` step that runs once. `value_sizes[i]` is the value
/// size of map `i` (`value_sizes.len()` is the result map's index).
pub fn compile(
    prog_type: &'static ProgType,
    ops: &[OpSpec],
    value_sizes: &[u32],
) -> Result<ProgramSpec, CompileError> {
    compile_mode(prog_type, ops, value_sizes, Mode::Once, Hook::Own)
}

/// Compiles a `prog` step as it will run: its own program type, and counting when it stays
/// attached. None for other steps.
pub fn compile_step(
    step: &StepSpec,
    value_sizes: &[u32],
) -> Option<Result<ProgramSpec, CompileError>> {
    match step {
        // A C program is not compiled.
        StepSpec::Prog {
            object: Some(_), ..
        } => None,
        StepSpec::Prog {
            asm: Some(asm),
            prog_type,
            ..
        } => Some(Ok(text::spec(prog_type, &asm.program))),
        StepSpec::Prog {
            ops,
            prog_type,
            stay,
            attach_to,
            ..
        } => {
            let mode = if *stay { Mode::Count } else { Mode::Once };
            // A program that stays attached, or that a case attaches to a hook of its choice,
            // may run in whatever context the kernel calls that hook.
            let hook = if *stay || attach_to.is_some() {
                Hook::Any
            } else {
                Hook::Own
            };
            Some(compile_mode(prog_type, ops, value_sizes, mode, hook))
        }
        _ => None,
    }
}

/// Where an attached program's hook may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// The program type's own target, which the runner's trigger reaches from its own thread's
    /// task context only (a system call, a file open, a test run).
    Own,
    /// A hook of the case's choice, which the kernel may also call from interrupts while the
    /// runner's thread is current: the program checks that it runs in task context.
    Any,
}

/// The stack frame, from r10 down: [top: room for "small" buffers, which end at the frame's
/// last byte] [one spilled pointer per op, zeroed first so a read after a skipped get sees
/// NULL] [each get's value buffer].
struct Frame {
    /// Bytes above the spilled pointers.
    top: u32,
    /// Per op: the offset from r10 of its value buffer, if it has one.
    buffers: Vec<Option<i32>>,
}

impl Frame {
    /// Sized in u64 from value sizes up to u32::MAX (a size near it must not wrap around to a
    /// small frame), and refused before anything is laid out when it exceeds the BPF stack.
    fn new(ops: &[OpSpec], value_sizes: &[u32]) -> Result<Frame, CompileError> {
        let rounded = |map: usize| u64::from(value_sizes[map]).div_ceil(8) * 8;
        let top = ops
            .iter()
            .filter_map(|o| match o {
                OpSpec::Get {
                    map,
                    value: ValueArg::Small,
                    ..
                } => Some(rounded(*map)),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let spills = u64::try_from(ops.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(8);
        let mut depth = top.saturating_add(spills);
        // Distance below r10 of each buffer, in u64 until the frame is known to fit.
        let mut below = Vec::with_capacity(ops.len());
        for op in ops {
            below.push(match op {
                OpSpec::Get {
                    value: ValueArg::Small,
                    map,
                    ..
                } => Some(u64::from(value_sizes[*map].saturating_sub(1))),
                OpSpec::Get { map, value, .. } if *value != ValueArg::Null => {
                    depth = depth.saturating_add(rounded(*map));
                    Some(depth)
                }
                _ => None,
            });
        }
        if depth > u64::from(STACK) {
            return Err(CompileError::StackOverflow(depth));
        }
        // Every distance is at most `depth`, at most STACK: these conversions cannot fail.
        let fits = |d: u64| i32::try_from(d).map_err(|_| CompileError::StackOverflow(depth));
        let buffers = below
            .into_iter()
            .map(|b| b.map(|d| fits(d).map(|d| -d)).transpose())
            .collect::<Result<_, _>>()?;
        let top = u32::try_from(top).map_err(|_| CompileError::StackOverflow(depth))?;
        Ok(Frame { top, buffers })
    }
}

/// `compile`, with the recording mode and the kind of hook chosen.
pub fn compile_mode(
    prog_type: &'static ProgType,
    ops: &[OpSpec],
    value_sizes: &[u32],
    mode: Mode,
    hook: Hook,
) -> Result<ProgramSpec, CompileError> {
    let counting = mode == Mode::Count;
    let frame = Frame::new(ops, value_sizes)?;
    let (top, buffers) = (frame.top, frame.buffers);
    let spill_at = |i: usize| -((top + (i as u32 + 1) * 8) as i16);

    // Result map value: [finished u64][one slot per op][params].
    let mut slots = Vec::with_capacity(ops.len());
    let mut offset = 8u32;
    for op in ops {
        let payload = payload_of(op, value_sizes, counting);
        slots.push(Slot { offset, payload });
        offset += 16 + payload;
    }
    let mut g = Gen {
        a: Asm::new(),
        counting,
        helpers: Vec::new(),
        kfuncs: Vec::new(),
        percpu: Vec::new(),
        params: Vec::new(),
        params_offset: offset,
        result_map: value_sizes.len(),
    };
    let out = g.a.new_label();
    g.a.mov64_reg(Reg::R6, Reg::R1);
    g.a.ld_map_value(Reg::R9, g.result_map, 0);
    if prog_type.attached() {
        // An attached program sees every task's events: it acts for the runner's triggering
        // thread only (the whole pid_tgid: the runner's other threads trigger it too), on a
        // hook that interrupts may reach in that thread's task context (an interrupt that
        // arrives while the thread is current is not its doing) unless the type runs in
        // interrupts by design, and, running once, once.
        g.helper(&tables::GET_CURRENT_PID_TGID);
        let me = g.param(Param::RunnerThread)?;
        g.a.ldx(Size::DW, Reg::R1, Reg::R9, me);
        g.a.jmp_reg(Cond::Ne, Reg::R0, Reg::R1, out);
        if hook == Hook::Any && !prog_type.runs_in_interrupt() {
            g.percpu_value(Size::W, Reg::R1, &tables::PREEMPT_COUNT);
            g.a.jmp_imm(Cond::Set, Reg::R1, tables::PREEMPT_NOT_TASK_MASK, out);
        }
        if !counting {
            g.a.ldx(Size::DW, Reg::R1, Reg::R9, 0);
            g.a.jmp_imm(Cond::Ne, Reg::R1, 0, out);
        }
    }
    for i in 0..ops.len() {
        g.a.st_imm(Size::DW, Reg::R10, spill_at(i), 0);
    }

    let mut deferred = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let slot = slots[i].offset;
        match op {
            OpSpec::Get {
                map,
                task,
                value,
                flags,
                ..
            } => {
                let vs = value_sizes[*map];
                // The value buffer is written before any call: calls clobber r1-r5. A get
                // with a buffer has `vs` ≤ STACK here: `Frame::new` refused larger ones.
                let buf = buffers[i];
                match (value, buf) {
                    (ValueArg::Init(p), Some(b)) => store_bytes(&mut g, b, &p.bytes(vs as usize))?,
                    (ValueArg::Small, Some(b)) => {
                        store_bytes(&mut g, b, &vec![0; vs.saturating_sub(1) as usize])?
                    }
                    _ => {}
                }
                let missing = g.task_prepare(task, slot)?;
                g.task_to_r2(task);
                g.a.ld_map_fd(Reg::R1, *map);
                match buf {
                    Some(b) => {
                        g.a.mov64_reg(Reg::R3, Reg::R10);
                        g.a.alu64_imm(asm::Alu::Add, Reg::R3, b);
                    }
                    None => g.a.mov64_imm(Reg::R3, 0),
                }
                match flags {
                    FlagsArg::Const(f) => g.load_const(Reg::R4, *f),
                    FlagsArg::Runtime(f) => {
                        let off = g.param(Param::Flags(*f))?;
                        g.a.ldx(Size::DW, Reg::R4, Reg::R9, off);
                    }
                }
                g.helper(&tables::TASK_STORAGE_GET);
                g.a.stx(Size::DW, Reg::R10, spill_at(i), Reg::R0);
                g.done(slot)?;
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
                    } => *t == i,
                    _ => false,
                });
                if counting {
                    g.count_failure(slot, 0)?;
                } else if unchecked_use {
                    deferred.push((i, slot, vs));
                } else {
                    copy_result(&mut g, Reg::R0, slot, vs)?;
                }
                g.task_release(task, missing);
            }
            OpSpec::CurrentTask { .. } => {
                g.helper(&tables::GET_CURRENT_TASK_BTF);
                g.done(slot)?;
                if counting {
                    g.count_failure(slot, 0)?;
                } else {
                    let null = g.a.new_label();
                    g.a.jmp_imm(Cond::Eq, Reg::R0, 0, null);
                    g.put(slot + 8, 1)?;
                    g.a.place(null);
                }
            }
            OpSpec::Delete { map, task, .. } => {
                let missing = g.task_prepare(task, slot)?;
                g.task_to_r2(task);
                g.a.ld_map_fd(Reg::R1, *map);
                g.helper(&tables::TASK_STORAGE_DELETE);
                if counting {
                    g.done(slot)?;
                    g.count_failure(slot, -libc::EBUSY)?;
                } else {
                    g.a.stx(Size::DW, Reg::R9, off16(slot + 8)?, Reg::R0);
                    g.put(slot, state::DONE as i32)?;
                }
                g.task_release(task, missing);
            }
            OpSpec::Read {
                from,
                offset: at,
                width: w,
                null_check,
                ..
            } => {
                g.a.ldx(Size::DW, Reg::R1, Reg::R10, spill_at(*from));
                let skip = null_guard(&mut g, *null_check, slot)?;
                g.a.ldx(width(*w), Reg::R2, Reg::R1, off16(*at)?);
                g.a.stx(Size::DW, Reg::R9, off16(slot + 8)?, Reg::R2);
                g.done(slot)?;
                if let Some(l) = skip {
                    g.a.place(l);
                }
            }
            OpSpec::Write {
                to,
                value,
                offset: at,
                width: w,
                null_check,
                ..
            } => {
                g.a.ldx(Size::DW, Reg::R1, Reg::R10, spill_at(*to));
                let skip = null_guard(&mut g, *null_check, slot)?;
                g.load_const(Reg::R2, *value);
                g.a.stx(width(*w), Reg::R1, off16(*at)?, Reg::R2);
                g.done(slot)?;
                if let Some(l) = skip {
                    g.a.place(l);
                }
            }
        }
    }
    for (i, slot, vs) in deferred {
        g.a.ldx(Size::DW, Reg::R2, Reg::R10, spill_at(i));
        copy_result(&mut g, Reg::R2, slot, vs)?;
    }
    if counting {
        g.bump(0)?;
    } else {
        g.put(0, 1)?;
    }
    g.a.place(out);
    g.a.mov64_imm(Reg::R0, 0);
    g.a.exit();
    Ok(ProgramSpec {
        prog_type,
        program: g.a.finish()?,
        result_size: g.params_offset + g.params.len() as u32 * 8,
        params: g.params,
        params_offset: g.params_offset,
        slots,
        helpers: g.helpers,
        kfuncs: g.kfuncs,
        percpu: g.percpu,
    })
}

/// A get's result: a non-NULL flag and the first bytes of the value, from pointer `src` (not r1).
fn copy_result(g: &mut Gen, src: Reg, slot: u32, vs: u32) -> Result<(), CompileError> {
    let null = g.a.new_label();
    g.a.jmp_imm(Cond::Eq, src, 0, null);
    g.put(slot + 8, 1)?;
    copy_out(g, src, vs.min(MAX_PAYLOAD), slot + 16)?;
    g.a.place(null);
    Ok(())
}

/// With a NULL check: when r1 is NULL, mark the slot skipped and jump to the returned label.
fn null_guard(g: &mut Gen, check: bool, slot: u32) -> Result<Option<asm::Label>, CompileError> {
    if !check {
        return Ok(None);
    }
    let ok = g.a.new_label();
    let end = g.a.new_label();
    g.a.jmp_imm(Cond::Ne, Reg::R1, 0, ok);
    if !g.counting {
        g.put(slot, state::SKIPPED_NULL as i32)?;
    }
    g.a.ja(end);
    g.a.place(ok);
    Ok(Some(end))
}

/// Writes `bytes` to the stack at `r10 + at` with the widest aligned stores that fit (the
/// verifier insists on aligned stack access).
fn store_bytes(g: &mut Gen, at: i32, bytes: &[u8]) -> Result<(), CompileError> {
    let mut k = 0usize;
    while k < bytes.len() {
        let pos = at + k as i32;
        let step = [8usize, 4, 2, 1]
            .into_iter()
            .find(|s| k + s <= bytes.len() && pos.rem_euclid(*s as i32) == 0)
            .unwrap_or(1);
        let mut w = [0u8; 8];
        w[..step].copy_from_slice(&bytes[k..k + step]);
        let v = u64::from_le_bytes(w);
        let off = i16::try_from(pos).map_err(|_| CompileError::Offset(pos.unsigned_abs()))?;
        if step == 8 {
            g.load_const(Reg::R1, v);
            g.a.stx(Size::DW, Reg::R10, off, Reg::R1);
        } else {
            g.a.st_imm(size_of(step as u32), Reg::R10, off, v as u32 as i32);
        }
        k += step;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
