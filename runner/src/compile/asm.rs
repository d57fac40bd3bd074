//! A small typed eBPF assembler and disassembler.
//!
//! This module owns:
//! - **encoding**: building `struct bpf_insn`-compatible instructions ([`Insn`]) with the exact
//!   opcode constants of `linux/bpf.h` / `linux/bpf_common.h`;
//! - **labels**: forward and backward jump targets, resolved to `off = target - (pc + 1)` at
//!   [`Asm::finish`];
//! - **relocation records** ([`Reloc`]): map fds, map value addresses, kfunc BTF ids and per-CPU
//!   kernel variables that the loader patches later through [`Program::patched`];
//! - **disassembly**: rendering instructions in the kernel verifier's / bpftool's text style.
//!
//! It must not make syscalls, open maps, read BTF, or know anything about the kernel beyond the
//! instruction encoding: resolving relocations is the caller's job, via the closures it passes in.

use std::collections::HashMap;

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
// Sizes.
const BPF_W: u8 = 0x00;
const BPF_H: u8 = 0x08;
const BPF_B: u8 = 0x10;
const BPF_DW: u8 = 0x18;
// Modes.
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_ATOMIC: u8 = 0xc0;
// Sources.
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// Jump ops that are not conditions.
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a ld_imm64 holding a map fd.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `src_reg` of a ld_imm64 holding a map value address.
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
/// `src_reg` of a call to a kernel function (imm = BTF id).
pub const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
/// `src_reg` of a ld_imm64 holding the address of a kernel variable (imm = its BTF id).
pub const BPF_PSEUDO_BTF_ID: u8 = 3;
/// Opcode of the first slot of a ld_imm64 (`BPF_LD | BPF_DW | BPF_IMM`).
pub const LD_IMM64: u8 = BPF_LD | BPF_DW | BPF_IMM;

/// General-purpose registers; `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rustfmt::skip]
pub enum Reg { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 }

/// Memory access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rustfmt::skip]
pub enum Size { B, H, W, DW }

impl Size {
    /// Access width in bytes: 1, 2, 4 or 8.
    pub fn bytes(self) -> usize {
        1 << self as usize
    }

    fn code(self) -> u8 {
        [BPF_B, BPF_H, BPF_W, BPF_DW][self as usize]
    }
}

/// ALU operations (the emitters encode them in the ALU64 class); discriminant = `BPF_OP` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub enum Alu {
    Add = 0x00, Sub = 0x10, Mul = 0x20, Div = 0x30, Or = 0x40, And = 0x50, Lsh = 0x60,
    Rsh = 0x70, Neg = 0x80, Mod = 0x90, Xor = 0xa0, Mov = 0xb0, Arsh = 0xc0,
}

/// Conditional jumps (64-bit JMP class); discriminant = `BPF_OP` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub enum Cond {
    Eq = 0x10, Ne = 0x50, Gt = 0x20, Ge = 0x30, Lt = 0xa0, Le = 0xb0,
    Sgt = 0x60, Sge = 0x70, Slt = 0xc0, Sle = 0xd0, Set = 0x40,
}

/// Verifier-log operator of each ALU op, indexed by `BPF_OP >> 4`.
const ALU_SYMS: [&str; 13] = [
    "+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=",
];
/// Verifier-log operator of each jump op, indexed by `BPF_OP >> 4` ("" = not a condition).
const JMP_SYMS: [&str; 14] = [
    "", "==", ">", ">=", "&", "!=", "s>", "s>=", "", "", "<", "<=", "s<", "s<=",
];

/// Raw encoding, bit-compatible with the kernel's struct bpf_insn (code, dst_reg:4 | src_reg:4, off: i16, imm: i32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// Little-endian bytes: code, (src << 4) | dst, off LE, imm LE.
    pub fn to_bytes(self) -> [u8; 8] {
        let [o0, o1] = self.off.to_le_bytes();
        let [i0, i1, i2, i3] = self.imm.to_le_bytes();
        let regs = ((self.src & 0xf) << 4) | (self.dst & 0xf);
        [self.code, regs, o0, o1, i0, i1, i2, i3]
    }
}

