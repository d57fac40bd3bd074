//! Compile layer: an instance's `prog` step becomes a `ProgramSpec` — BPF instructions from the
//! typed assembler, the maps they reference, the run-time parameters it reads, and the layout of
//! the result slots it writes.
//!
//! Owns: code generation and result layout, deterministic and byte-for-byte testable. Must not:
//! make syscalls. Map value sizes are inputs (a `"max"` size is measured by the executor first).

pub mod asm;
mod call;
pub mod text;

pub use call::counted_failure;

use crate::case::value::TaskArg;
use crate::case::{self, OpSpec, StepSpec, Width};
use crate::tables::{self, Helper, ProgType};
use asm::{Asm, Cond, Reg, Size};
use call::Frame;

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
    /// An owner's lookup kfunc (`bpf_cgroup_from_id`) found none: the call was not made.
    pub const NO_OWNER: u64 = 4;
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
    /// A value the verifier cannot know: a call's `{"runtime": N}` argument (a `get`'s
    /// `runtime:N` flags).
    Flags(u64),
    /// The pid of a child process, for `bpf_task_from_pid`.
    ChildPid(String),
    /// The id of an owner (a cgroup's id), for its kind's lookup kfunc.
    OwnerId(crate::case::OwnerArg),
    /// The runner's triggering thread as `bpf_get_current_pid_tgid` gives it (tgid << 32 |
    /// tid): attached programs act only for that thread's own events.
    RunnerThread,
    /// The runner's process id (the tgid): a program that threads trigger acts for all of them.
    RunnerProcess,
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
    pub kfuncs: Vec<String>,
    /// Per-CPU kernel values the program reads (their variables looked up in the kernel's BTF).
    pub percpu: Vec<&'static tables::PerCpuValue>,
}

