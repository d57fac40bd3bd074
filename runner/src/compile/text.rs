//! The text form of a program: instructions as the kernel verifier's log and llvm-objdump
//! print them, parsed into the typed assembler (`asm`). One instruction or label per line:
//!
//! ```text
//! r1 = r10                      rD = rS | imm | imm ll | -rD     (w registers: 32-bit ALU)
//! r1 += -8                      rD op= rS | imm   (+= -= *= /= %= |= &= ^= <<= >>= s>>=)
//! r2 = map[st]                  a map of the case (ld_imm64 of its fd); map[st]+16: its value
//! *(u64 *)(r10 -8) = r1         store a register or an immediate (u8 u16 u32 u64)
//! r0 = *(u32 *)(r1 +0)          load
//! lock *(u64 *)(r1 +0) += r2    atomic add (or |= &= ^=), u32 or u64
//! if r0 == 0x0 goto +2          == != > >= < <= s> s>= s< s<= &, against a register or an
//! if w0 s< 5 goto out           immediate; the target `+N`, `pc+N` or a label (`out:`)
//! goto -3                       unconditional jump
//! call bpf_task_storage_get     a helper by name, `call 156`, `call NAME#156`,
//! call kfunc bpf_task_from_pid  a kernel function (its BTF id at load time)
//! exit
//! ```
//!
//! Offsets count instruction slots as the kernel does (ld_imm64 takes two). A leading
//! instruction number (`12:`), the verifier's opcode (`(b7)`) and objdump's instruction bytes
//! are skipped, so lines copied from a log or a disassembly read as written; `//` starts a
//! comment, and so does `;` at the start of a line (the verifier's source lines). `r = N`
//! outside the signed 32-bit range becomes a ld_imm64; other immediates may be written signed
//! or as their 32-bit pattern (`0xffffffff` is -1, as the verifier prints it).
//!
//! Pure: map names are resolved through the caller's closure, helper ids come from
//! the UAPI helper table (`tables::helpers`), kfunc ids are left to the loader.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use super::asm::{self, Alu, Asm, Cond, Reg, Size};
use super::{Param, ProgramSpec};
use crate::tables::{Helper, ProgType};

pub use crate::tables::helpers::ALL as ALL_HELPERS;

/// A helper of the UAPI by name (`bpf_task_storage_get`).
pub fn helper_by_name(name: &str) -> Option<&'static Helper> {
    crate::tables::helpers::helper(name)
}

/// A helper of the UAPI by id.
pub fn helper_by_id(id: i32) -> Option<&'static Helper> {
    ALL_HELPERS.iter().find(|h| h.id == id)
}

/// A program parsed from text, ready to become a `ProgramSpec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextProgram {
    pub program: asm::Program,
    /// Helpers it calls (probed before loading, as for compiled programs).
    pub helpers: Vec<&'static Helper>,
    /// Kernel functions it calls.
    pub kfuncs: Vec<&'static str>,
}

/// A problem in the text: 1-based line (of the program) and column, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("asm line {line}, column {column}: {message}")]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The program as the executor loads it: no result slots, no parameters (its result map, of
/// one u64, only serves the triggers that wait for it).
pub fn spec(prog_type: &'static ProgType, t: &TextProgram) -> ProgramSpec {
    ProgramSpec {
        prog_type,
        program: t.program.clone(),
        params: Vec::<Param>::new(),
        params_offset: 8,
        slots: Vec::new(),
        result_size: 8,
        helpers: t.helpers.clone(),
        kfuncs: t.kfuncs.iter().map(|k| k.to_string()).collect(),
        percpu: Vec::new(),
    }
}

/// Parses `lines` (each may hold several lines separated by `\n`). `map` gives the index of a
/// map of the case by name, or what to say about an unknown one.
pub fn parse(
    lines: &[&str],
    map: &dyn Fn(&str) -> Result<usize, String>,
) -> Result<TextProgram, TextError> {
    let all: Vec<&str> = lines.iter().flat_map(|l| l.split('\n')).collect();
    let mut items: Vec<(usize, Item)> = Vec::new();
    for (i, line) in all.iter().enumerate() {
        let at = |column: usize, message: String| TextError {
            line: i + 1,
            column,
            message,
        };
        let toks = lex(line).map_err(|(c, m)| at(c, m))?;
        let mut p = Parser {
            toks: strip_prefix(&toks),
            pos: 0,
            end: line.chars().count() + 1,
            map,
        };
        while let Some(label) = p.label() {
            items.push((i, Item::Label(label.0, label.1)));
        }
        if p.pos < p.toks.len() {
            let col = p.col();
            let ins = p.insn().map_err(|(c, m)| at(c, m))?;
            items.push((i, Item::Insn(ins, col)));
        }
    }
    assemble(items)
}