/// What the loader must patch before loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloc {
    /// ld_imm64 at `insn` (first half) must hold the fd of map `map` (src_reg = BPF_PSEUDO_MAP_FD = 1).
    MapFd { insn: usize, map: usize },
    /// ld_imm64 at `insn` must hold the address of map `map`'s value at `offset` (src_reg = BPF_PSEUDO_MAP_VALUE = 2;
    /// first half imm = fd, second half imm = offset).
    MapValue {
        insn: usize,
        map: usize,
        offset: u32,
    },
    /// call at `insn` is a kfunc call (src_reg = BPF_PSEUDO_KFUNC_CALL = 2); imm must become the
    /// BTF id of function `name` in vmlinux BTF (off = 0).
    Kfunc { insn: usize, name: String },
    /// ld_imm64 at `insn` must hold the BTF id of the per-CPU kernel variable that holds the
    /// value `name` (src_reg = BPF_PSEUDO_BTF_ID = 3), and the load at `load` the offset of the
    /// value inside that variable.
    PerCpu {
        insn: usize,
        load: usize,
        name: String,
    },
    /// The load at `insn` must have as `off` the offset of the last of `fields` in
    /// `struct start` after following the pointers the others hold (kernel BTF).
    Field {
        insn: usize,
        start: String,
        fields: Vec<String>,
    },
}

/// A relocation the loader could not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    Kfunc(String),
    PerCpu(String),
    /// `start->a->b`, as written.
    Field(String),
}

/// Answers the loader gives for relocations.
pub trait Resolver {
    /// The fd of the map with this index.
    fn map_fd(&self, map: usize) -> i32;
    /// The BTF id of a kernel function.
    fn kfunc_id(&self, name: &str) -> Option<i32>;
    /// The BTF id of the per-CPU variable holding the value `name`, and the value's offset in it.
    fn percpu(&self, name: &str) -> Option<(i32, i16)>;
    /// The offset of a walk's field (see `Reloc::Field`).
    fn field_offset(&self, start: &str, fields: &[String]) -> Option<i16>;
}

/// A walk's text: `task_struct->real_parent->group_leader`.
pub fn walk_text(start: &str, fields: &[String]) -> String {
    std::iter::once(start.to_string())
        .chain(fields.iter().cloned())
        .collect::<Vec<_>>()
        .join("->")
}

impl Reloc {
    /// Index of the instruction to patch.
    pub fn insn(&self) -> usize {
        match self {
            Reloc::MapFd { insn, .. }
            | Reloc::MapValue { insn, .. }
            | Reloc::Kfunc { insn, .. }
            | Reloc::PerCpu { insn, .. }
            | Reloc::Field { insn, .. } => *insn,
        }
    }
}

/// Assembled program: instructions plus what the loader must patch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Program {
    pub insns: Vec<Insn>,
    pub relocs: Vec<Reloc>,
}