impl ProgramSpec {
    /// Whether the program writes its result map (the finished word, then a slot per
    /// operation): one compiled from operations does, one given as text writes nothing.
    pub fn writes_results(&self) -> bool {
        !self.slots.is_empty()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("the stack buffers need {0} bytes; the BPF stack has {STACK}")]
    StackOverflow(u64),
    #[error("offset {0} is out of range")]
    Offset(u32),
    #[error("{0}")]
    Unsupported(String),
    #[error("assembler: {0}")]
    Asm(#[from] asm::AsmError),
}

struct Gen {
    a: Asm,
    /// Count calls and failures instead of recording one run (programs that stay attached).
    counting: bool,
    helpers: Vec<&'static Helper>,
    kfuncs: Vec<String>,
    percpu: Vec<&'static tables::PerCpuValue>,
    params: Vec<Param>,
    params_offset: u32,
    result_map: usize,
    /// Bytes of the frame above the spilled results.
    top: u32,
}

impl Gen {
    /// Offset from r10 of op `i`'s spilled result.
    fn spill_at(&self, i: usize) -> i16 {
        -((self.top + (i as u32 + 1) * 8) as i16)
    }
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
    fn kfunc(&mut self, name: &str) {
        if !self.kfuncs.iter().any(|k| k == name) {
            self.kfuncs.push(name.to_string());
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
    /// When counting: one failure more (slot's second word) unless `r0 <ok> v`.
    fn count_failure(&mut self, slot: u32, ok: Cond, v: i32) -> Result<(), CompileError> {
        let skip = self.a.new_label();
        self.a.jmp_imm(ok, Reg::R0, v, skip);
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
                let param = Param::ChildPid(name.clone());
                let found = (Size::W, tables::KFUNC_TASK_FROM_PID, state::NO_TASK);
                self.lookup_into_r7(param, found, slot).map(Some)
            }
            TaskArg::Current => {
                self.helper(&tables::GET_CURRENT_TASK_BTF);
                self.a.mov64_reg(Reg::R7, Reg::R0);
                Ok(None)
            }
            TaskArg::Null | TaskArg::Scalar => Ok(None),
        }
    }
    /// Finds an owner by its id (a run-time parameter) with its kind's lookup kfunc, into r7;
    /// returns the label to jump to when none is found.
    fn owner_prepare(
        &mut self,
        owner: &crate::case::OwnerArg,
        slot: u32,
    ) -> Result<asm::Label, CompileError> {
        let Some((lookup, _)) = owner.kind.lookup else {
            return Err(CompileError::Unsupported(format!(
                "a program finds no {} by its id",
                owner.kind.name
            )));
        };
        let param = Param::OwnerId(owner.clone());
        self.lookup_into_r7(param, (Size::DW, lookup, state::NO_OWNER), slot)
    }
    /// r7 = `kfunc(param)` (the parameter loaded as `size`); when it returns NULL, the slot's
    /// state is `missing` and the code jumps to the returned label (placed after the release).
    fn lookup_into_r7(
        &mut self,
        param: Param,
        (size, kfunc, missing_state): (Size, &str, u64),
        slot: u32,
    ) -> Result<asm::Label, CompileError> {
        let off = self.param(param)?;
        self.a.ldx(size, Reg::R1, Reg::R9, off);
        self.kfunc(kfunc);
        let found = self.a.new_label();
        let missing = self.a.new_label();
        self.a.jmp_imm(Cond::Ne, Reg::R0, 0, found);
        if !self.counting {
            self.put(slot, missing_state as i32)?;
        }
        self.a.ja(missing);
        self.a.place(found);
        self.a.mov64_reg(Reg::R7, Reg::R0);
        Ok(missing)
    }
    fn owner_release(&mut self, owner: &crate::case::OwnerArg, missing: asm::Label) {
        if let Some((_, release)) = owner.kind.lookup {
            self.a.mov64_reg(Reg::R1, Reg::R7);
            self.kfunc(release);
        }
        self.a.place(missing);
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
            run,
            ..
        } => {
            let mode = if *stay { Mode::Count } else { Mode::Once };
            // A program that stays attached, or that a case attaches to a hook of its choice,
            // may run in whatever context the kernel calls that hook.
            let hook = if let Some(f) = run.for_arg {
                Hook::Arg(f.arg)
            } else if run.for_threads {
                Hook::Threads {
                    any: attach_to.is_some(),
                }
            } else if *stay || attach_to.is_some() {
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
    /// Triggered by any thread of the runner's process (see `Param::RunnerProcess`), on a hook
    /// of the case's choice (`any`, checked as for `Any`) or the type's own.
    Threads { any: bool },
    /// A hook whose argument N is the task it runs for, in any context (an RCU callback): the
    /// program acts when that task's pid is the triggering task's.
    Arg(u32),
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

    // Result map value: [finished u64][one slot per op][params].
    let mut slots = Vec::with_capacity(ops.len());
    let mut offset = 8u32;
    for op in ops {
        let payload = match op {
            _ if counting => 0,
            OpSpec::Call(c) => call::payload(c, value_sizes),
            OpSpec::Read { .. } => 8,
            _ => 0,
        };
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
        top: frame.top,
    };
    let out = g.a.new_label();
    let finish = g.a.new_label();
    // A program that returns a value of its own keeps it in r8 until the end.
    let returns = ops.iter().any(|o| matches!(o, OpSpec::Return { .. }));
    g.a.mov64_reg(Reg::R6, Reg::R1);
    g.a.ld_map_value(Reg::R9, g.result_map, 0);
    if returns {
        g.a.mov64_imm(Reg::R8, 0);
    }
    if prog_type.attached() {
        // An attached program sees every task's events: it acts for the runner's triggering
        // thread only (the whole pid_tgid: the runner's other threads trigger it too), on a
        // hook that interrupts may reach in that thread's task context (an interrupt that
        // arrives while the thread is current is not its doing) unless the type runs in
        // interrupts by design, and, running once, once.
        if let Hook::Arg(n) = hook {
            // r0 = ((struct task_struct *)ctx[n])->pid; the triggering thread's tid is the low
            // half of its pid_tgid.
            g.a.ldx(Size::DW, Reg::R0, Reg::R6, off16(n * 8)?);
            g.a.jmp_imm(Cond::Eq, Reg::R0, 0, out);
            g.a.ldx_field_sized(
                Size::W,
                Reg::R0,
                Reg::R0,
                "task_struct",
                &["pid".to_string()],
            );
            let me = g.param(Param::RunnerThread)?;
            g.a.ldx(Size::W, Reg::R1, Reg::R9, me);
        } else {
            g.helper(&tables::GET_CURRENT_PID_TGID);
            let me = if let Hook::Threads { .. } = hook {
                g.a.alu64_imm(asm::Alu::Rsh, Reg::R0, 32);
                g.param(Param::RunnerProcess)?
            } else {
                g.param(Param::RunnerThread)?
            };
            g.a.ldx(Size::DW, Reg::R1, Reg::R9, me);
        }
        g.a.jmp_reg(Cond::Ne, Reg::R0, Reg::R1, out);
        let any = matches!(hook, Hook::Any | Hook::Threads { any: true });
        if any && !prog_type.runs_in_interrupt() {
            g.percpu_value(Size::W, Reg::R1, &tables::PREEMPT_COUNT);
            g.a.jmp_imm(Cond::Set, Reg::R1, tables::PREEMPT_NOT_TASK_MASK, out);
        }
        if !counting {
            g.a.ldx(Size::DW, Reg::R1, Reg::R9, 0);
            g.a.jmp_imm(Cond::Ne, Reg::R1, 0, out);
        }
    }
    for i in 0..ops.len() {
        let at = g.spill_at(i);
        g.a.st_imm(Size::DW, Reg::R10, at, 0);
    }

    // Where the branches of `if` ops end: at op index k, the labels to place (the last
    // pushed first, so that inner branches close before outer ones).
    let mut closing: Vec<Vec<Close>> = vec![Vec::new(); ops.len() + 1];
    let mut deferred = Vec::new();
    let layout = call::Layout {
        ops,
        frame: &frame,
        value_sizes,
    };
    for (i, op) in ops.iter().enumerate() {
        close(&mut g, &mut closing[i]);
        let slot = slots[i].offset;
        match op {
            OpSpec::Call(c) => g.call(&layout, i, c, slot, &mut deferred)?,
            OpSpec::Read {
                from,
                offset: at,
                width: w,
                null_check,
                ..
            } => through(&mut g, *from, *null_check, slot, |g| {
                g.a.ldx(width(*w), Reg::R2, Reg::R1, off16(*at)?);
                if call::referenced(ops, i) {
                    let me = g.spill_at(i);
                    g.a.stx(Size::DW, Reg::R10, me, Reg::R2);
                }
                g.a.stx(Size::DW, Reg::R9, off16(slot + 8)?, Reg::R2);
                Ok(())
            })?,
            OpSpec::Write {
                to,
                value,
                offset: at,
                width: w,
                null_check,
                ..
            } => through(&mut g, *to, *null_check, slot, |g| {
                g.load_const(Reg::R2, *value);
                g.a.stx(width(*w), Reg::R1, off16(*at)?, Reg::R2);
                Ok(())
            })?,
            OpSpec::Add {
                to,
                value,
                offset: at,
                width: w,
                null_check,
                ..
            } => through(&mut g, *to, *null_check, slot, |g| {
                let at = off16(*at)?;
                g.a.ldx(width(*w), Reg::R2, Reg::R1, at);
                g.load_const(Reg::R3, *value);
                g.a.alu64_reg(asm::Alu::Add, Reg::R2, Reg::R3);
                g.a.stx(width(*w), Reg::R1, at, Reg::R2);
                Ok(())
            })?,
            OpSpec::If {
                cond,
                then_len,
                else_len,
                ..
            } => {
                let (otherwise, end) = (g.a.new_label(), g.a.new_label());
                let spill = g.spill_at(cond.op());
                g.a.ldx(Size::DW, Reg::R1, Reg::R10, spill);
                g.done(slot)?;
                // Jump to `else` when the condition does not hold.
                let (jump, v) = match *cond {
                    case::Cond::NonNull(_) => (Cond::Eq, 0),
                    case::Cond::Null(_) => (Cond::Ne, 0),
                    case::Cond::Eq(_, v) => (Cond::Ne, v),
                    case::Cond::Ne(_, v) => (Cond::Eq, v),
                    case::Cond::Lt(_, v) => (Cond::Ge, v),
                };
                if (v as i64) >= i32::MIN as i64 && (v as i64) <= i32::MAX as i64 {
                    g.a.jmp_imm(jump, Reg::R1, v as i64 as i32, otherwise);
                } else {
                    g.load_const(Reg::R2, v);
                    g.a.jmp_reg(jump, Reg::R1, Reg::R2, otherwise);
                }
                if !counting {
                    g.put(slot + 8, 1)?;
                }
                let (t, e) = (i + 1 + then_len, i + 1 + then_len + else_len);
                closing[e].push(Close::End(end));
                // A `then` that ends with `return` does not fall through (the verifier refuses
                // unreachable instructions).
                let falls = !matches!(ops[t - 1], OpSpec::Return { .. });
                closing[t].push(Close::Else(otherwise, end, falls));
            }
            OpSpec::Return { value, .. } => {
                g.done(slot)?;
                g.a.mov64_imm(Reg::R8, *value);
                g.a.ja(finish);
            }
        }
    }
    close(&mut g, &mut closing[ops.len()]);
    g.a.place(finish);
    for (i, slot, vs) in deferred {
        let spill = g.spill_at(i);
        g.a.ldx(Size::DW, Reg::R2, Reg::R10, spill);
        copy_result(&mut g, Reg::R2, slot, vs)?;
    }
    if counting {
        g.bump(0)?;
    } else {
        g.put(0, 1)?;
    }
    g.a.place(out);
    if returns {
        g.a.mov64_reg(Reg::R0, Reg::R8);
    } else {
        g.a.mov64_imm(Reg::R0, 0);
    }
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

/// A label to place where a branch of an `if` ends.
#[derive(Clone, Copy)]
enum Close {
    /// The end of `then`: jump over `else` (to the second label) when `then` falls through;
    /// `else` starts here.
    Else(asm::Label, asm::Label, bool),
    /// The end of the `if`.
    End(asm::Label),
}

fn close(g: &mut Gen, at: &mut Vec<Close>) {
    while let Some(c) = at.pop() {
        match c {
            Close::Else(otherwise, end, falls) => {
                if falls {
                    g.a.ja(end);
                }
                g.a.place(otherwise);
            }
            Close::End(end) => g.a.place(end),
        }
    }
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

/// An operation through the pointer op `from` left on the stack: loaded into r1, NULL-checked
/// if asked (the slot then says skipped), `body` run, the slot marked done.
fn through(
    g: &mut Gen,
    from: usize,
    check: bool,
    slot: u32,
    body: impl FnOnce(&mut Gen) -> Result<(), CompileError>,
) -> Result<(), CompileError> {
    let spill = g.spill_at(from);
    g.a.ldx(Size::DW, Reg::R1, Reg::R10, spill);
    let skip = null_guard(g, check, slot)?;
    body(g)?;
    g.done(slot)?;
    if let Some(l) = skip {
        g.a.place(l);
    }
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
mod call_tests;
#[cfg(test)]
mod tests;