/// One line's content: a label or an instruction (with its column).
enum Item {
    Label(String, usize),
    Insn(Ins, usize),
}

#[derive(Clone, Copy)]
enum Operand {
    Reg(Reg),
    Imm(i32),
}

enum Target {
    /// Slots after the next instruction.
    Rel(i64, usize),
    Label(String, usize),
}

enum Ins {
    Alu(bool, Alu, Reg, Operand),
    Neg(bool, Reg),
    LdImm64(Reg, u64),
    LdMap(Reg, usize, Option<u32>),
    Ldx(Size, Reg, Reg, i16),
    Stx(Size, Reg, i16, Reg),
    St(Size, Reg, i16, i32),
    Atomic(Size, Alu, Reg, i16, Reg),
    Jmp(bool, Cond, Reg, Operand, Target),
    Ja(Target),
    Helper(&'static Helper),
    Kfunc(&'static str),
    Exit,
}

impl Ins {
    fn slots(&self) -> usize {
        match self {
            Ins::LdImm64(..) | Ins::LdMap(..) => 2,
            _ => 1,
        }
    }
    fn target(&self) -> Option<&Target> {
        match self {
            Ins::Jmp(.., t) | Ins::Ja(t) => Some(t),
            _ => None,
        }
    }
}

/// Lays out the slots, resolves jump targets to labels of the assembler, and emits.
fn assemble(items: Vec<(usize, Item)>) -> Result<TextProgram, TextError> {
    let mut slot = 0usize;
    let mut labels: HashMap<String, usize> = HashMap::new();
    // Per instruction: (line, column, first slot).
    let mut at = Vec::new();
    for (line, item) in &items {
        match item {
            Item::Label(name, col) => {
                if labels.insert(name.clone(), slot).is_some() {
                    return Err(error(
                        *line,
                        *col,
                        format!("label `{name}` is defined twice"),
                    ));
                }
            }
            Item::Insn(ins, col) => {
                at.push((*line, *col, slot));
                slot += ins.slots();
            }
        }
    }
    let total = slot;
    let starts: HashSet<usize> = at.iter().map(|a| a.2).collect();
    let mut a = Asm::new();
    let mut marks: HashMap<usize, asm::Label> = HashMap::new();
    let mut targets = Vec::new();
    let insns = items.into_iter().filter_map(|(_, i)| match i {
        Item::Insn(ins, _) => Some(ins),
        Item::Label(..) => None,
    });
    let insns: Vec<Ins> = insns.collect();
    for (ins, &(line, _, here)) in insns.iter().zip(&at) {
        let Some(t) = ins.target() else {
            targets.push(None);
            continue;
        };
        let (dest, col) = match t {
            Target::Rel(off, col) => (here as i64 + 1 + off, *col),
            Target::Label(name, col) => match labels.get(name) {
                Some(s) => (*s as i64, *col),
                None => {
                    let known: Vec<&str> = labels.keys().map(String::as_str).collect();
                    return Err(error(line, *col, no_label(name, known)));
                }
            },
        };
        let dest = usize::try_from(dest)
            .ok()
            .filter(|d| *d <= total)
            .ok_or_else(|| {
                error(
                    line,
                    col,
                    format!("jumps to slot {dest}, outside the program (0 to {total})"),
                )
            })?;
        if dest < total && !starts.contains(&dest) {
            let msg = format!("jumps to slot {dest}, the second half of a ld_imm64");
            return Err(error(line, col, msg));
        }
        let l = *marks.entry(dest).or_insert_with(|| a.new_label());
        targets.push(Some(l));
    }
    let mut helpers: Vec<&'static Helper> = Vec::new();
    let mut kfuncs: Vec<&'static str> = Vec::new();
    for ((ins, &(_, _, here)), target) in insns.iter().zip(&at).zip(targets) {
        if let Some(l) = marks.get(&here) {
            a.place(*l);
        }
        emit(&mut a, ins, target, &mut helpers, &mut kfuncs);
    }
    if let Some(l) = marks.get(&total) {
        a.place(*l);
    }
    let program = a.finish().map_err(|e| {
        let insn = match &e {
            asm::AsmError::JumpOutOfRange { insn, .. }
            | asm::AsmError::WriteToFramePointer { insn } => *insn,
            _ => 0,
        };
        let (line, col) = at
            .iter()
            .find(|x| x.2 == insn)
            .map_or((0, 1), |x| (x.0, x.1));
        error(line, col, e.to_string())
    })?;
    Ok(TextProgram {
        program,
        helpers,
        kfuncs,
    })
}

fn error(line: usize, column: usize, message: String) -> TextError {
    TextError {
        line: line + 1,
        column,
        message,
    }
}

fn no_label(name: &str, mut known: Vec<&str>) -> String {
    known.sort_unstable();
    if known.is_empty() {
        format!("no label `{name}` in this program")
    } else {
        format!("no label `{name}` (labels: {})", known.join(", "))
    }
}

fn emit(
    a: &mut Asm,
    ins: &Ins,
    target: Option<asm::Label>,
    helpers: &mut Vec<&'static Helper>,
    kfuncs: &mut Vec<&'static str>,
) {
    // `assemble` gives every jump (the only users of `t`) its label.
    let t = || target.expect("every jump has a label");
    match *ins {
        Ins::Alu(true, op, d, Operand::Reg(s)) => a.alu64_reg(op, d, s),
        Ins::Alu(true, op, d, Operand::Imm(i)) => a.alu64_imm(op, d, i),
        Ins::Alu(false, op, d, Operand::Reg(s)) => a.alu32_reg(op, d, s),
        Ins::Alu(false, op, d, Operand::Imm(i)) => a.alu32_imm(op, d, i),
        Ins::Neg(true, d) => a.alu64_imm(Alu::Neg, d, 0),
        Ins::Neg(false, d) => a.alu32_imm(Alu::Neg, d, 0),
        Ins::LdImm64(d, v) => a.ld_imm64(d, v),
        Ins::LdMap(d, m, None) => a.ld_map_fd(d, m),
        Ins::LdMap(d, m, Some(off)) => a.ld_map_value(d, m, off),
        Ins::Ldx(size, d, s, off) => a.ldx(size, d, s, off),
        Ins::Stx(size, d, off, s) => a.stx(size, d, off, s),
        Ins::St(size, d, off, imm) => a.st_imm(size, d, off, imm),
        Ins::Atomic(size, op, d, off, s) => a.atomic(size, op, d, off, s),
        Ins::Jmp(true, c, d, Operand::Reg(s), _) => a.jmp_reg(c, d, s, t()),
        Ins::Jmp(true, c, d, Operand::Imm(i), _) => a.jmp_imm(c, d, i, t()),
        Ins::Jmp(false, c, d, Operand::Reg(s), _) => a.jmp32_reg(c, d, s, t()),
        Ins::Jmp(false, c, d, Operand::Imm(i), _) => a.jmp32_imm(c, d, i, t()),
        Ins::Ja(_) => a.ja(t()),
        Ins::Helper(h) => {
            if !helpers.contains(&h) {
                helpers.push(h);
            }
            a.call_helper(h.id);
        }
        Ins::Kfunc(k) => {
            if !kfuncs.contains(&k) {
                kfuncs.push(k);
            }
            a.call_kfunc(k);
        }
        Ins::Exit => a.exit(),
    }
}

/// A kfunc name with a static lifetime (`ProgramSpec::kfuncs`): each distinct name is kept once.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match names.get(name) {
        Some(n) => n,
        None => {
            let n: &'static str = Box::leak(name.to_string().into_boxed_str());
            names.insert(n);
            n
        }
    }
}

mod lex;
mod parse;
use lex::{lex, strip_prefix};
use parse::Parser;

#[cfg(test)]
mod tests;