impl Program {
    /// Raw bytes of the (unpatched) instructions.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.insns.iter().flat_map(|i| i.to_bytes()).collect()
    }

    /// Patches the relocations with the resolver's answers; returns the patched instructions or
    /// the first relocation that could not be resolved.
    pub fn patched(&self, r: &dyn Resolver) -> Result<Vec<Insn>, Unresolved> {
        let mut insns = self.insns.clone();
        for reloc in &self.relocs {
            let i = reloc.insn();
            match reloc {
                Reloc::MapFd { map, .. } => {
                    (insns[i].src, insns[i].imm, insns[i + 1].imm) =
                        (BPF_PSEUDO_MAP_FD, r.map_fd(*map), 0);
                }
                Reloc::MapValue { map, offset, .. } => {
                    insns[i].src = BPF_PSEUDO_MAP_VALUE;
                    (insns[i].imm, insns[i + 1].imm) = (r.map_fd(*map), *offset as i32);
                }
                Reloc::Kfunc { name, .. } => {
                    let id = r
                        .kfunc_id(name)
                        .ok_or_else(|| Unresolved::Kfunc(name.clone()))?;
                    (insns[i].src, insns[i].imm, insns[i].off) = (BPF_PSEUDO_KFUNC_CALL, id, 0);
                }
                Reloc::PerCpu { load, name, .. } => {
                    let (id, off) = r
                        .percpu(name)
                        .ok_or_else(|| Unresolved::PerCpu(name.clone()))?;
                    (insns[i].src, insns[i].imm, insns[i + 1].imm) = (BPF_PSEUDO_BTF_ID, id, 0);
                    insns[*load].off = off;
                }
                Reloc::Field { start, fields, .. } => {
                    insns[i].off = r
                        .field_offset(start, fields)
                        .ok_or_else(|| Unresolved::Field(walk_text(start, fields)))?;
                }
            }
        }
        Ok(insns)
    }

    /// One line per instruction (ld_imm64 takes one line for its two slots, numbered like the kernel: `"  12: r1 = map[st] ..."`).
    /// `helper_name(id) -> Option<&str>` and `map_name(index) -> String` give names for calls and maps.
    pub fn disassemble(
        &self,
        helper_name: &dyn Fn(i32) -> Option<&'static str>,
        map_name: &dyn Fn(usize) -> String,
    ) -> Vec<String> {
        let relocs: HashMap<usize, &Reloc> = self.relocs.iter().map(|r| (r.insn(), r)).collect();
        let mut out = Vec::new();
        let mut pc = 0;
        while pc < self.insns.len() {
            let (insn, reloc) = (self.insns[pc], relocs.get(&pc).copied());
            let text = if insn.code == LD_IMM64 {
                let d = insn.dst;
                match (reloc, self.insns.get(pc + 1)) {
                    (Some(Reloc::MapFd { map, .. }), _) => {
                        format!("r{d} = map[{}] ll", map_name(*map))
                    }
                    (Some(Reloc::MapValue { map, offset, .. }), _) => {
                        format!("r{d} = map[{}]+{offset} ll", map_name(*map))
                    }
                    (Some(Reloc::PerCpu { name, .. }), _) => {
                        format!("r{d} = percpu[{name}] ll")
                    }
                    (_, Some(hi)) => {
                        let value = ((hi.imm as u32 as u64) << 32) | insn.imm as u32 as u64;
                        format!("r{d} = {value:#x} ll")
                    }
                    (_, None) => format!("r{d} = <truncated ld_imm64>"),
                }
            } else {
                disasm_one(insn, reloc, helper_name)
            };
            out.push(format!("{pc:>4}: {text}"));
            pc += if insn.code == LD_IMM64 { 2 } else { 1 };
        }
        out
    }
}

/// Renders one (non-ld_imm64) instruction like `kernel/bpf/disasm.c`.
fn disasm_one(
    insn: Insn,
    reloc: Option<&Reloc>,
    helper_name: &dyn Fn(i32) -> Option<&'static str>,
) -> String {
    let (class, op, by_reg) = (insn.code & 0x07, insn.code & 0xf0, insn.code & BPF_X != 0);
    let (d, s, off, imm) = (insn.dst, insn.src, insn.off, insn.imm);
    let size = ["u32", "u16", "u8", "u64"][usize::from((insn.code >> 3) & 3)];
    let is_mem = insn.code & 0xe0 == BPF_MEM;
    let unknown = || format!("({:02x}) unknown", insn.code);
    match class {
        BPF_ALU | BPF_ALU64 => {
            let p = if class == BPF_ALU64 { 'r' } else { 'w' };
            match ALU_SYMS.get(usize::from(op >> 4)) {
                _ if op == Alu::Neg as u8 => format!("{p}{d} = -{p}{d}"),
                Some(sym) if by_reg => format!("{p}{d} {sym} {p}{s}"),
                Some(sym) => format!("{p}{d} {sym} {imm}"),
                None => unknown(),
            }
        }
        BPF_LDX if is_mem => match reloc {
            Some(Reloc::Field { start, fields, .. }) => {
                format!("r{d} = *({size} *)(r{s} +{})", walk_text(start, fields))
            }
            _ => format!("r{d} = *({size} *)(r{s} {off:+})"),
        },
        BPF_STX if is_mem => format!("*({size} *)(r{d} {off:+}) = r{s}"),
        BPF_STX if insn.code & 0xe0 == BPF_ATOMIC => match ALU_SYMS.get(imm as usize >> 4) {
            Some(sym) if imm & 0x0f == 0 => format!("lock *({size} *)(r{d} {off:+}) {sym} r{s}"),
            _ => unknown(),
        },
        BPF_ST if is_mem => format!("*({size} *)(r{d} {off:+}) = {imm}"),
        BPF_JMP32 => match JMP_SYMS.get(usize::from(op >> 4)).filter(|s| !s.is_empty()) {
            Some(sym) if by_reg => format!("if w{d} {sym} w{s} goto pc{off:+}"),
            Some(sym) => format!("if w{d} {sym} {:#x} goto pc{off:+}", imm as u32),
            None => unknown(),
        },
        BPF_JMP => match (op, reloc) {
            (BPF_JA, _) => format!("goto pc{off:+}"),
            (BPF_EXIT, _) => "exit".to_string(),
            (BPF_CALL, Some(Reloc::Kfunc { name, .. })) => format!("call kfunc {name}"),
            (BPF_CALL, _) if s == BPF_PSEUDO_KFUNC_CALL => format!("call kfunc#{imm}"),
            (BPF_CALL, _) if s == 1 => format!("call pc{imm:+}"), // BPF_PSEUDO_CALL
            (BPF_CALL, _) => match helper_name(imm) {
                Some(name) => format!("call {name}#{imm}"),
                None => format!("call #{imm}"),
            },
            _ => match JMP_SYMS.get(usize::from(op >> 4)).filter(|s| !s.is_empty()) {
                Some(sym) if by_reg => format!("if r{d} {sym} r{s} goto pc{off:+}"),
                Some(sym) => format!("if r{d} {sym} {:#x} goto pc{off:+}", imm as u32),
                None => unknown(),
            },
        },
        _ => unknown(),
    }
}

