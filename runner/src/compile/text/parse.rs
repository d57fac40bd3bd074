//! The parser of one instruction, from the tokens of its line.

use super::lex::{show, Err, Tok, T};
use super::{helper_by_id, helper_by_name, intern, Ins, Operand, Target};
use crate::compile::asm::{Alu, Cond, Reg, Size};

/// Parses one line's tokens.
pub(super) struct Parser<'a> {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    /// Column just past the line's end (for "expected … at the end").
    pub(super) end: usize,
    pub(super) map: &'a dyn Fn(&str) -> Result<usize, String>,
}

impl Parser<'_> {
    pub(super) fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.col)
    }

    fn peek(&self) -> Option<&T> {
        self.toks.get(self.pos).map(|t| &t.t)
    }

    fn next(&mut self) -> Option<T> {
        let t = self.toks.get(self.pos).map(|t| t.t.clone());
        self.pos += 1;
        t
    }

    fn fail<X>(&self, what: &str) -> Result<X, Err> {
        let found = match self.toks.get(self.pos) {
            None => "the end of the line".to_string(),
            Some(t) => format!("`{}`", show(&t.t)),
        };
        Err((self.col(), format!("expected {what}, found {found}")))
    }

    fn op(&mut self, op: &str) -> Result<(), Err> {
        match self.peek() {
            Some(T::Op(o)) if *o == op => {
                self.pos += 1;
                Ok(())
            }
            _ => self.fail(&format!("`{op}`")),
        }
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(T::Op(o)) if *o == op)
    }

    fn word(&mut self, w: &str) -> bool {
        let hit = matches!(self.peek(), Some(T::Ident(x)) if x == w);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn reg(&mut self) -> Result<(bool, Reg), Err> {
        match self.peek() {
            Some(T::Reg(w, r)) => {
                let r = (*w, *r);
                self.pos += 1;
                Ok(r)
            }
            _ => self.fail("a register"),
        }
    }

    /// `NAME:` at the start of what is left: a label.
    pub(super) fn label(&mut self) -> Option<(String, usize)> {
        match (self.toks.get(self.pos), self.toks.get(self.pos + 1)) {
            (
                Some(Tok {
                    t: T::Ident(n),
                    col,
                }),
                Some(Tok { t: T::Op(":"), .. }),
            ) => {
                let l = (n.clone(), *col);
                self.pos += 2;
                Some(l)
            }
            _ => None,
        }
    }

    /// A signed number (`-8`, `+0x10`, `3`).
    fn num(&mut self) -> Result<i128, Err> {
        let neg = if self.is_op("-") {
            self.pos += 1;
            true
        } else {
            if self.is_op("+") {
                self.pos += 1;
            }
            false
        };
        match self.peek() {
            Some(T::Num(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(if neg { -n } else { n })
            }
            _ => self.fail("a number"),
        }
    }

    /// A 32-bit immediate: signed, or its unsigned pattern.
    fn imm32(&mut self) -> Result<i32, Err> {
        let col = self.col();
        let n = self.num()?;
        imm32(n).ok_or((col, format!("{n} does not fit a 32-bit immediate")))
    }

    fn operand(&mut self, wide: bool) -> Result<Operand, Err> {
        if let Some(T::Reg(w, r)) = self.peek() {
            let (w, r, col) = (*w, *r, self.col());
            self.pos += 1;
            if w != wide {
                return Err((col, mixed()));
            }
            return Ok(Operand::Reg(r));
        }
        Ok(Operand::Imm(self.imm32()?))
    }

    /// `*(u64 *)(r1 +8)`: the size, the base register and the offset.
    fn mem(&mut self) -> Result<(Size, Reg, i16), Err> {
        self.op("*")?;
        self.op("(")?;
        let col = self.col();
        let size = match self.next() {
            Some(T::Ident(s)) => match s.as_str() {
                "u8" => Size::B,
                "u16" => Size::H,
                "u32" => Size::W,
                "u64" => Size::DW,
                _ => return Err((col, format!("`{s}` is not a size (u8, u16, u32, u64)"))),
            },
            _ => {
                self.pos -= 1;
                return self.fail("a size (u8, u16, u32, u64)");
            }
        };
        self.op("*")?;
        self.op(")")?;
        self.op("(")?;
        let (wide, base) = self.reg()?;
        if !wide {
            return Err((
                self.col(),
                "a memory operand's base is an r register".into(),
            ));
        }
        let off = if self.is_op(")") {
            0
        } else {
            let col = self.col();
            let n = self.num()?;
            i16::try_from(n).map_err(|_| (col, format!("offset {n} does not fit 16 bits")))?
        };
        self.op(")")?;
        Ok((size, base, off))
    }

    fn target(&mut self) -> Result<Target, Err> {
        let col = self.col();
        let t = match self.peek() {
            Some(T::Ident(w)) if w == "pc" => {
                self.pos += 1;
                Target::Rel(self.num()? as i64, col)
            }
            Some(T::Ident(w)) => {
                let w = w.clone();
                self.pos += 1;
                Target::Label(w, col)
            }
            Some(T::Op("+" | "-")) => {
                let n = self.num()?;
                let n = i64::try_from(n).map_err(|_| (col, format!("offset {n} is too far")))?;
                Target::Rel(n, col)
            }
            _ => return self.fail("a jump target (`+N`, `pc+N` or a label)"),
        };
        // objdump names the target: `goto +2 <LBB0_3>`.
        if self.is_op("<") {
            self.pos += 1;
            if matches!(self.peek(), Some(T::Ident(_))) {
                self.pos += 1;
            }
            self.op(">")?;
        }
        Ok(t)
    }

    fn done(&mut self, ins: Ins) -> Result<Ins, Err> {
        if self.pos < self.toks.len() {
            return self.fail("the end of the instruction");
        }
        Ok(ins)
    }

    /// One instruction.
    pub(super) fn insn(&mut self) -> Result<Ins, Err> {
        let col = self.col();
        match self.peek().cloned() {
            Some(T::Ident(w)) if w == "exit" => {
                self.pos += 1;
                self.done(Ins::Exit)
            }
            Some(T::Ident(w)) if w == "goto" => {
                self.pos += 1;
                let t = self.target()?;
                self.done(Ins::Ja(t))
            }
            Some(T::Ident(w)) if w == "call" => {
                self.pos += 1;
                let ins = self.call()?;
                self.done(ins)
            }
            Some(T::Ident(w)) if w == "if" => {
                self.pos += 1;
                let (wide, dst) = self.reg()?;
                let ccol = self.col();
                let cond = match self.next() {
                    Some(T::Op(o)) => cond(o),
                    _ => None,
                };
                let cond = cond.ok_or((
                    ccol,
                    "expected a comparison (== != > >= < <= s> s>= s< s<= &)".to_string(),
                ))?;
                let src = self.operand(wide)?;
                if !self.word("goto") {
                    return self.fail("`goto`");
                }
                let t = self.target()?;
                self.done(Ins::Jmp(wide, cond, dst, src, t))
            }
            Some(T::Ident(w)) if w == "lock" => {
                self.pos += 1;
                let (size, dst, off) = self.mem()?;
                if !matches!(size, Size::W | Size::DW) {
                    return Err((col, "atomic operations are u32 or u64".into()));
                }
                let ocol = self.col();
                let op = match self.next() {
                    Some(T::Op("+=")) => Alu::Add,
                    Some(T::Op("|=")) => Alu::Or,
                    Some(T::Op("&=")) => Alu::And,
                    Some(T::Op("^=")) => Alu::Xor,
                    _ => return Err((ocol, "expected an atomic operation (+= |= &= ^=)".into())),
                };
                let (_, src) = self.reg()?;
                self.done(Ins::Atomic(size, op, dst, off, src))
            }
            Some(T::Op("*")) => {
                let (size, dst, off) = self.mem()?;
                self.op("=")?;
                let ins = match self.peek() {
                    Some(T::Reg(_, r)) => {
                        let r = *r;
                        self.pos += 1;
                        Ins::Stx(size, dst, off, r)
                    }
                    _ => Ins::St(size, dst, off, self.imm32()?),
                };
                self.done(ins)
            }
            Some(T::Reg(wide, dst)) => {
                self.pos += 1;
                if dst == Reg::R10 {
                    return Err((col, "r10, the frame pointer, is read-only".into()));
                }
                let ocol = self.col();
                let op = match self.next() {
                    Some(T::Op(o)) => alu(o),
                    _ => None,
                };
                let op = op.ok_or((
                    ocol,
                    "expected `=` or an ALU operation (+= -= *= /= %= |= &= ^= <<= >>= s>>=)"
                        .to_string(),
                ))?;
                let ins = if op == Alu::Mov {
                    self.assign(wide, dst)?
                } else {
                    Ins::Alu(wide, op, dst, self.operand(wide)?)
                };
                self.done(ins)
            }
            _ => self.fail("an instruction"),
        }
    }

    /// What follows `rD =`.
    fn assign(&mut self, wide: bool, dst: Reg) -> Result<Ins, Err> {
        let col = self.col();
        match self.peek().cloned() {
            Some(T::Op("*")) => {
                let (size, src, off) = self.mem()?;
                Ok(Ins::Ldx(size, dst, src, off))
            }
            Some(T::Op("-"))
                if matches!(self.toks.get(self.pos + 1).map(|t| &t.t), Some(T::Reg(..))) =>
            {
                self.pos += 1;
                let (w, r) = self.reg()?;
                if r != dst || w != wide {
                    return Err((col, "negation is `rD = -rD`, of the same register".into()));
                }
                Ok(Ins::Neg(wide, dst))
            }
            Some(T::Ident(m)) if m == "map" => {
                self.pos += 1;
                self.op("[")?;
                let ncol = self.col();
                let name = match self.next() {
                    Some(T::Ident(n)) => n,
                    _ => {
                        self.pos -= 1;
                        return self.fail("a map name");
                    }
                };
                self.op("]")?;
                let index = (self.map)(&name).map_err(|m| (ncol, m))?;
                let off = if self.is_op("+") {
                    let ocol = self.col();
                    let n = self.num()?;
                    Some(
                        u32::try_from(n)
                            .map_err(|_| (ocol, format!("offset {n} does not fit 32 bits")))?,
                    )
                } else {
                    None
                };
                self.word("ll");
                if !wide {
                    return Err((col, "a map is loaded into an r register".into()));
                }
                Ok(Ins::LdMap(dst, index, off))
            }
            Some(T::Reg(w, r)) => {
                self.pos += 1;
                if w != wide {
                    return Err((col, mixed()));
                }
                Ok(Ins::Alu(wide, Alu::Mov, dst, Operand::Reg(r)))
            }
            _ => {
                let n = self.num()?;
                let ll = self.word("ll");
                if ll && !wide {
                    return Err((col, "ld_imm64 loads an r register".into()));
                }
                let small = i32::try_from(n).ok();
                match (wide, ll, small) {
                    (true, false, Some(i)) => Ok(Ins::Alu(true, Alu::Mov, dst, Operand::Imm(i))),
                    (true, _, _) => {
                        let v = u64::try_from(n)
                            .ok()
                            .or_else(|| i64::try_from(n).ok().map(|v| v as u64))
                            .ok_or((col, format!("{n} does not fit 64 bits")))?;
                        Ok(Ins::LdImm64(dst, v))
                    }
                    (false, _, _) => {
                        let i = imm32(n).ok_or((col, format!("{n} does not fit 32 bits")))?;
                        Ok(Ins::Alu(false, Alu::Mov, dst, Operand::Imm(i)))
                    }
                }
            }
        }
    }

    /// After `call`: `NAME`, `NAME#ID`, `ID`, `#ID`, `kfunc NAME`.
    fn call(&mut self) -> Result<Ins, Err> {
        let kfunc = self.word("kfunc");
        let ncol = self.col();
        match self.next() {
            Some(T::Ident(name)) => {
                let id = if self.is_op("#") {
                    self.pos += 1;
                    Some(self.num()?)
                } else {
                    None
                };
                match (kfunc, helper_by_name(&name), id) {
                    (false, Some(h), Some(id)) if i128::from(h.id) != id => {
                        Err((ncol, format!("helper {name} is #{}, not #{id}", h.id)))
                    }
                    (false, Some(h), _) => Ok(Ins::Helper(h)),
                    // `NAME#ID` for a name that is no helper: the verifier's kfunc form.
                    (true, _, _) | (false, None, Some(_)) => Ok(Ins::Kfunc(intern(&name))),
                    (false, None, None) => Err((
                        ncol,
                        format!(
                            "unknown helper `{name}` (for a kernel function: `call kfunc {name}`)"
                        ),
                    )),
                }
            }
            Some(T::Op("#")) | Some(T::Num(_)) if !kfunc => {
                if self.toks[self.pos - 1].t != T::Op("#") {
                    self.pos -= 1;
                }
                let n = self.num()?;
                let h = i32::try_from(n).ok().and_then(helper_by_id);
                h.map(Ins::Helper)
                    .ok_or((ncol, format!("no helper #{n} in the UAPI")))
            }
            _ => {
                self.pos -= 1;
                self.fail(if kfunc {
                    "a kernel function name"
                } else {
                    "a helper (a name or a number)"
                })
            }
        }
    }
}

fn mixed() -> String {
    "r and w registers do not mix in one instruction".into()
}

fn imm32(n: i128) -> Option<i32> {
    i32::try_from(n)
        .ok()
        .or_else(|| u32::try_from(n).ok().map(|v| v as i32))
}

fn cond(o: &str) -> Option<Cond> {
    Some(match o {
        "==" => Cond::Eq,
        "!=" => Cond::Ne,
        ">" => Cond::Gt,
        ">=" => Cond::Ge,
        "<" => Cond::Lt,
        "<=" => Cond::Le,
        "s>" => Cond::Sgt,
        "s>=" => Cond::Sge,
        "s<" => Cond::Slt,
        "s<=" => Cond::Sle,
        "&" => Cond::Set,
        _ => return None,
    })
}

fn alu(o: &str) -> Option<Alu> {
    Some(match o {
        "=" => Alu::Mov,
        "+=" => Alu::Add,
        "-=" => Alu::Sub,
        "*=" => Alu::Mul,
        "/=" => Alu::Div,
        "%=" => Alu::Mod,
        "|=" => Alu::Or,
        "&=" => Alu::And,
        "^=" => Alu::Xor,
        "<<=" => Alu::Lsh,
        ">>=" => Alu::Rsh,
        "s>>=" => Alu::Arsh,
        _ => return None,
    })
}