/// A jump target; create with [`Asm::new_label`], bind with [`Asm::place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("label {label} is used but never placed")]
    LabelNotPlaced { label: usize },
    #[error("label {label} is placed twice (at instructions {first} and {second})")]
    LabelPlacedTwice {
        label: usize,
        first: usize,
        second: usize,
    },
    #[error("jump at instruction {insn} needs offset {offset}, outside the i16 range")]
    JumpOutOfRange { insn: usize, offset: i64 },
    #[error("instruction {insn} writes to the read-only frame pointer r10")]
    WriteToFramePointer { insn: usize },
}

/// Instruction builder. Emitters are infallible; problems are reported by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    relocs: Vec<Reloc>,
    /// Position of each label, once placed.
    labels: Vec<Option<usize>>,
    /// (jump instruction index, target) to resolve at `finish`.
    fixups: Vec<(usize, Label)>,
    /// First label misuse or r10 write, reported at `finish`.
    first_error: Option<AsmError>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    /// Instruction slots so far (ld_imm64 counts 2).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The label points at the next instruction emitted.
    pub fn place(&mut self, l: Label) {
        let here = self.insns.len();
        match self.labels[l.0] {
            Some(first) => self.error(AsmError::LabelPlacedTwice {
                label: l.0,
                first,
                second: here,
            }),
            None => self.labels[l.0] = Some(here),
        }
    }

    fn error(&mut self, e: AsmError) {
        self.first_error.get_or_insert(e);
    }

    /// Emits one slot, noting a write to r10 (classes LD, LDX, ALU, ALU64 write `dst`).
    fn push(&mut self, code: u8, dst: Reg, src: u8, off: i16, imm: i32) {
        let insn = self.len();
        if dst == Reg::R10 && matches!(code & 0x07, BPF_LD | BPF_LDX | BPF_ALU | BPF_ALU64) {
            self.error(AsmError::WriteToFramePointer { insn });
        }
        let dst = dst as u8;
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }

    /// `dst op= imm` (64-bit). `Neg` ignores `imm` (the kernel requires imm = 0).
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        let imm = if op == Alu::Neg { 0 } else { imm };
        self.push(BPF_ALU64 | op as u8 | BPF_K, dst, 0, 0, imm);
    }

    /// `wdst op= imm` (32-bit ALU class: the upper half of `dst` becomes zero).
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        let imm = if op == Alu::Neg { 0 } else { imm };
        self.push(BPF_ALU | op as u8 | BPF_K, dst, 0, 0, imm);
    }

    /// `wdst op= wsrc` (32-bit ALU class). `Neg` is encoded with BPF_K.
    pub fn alu32_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        match op {
            Alu::Neg => self.alu32_imm(op, dst, 0),
            _ => self.push(BPF_ALU | op as u8 | BPF_X, dst, src as u8, 0, 0),
        }
    }

    /// `lock *(size *)(dst + off) op= src`: an atomic add, or, and or xor without fetch
    /// (BPF_STX | BPF_ATOMIC, imm = the ALU op); only W and DW exist.
    pub fn atomic(&mut self, size: Size, op: Alu, dst: Reg, off: i16, src: Reg) {
        self.push(
            BPF_STX | size.code() | BPF_ATOMIC,
            dst,
            src as u8,
            off,
            op as u8 as i32,
        );
    }

    /// `dst op= src` (64-bit). `Neg` ignores `src` and is encoded with BPF_K, as the kernel requires.
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        match op {
            Alu::Neg => self.alu64_imm(op, dst, 0),
            _ => self.push(BPF_ALU64 | op as u8 | BPF_X, dst, src as u8, 0, 0),
        }
    }

    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) {
        self.alu64_imm(Alu::Mov, dst, imm);
    }

    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) {
        self.alu64_reg(Alu::Mov, dst, src);
    }

    fn ld_imm64_raw(&mut self, dst: Reg, src: u8, lo: i32, hi: i32) {
        self.push(LD_IMM64, dst, src, 0, lo);
        self.push(0, Reg::R0, 0, 0, hi);
    }

    /// `dst = value` (two slots).
    pub fn ld_imm64(&mut self, dst: Reg, value: u64) {
        self.ld_imm64_raw(dst, 0, value as i32, (value >> 32) as i32);
    }

    /// `dst = map[map]` (fd patched by the loader).
    pub fn ld_map_fd(&mut self, dst: Reg, map: usize) {
        let insn = self.len();
        self.relocs.push(Reloc::MapFd { insn, map });
        self.ld_imm64_raw(dst, BPF_PSEUDO_MAP_FD, 0, 0);
    }

    /// `dst = &map[map].value + offset` (fd patched by the loader).
    pub fn ld_map_value(&mut self, dst: Reg, map: usize, offset: u32) {
        let insn = self.len();
        self.relocs.push(Reloc::MapValue { insn, map, offset });
        self.ld_imm64_raw(dst, BPF_PSEUDO_MAP_VALUE, 0, offset as i32);
    }

    /// `dst = *(size *)` the value `name` of this CPU's copy of a per-CPU kernel variable:
    /// `r1 = &var` (ld_imm64 of its BTF id), `call this_cpu_ptr` (the helper id the caller
    /// passes), `dst = *(size *)(r0 + offset)`. The loader patches the variable's BTF id and the
    /// value's offset in it (see [`Resolver::percpu`]). Clobbers r0-r5.
    pub fn percpu_value(&mut self, size: Size, dst: Reg, name: &str, this_cpu_ptr: i32) {
        let insn = self.len();
        self.ld_imm64_raw(Reg::R1, BPF_PSEUDO_BTF_ID, 0, 0);
        self.call_helper(this_cpu_ptr);
        let load = self.len();
        self.relocs.push(Reloc::PerCpu {
            insn,
            load,
            name: name.to_string(),
        });
        self.ldx(size, dst, Reg::R0, 0);
    }

    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(BPF_LDX | size.code() | BPF_MEM, dst, src as u8, off, 0);
    }

    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(BPF_STX | size.code() | BPF_MEM, dst, src as u8, off, 0);
    }

    /// `*(size *)(dst + off) = imm`
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(BPF_ST | size.code() | BPF_MEM, dst, 0, off, imm);
    }

    fn jump(&mut self, code: u8, dst: Reg, src: u8, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(code, dst, src, 0, imm);
    }

    /// `if reg cond imm goto target`
    pub fn jmp_imm(&mut self, cond: Cond, reg: Reg, imm: i32, target: Label) {
        self.jump(BPF_JMP | cond as u8 | BPF_K, reg, 0, imm, target);
    }

    /// `if a cond b goto target`
    pub fn jmp_reg(&mut self, cond: Cond, a: Reg, b: Reg, target: Label) {
        self.jump(BPF_JMP | cond as u8 | BPF_X, a, b as u8, 0, target);
    }

    /// `if wreg cond imm goto target` (32-bit comparison, JMP32 class).
    pub fn jmp32_imm(&mut self, cond: Cond, reg: Reg, imm: i32, target: Label) {
        self.jump(BPF_JMP32 | cond as u8 | BPF_K, reg, 0, imm, target);
    }

    /// `if wa cond wb goto target` (JMP32 class).
    pub fn jmp32_reg(&mut self, cond: Cond, a: Reg, b: Reg, target: Label) {
        self.jump(BPF_JMP32 | cond as u8 | BPF_X, a, b as u8, 0, target);
    }

    pub fn ja(&mut self, target: Label) {
        self.jump(BPF_JMP | BPF_JA, Reg::R0, 0, 0, target);
    }

    pub fn call_helper(&mut self, id: i32) {
        self.push(BPF_JMP | BPF_CALL, Reg::R0, 0, 0, id);
    }

    /// Call of kernel function `name`; the loader patches imm with its BTF id.
    pub fn call_kfunc(&mut self, name: &str) {
        let (insn, name) = (self.len(), name.to_string());
        self.relocs.push(Reloc::Kfunc { insn, name });
        self.push(BPF_JMP | BPF_CALL, Reg::R0, BPF_PSEUDO_KFUNC_CALL, 0, 0);
    }

    /// `dst = *(u64 *)(src + offset of the last of fields)`, the offset patched by the loader.
    pub fn ldx_field(&mut self, dst: Reg, src: Reg, start: &str, fields: &[String]) {
        self.ldx_field_sized(Size::DW, dst, src, start, fields);
    }

    /// As `ldx_field`, a load of `size` (the member's own width, `task_struct->pid` a W).
    pub fn ldx_field_sized(
        &mut self,
        size: Size,
        dst: Reg,
        src: Reg,
        start: &str,
        fields: &[String],
    ) {
        let insn = self.len();
        self.relocs.push(Reloc::Field {
            insn,
            start: start.to_string(),
            fields: fields.to_vec(),
        });
        self.ldx(size, dst, src, 0);
    }

    pub fn exit(&mut self) {
        self.push(BPF_JMP | BPF_EXIT, Reg::R0, 0, 0, 0);
    }

    /// Resolves jump offsets (`off = target - (pc + 1)`) and reports the first problem found.
    pub fn finish(mut self) -> Result<Program, AsmError> {
        if let Some(e) = self.first_error.take() {
            return Err(e);
        }
        for &(pc, Label(label)) in &self.fixups {
            let target = self.labels[label].ok_or(AsmError::LabelNotPlaced { label })?;
            let offset = target as i64 - (pc as i64 + 1);
            let off = i16::try_from(offset);
            self.insns[pc].off = off.map_err(|_| AsmError::JumpOutOfRange { insn: pc, offset })?;
        }
        let Asm { insns, relocs, .. } = self;
        Ok(Program { insns, relocs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Reg::*;

    fn hex(bytes: &[u8]) -> String {
        let parts: Vec<_> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        parts.join(" ")
    }

    fn build(f: impl FnOnce(&mut Asm)) -> Result<Program, AsmError> {
        let mut a = Asm::new();
        f(&mut a);
        a.finish()
    }

    #[test]
    fn encodings_match_the_kernel() {
        type Case = (fn(&mut Asm), &'static str);
        let cases: [Case; 15] = [
            (
                |a| (a.mov64_imm(R0, 0), a.exit()).1,
                "b7 00 00 00 00 00 00 00 95 00 00 00 00 00 00 00",
            ),
            (|a| a.call_helper(156), "85 00 00 00 9c 00 00 00"),
            (|a| a.call_kfunc("f"), "85 20 00 00 00 00 00 00"),
            (
                |a| a.ld_imm64(R1, 0x1122334455667788),
                "18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11",
            ),
            (|a| a.alu64_imm(Alu::Add, R1, -8), "07 01 00 00 f8 ff ff ff"),
            (|a| a.mov64_reg(R1, R6), "bf 61 00 00 00 00 00 00"),
            (|a| a.alu64_reg(Alu::Xor, R2, R3), "af 32 00 00 00 00 00 00"),
            (|a| a.alu64_reg(Alu::Neg, R4, R5), "87 04 00 00 00 00 00 00"),
            (|a| a.alu64_imm(Alu::Arsh, R1, 3), "c7 01 00 00 03 00 00 00"),
            (|a| a.ldx(Size::DW, R0, R10, -8), "79 a0 f8 ff 00 00 00 00"),
            (|a| a.ldx(Size::B, R2, R1, 3), "71 12 03 00 00 00 00 00"),
            (|a| a.stx(Size::DW, R10, -16, R1), "7b 1a f0 ff 00 00 00 00"),
            (|a| a.stx(Size::H, R10, -2, R3), "6b 3a fe ff 00 00 00 00"),
            (|a| a.st_imm(Size::W, R10, -4, 0), "62 0a fc ff 00 00 00 00"),
            (|a| a.st_imm(Size::B, R10, -1, 7), "72 0a ff ff 07 00 00 00"),
        ];
        for (f, expected) in cases {
            assert_eq!(hex(&build(f).unwrap().to_bytes()), expected);
        }
        assert_eq!(
            [Size::B, Size::H, Size::W, Size::DW].map(Size::bytes),
            [1, 2, 4, 8]
        );
    }

    #[test]
    fn forward_and_backward_jumps() {
        let p = build(|a| {
            let (top, out) = (a.new_label(), a.new_label());
            a.place(top);
            a.jmp_imm(Cond::Eq, R0, 0, out); // pc 0 -> 4: off 3
            a.mov64_imm(R1, 1);
            a.mov64_imm(R2, 2);
            a.jmp_reg(Cond::Gt, R1, R2, top); // pc 3 -> 0: off -4
            a.place(out);
            a.ja(top); // pc 4 -> 0: off -5
        });
        let insns = p.unwrap().insns;
        assert_eq!(hex(&insns[0].to_bytes()), "15 00 03 00 00 00 00 00");
        assert_eq!(hex(&insns[3].to_bytes()), "2d 21 fc ff 00 00 00 00");
        assert_eq!(hex(&insns[4].to_bytes()), "05 00 fb ff 00 00 00 00");
    }

    #[test]
    fn relocs_recorded_and_patched() {
        let mut a = Asm::new();
        a.mov64_imm(R2, 0);
        a.ld_map_fd(R1, 3);
        a.ld_map_value(R3, 0, 16);
        a.call_kfunc("bpf_task_from_pid");
        a.exit();
        assert_eq!(a.len(), 7);
        let p = a.finish().unwrap();
        let kfunc = Reloc::Kfunc {
            insn: 5,
            name: "bpf_task_from_pid".into(),
        };
        let map_value = Reloc::MapValue {
            insn: 3,
            map: 0,
            offset: 16,
        };
        assert_eq!(
            p.relocs,
            [Reloc::MapFd { insn: 1, map: 3 }, map_value, kfunc]
        );
        assert_eq!(hex(&p.insns[1].to_bytes()), "18 11 00 00 00 00 00 00");
        let out = p.patched(&Answers(true));
        let out: Vec<_> = out.unwrap().iter().map(|i| hex(&i.to_bytes())).collect();
        assert_eq!(
            out[1..6],
            [
                "18 11 00 00 2b 00 00 00",
                "00 00 00 00 00 00 00 00",
                "18 23 00 00 28 00 00 00",
                "00 00 00 00 10 00 00 00",
                "85 20 00 00 39 30 00 00",
            ]
        );
        assert_eq!(p.insns[1].imm, 0, "the program itself is untouched");
        assert_eq!(
            p.patched(&Answers(false)),
            Err(Unresolved::Kfunc("bpf_task_from_pid".to_string()))
        );
    }

    /// Map `m` has fd 40 + m; with `.0`, kfunc bpf_task_from_pid is 12345 and per-CPU
    /// `preempt_count` lives in variable 777 at offset 12.
    struct Answers(bool);

    impl Resolver for Answers {
        fn map_fd(&self, map: usize) -> i32 {
            40 + map as i32
        }
        fn kfunc_id(&self, name: &str) -> Option<i32> {
            (self.0 && name == "bpf_task_from_pid").then_some(12345)
        }
        fn percpu(&self, name: &str) -> Option<(i32, i16)> {
            (self.0 && name == "preempt_count").then_some((777, 12))
        }
        fn field_offset(&self, _: &str, _: &[String]) -> Option<i16> {
            None
        }
    }

    #[test]
    fn percpu_values() {
        let mut a = Asm::new();
        a.percpu_value(Size::W, R7, "preempt_count", 154);
        a.exit();
        let p = a.finish().unwrap();
        assert_eq!(
            p.relocs,
            [Reloc::PerCpu {
                insn: 0,
                load: 3,
                name: "preempt_count".into()
            }]
        );
        let out: Vec<_> = p
            .patched(&Answers(true))
            .unwrap()
            .iter()
            .map(|i| hex(&i.to_bytes()))
            .collect();
        assert_eq!(
            out[..4],
            [
                "18 31 00 00 09 03 00 00",
                "00 00 00 00 00 00 00 00",
                "85 00 00 00 9a 00 00 00",
                "61 07 0c 00 00 00 00 00",
            ]
        );
        assert_eq!(
            p.patched(&Answers(false)),
            Err(Unresolved::PerCpu("preempt_count".into()))
        );
        let text = p.disassemble(&|_| None, &|m| m.to_string());
        assert_eq!(text[0], "   0: r1 = percpu[preempt_count] ll");
        assert_eq!(text[2], "   3: r7 = *(u32 *)(r0 +0)");
    }

    #[test]
    fn label_errors() {
        let unplaced = build(|a| {
            let l = a.new_label();
            a.ja(l);
        });
        assert_eq!(unplaced, Err(AsmError::LabelNotPlaced { label: 0 }));
        let twice = build(|a| {
            let (_, l) = (a.new_label(), a.new_label());
            a.place(l);
            a.exit();
            a.place(l);
        });
        let err = AsmError::LabelPlacedTwice {
            label: 1,
            first: 0,
            second: 1,
        };
        assert_eq!(twice, Err(err));
        let far = build(|a| {
            let l = a.new_label();
            a.ja(l);
            (0..40_000).for_each(|_| a.mov64_imm(R0, 0));
            a.place(l);
        });
        assert_eq!(
            far,
            Err(AsmError::JumpOutOfRange {
                insn: 0,
                offset: 40_000
            })
        );
    }

    #[test]
    fn write_to_r10_is_rejected_at_finish() {
        let p = build(|a| {
            a.stx(Size::DW, R10, -8, R1); // storing through r10 is fine
            a.st_imm(Size::W, R10, -4, 0);
            a.alu64_imm(Alu::Add, R10, -8);
            a.ldx(Size::W, R10, R1, 0);
        });
        assert_eq!(p, Err(AsmError::WriteToFramePointer { insn: 2 }));
        let writes: [fn(&mut Asm); 3] = [
            |a| a.ld_imm64(R10, 1),
            |a| a.ldx(Size::DW, R10, R1, 0),
            |a| a.mov64_reg(R10, R1),
        ];
        for write in writes {
            let p = build(|a| (a.exit(), write(a)).1);
            assert_eq!(p, Err(AsmError::WriteToFramePointer { insn: 1 }));
        }
    }

    #[test]
    fn disassembly() {
        let mut a = Asm::new();
        let (out, top) = (a.new_label(), a.new_label());
        a.mov64_imm(R1, 0);
        a.mov64_reg(R1, R6);
        a.alu64_imm(Alu::Add, R1, -8);
        a.stx(Size::DW, R10, -16, R1);
        a.st_imm(Size::W, R10, -4, 0);
        a.place(top);
        a.ld_map_fd(R1, 0);
        a.ld_map_value(R2, 0, 16);
        a.ld_imm64(R3, 0x1122_3344_5566_7788);
        a.call_helper(156);
        a.call_helper(9999);
        a.call_kfunc("bpf_task_from_pid");
        a.ldx(Size::DW, R0, R10, -8);
        a.jmp_imm(Cond::Eq, R0, 0, out);
        a.jmp_reg(Cond::Gt, R1, R2, top);
        a.jmp_imm(Cond::Sle, R3, -1, top);
        a.alu64_reg(Alu::Arsh, R4, R5);
        a.alu64_imm(Alu::Neg, R4, 0);
        a.ja(out);
        a.place(out);
        a.exit();
        let helper = |id| (id == 156).then_some("bpf_task_storage_get");
        let lines = a
            .finish()
            .unwrap()
            .disassemble(&helper, &|i| ["st"][i].to_string());
        let expected = [
            "   0: r1 = 0",
            "   1: r1 = r6",
            "   2: r1 += -8",
            "   3: *(u64 *)(r10 -16) = r1",
            "   4: *(u32 *)(r10 -4) = 0",
            "   5: r1 = map[st] ll",
            "   7: r2 = map[st]+16 ll",
            "   9: r3 = 0x1122334455667788 ll",
            "  11: call bpf_task_storage_get#156",
            "  12: call #9999",
            "  13: call kfunc bpf_task_from_pid",
            "  14: r0 = *(u64 *)(r10 -8)",
            "  15: if r0 == 0x0 goto pc+5",
            "  16: if r1 > r2 goto pc-12",
            "  17: if r3 s<= 0xffffffff goto pc-13",
            "  18: r4 s>>= r5",
            "  19: r4 = -r4",
            "  20: goto pc+0",
            "  21: exit",
        ];
        assert_eq!(lines, expected);
    }
}
