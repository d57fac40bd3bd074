//! Tokens of one line of program text.

use crate::compile::asm::Reg;

/// A token and its 1-based column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Tok {
    pub(super) t: T,
    pub(super) col: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum T {
    /// `rN` (wide) or `wN`.
    Reg(bool, Reg),
    Num(i128),
    Ident(String),
    Op(&'static str),
}

/// Operators, longest first.
const OPS: [&str; 34] = [
    "s>>=", "<<=", ">>=", "s>=", "s<=", "==", "!=", ">=", "<=", "+=", "-=", "*=", "/=", "%=", "|=",
    "&=", "^=", "s>", "s<", "=", ">", "<", "&", "*", "(", ")", "[", "]", "+", "-", "#", ":", ",",
    "|",
];

const REGS: [Reg; 11] = [
    Reg::R0,
    Reg::R1,
    Reg::R2,
    Reg::R3,
    Reg::R4,
    Reg::R5,
    Reg::R6,
    Reg::R7,
    Reg::R8,
    Reg::R9,
    Reg::R10,
];

/// A column and what is wrong there.
pub(super) type Err = (usize, String);

/// Splits a line into tokens; a comment (`//` anywhere, `;` first) ends it.
pub(super) fn lex(line: &str) -> Result<Vec<Tok>, Err> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let rest: String = chars[i..].iter().collect();
        if c.is_whitespace() {
            i += 1;
        } else if rest.starts_with("//") || (c == ';' && out.is_empty()) {
            break;
        } else if c == ';' {
            return Err((
                col,
                "one instruction per line (`;` only starts a comment line)".into(),
            ));
        } else if c.is_ascii_digit() {
            let len = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            let word: String = chars[i..i + len].iter().collect();
            let n = parse_num(&word).ok_or((col, format!("`{word}` is not a number")))?;
            // objdump's instruction bytes (`b7 01 …`) start with a digit or a letter: a
            // two-digit hex word that is not a decimal number stays a word.
            out.push(Tok { t: n, col });
            i += len;
        } else if let Some(op) = OPS.iter().find(|o| rest.starts_with(*o)) {
            out.push(Tok { t: T::Op(op), col });
            i += op.chars().count();
        } else if c.is_ascii_alphabetic() || c == '_' || c == '.' {
            let len = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == '.')
                .count();
            let word: String = chars[i..i + len].iter().collect();
            out.push(Tok {
                t: word_token(&word, col)?,
                col,
            });
            i += len;
        } else {
            return Err((col, format!("unexpected `{c}`")));
        }
    }
    Ok(out)
}

fn parse_num(w: &str) -> Option<T> {
    let v = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(h) => i128::from_str_radix(h, 16).ok()?,
        None if w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()) => {
            // A byte of objdump's dump (`0f`) or a decimal number (`12`): decided later.
            return Some(match w.parse::<i128>() {
                Ok(v) => T::Num(v),
                Err(_) => T::Ident(w.to_string()),
            });
        }
        None => w.parse::<i128>().ok()?,
    };
    Some(T::Num(v))
}

fn word_token(w: &str, col: usize) -> Result<T, Err> {
    let reg = |wide: bool, n: &str| -> Option<Result<T, Err>> {
        let k: usize = n
            .parse()
            .ok()
            .filter(|_| n.chars().all(|c| c.is_ascii_digit()))?;
        Some(match REGS.get(k) {
            Some(r) => Ok(T::Reg(wide, *r)),
            None => Err((col, format!("no register `{w}` (r0 to r10)"))),
        })
    };
    let as_reg = match w.split_at(1) {
        ("r", n) if !n.is_empty() => reg(true, n),
        ("w", n) if !n.is_empty() => reg(false, n),
        _ => None,
    };
    as_reg.unwrap_or_else(|| Ok(T::Ident(w.to_string())))
}

/// Skips what logs and disassemblies put before an instruction: `12:`, the verifier's opcode
/// `(b7)`, objdump's eight instruction bytes (a line of bytes alone is a ld_imm64's second half).
pub(super) fn strip_prefix(toks: &[Tok]) -> Vec<Tok> {
    let mut t = toks;
    if let [Tok { t: T::Num(_), .. }, Tok { t: T::Op(":"), .. }, rest @ ..] = t {
        t = rest;
        let hex_byte = |x: &Tok| match &x.t {
            T::Num(n) => (0..100).contains(n),
            T::Ident(w) => w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()),
            _ => false,
        };
        if let [Tok { t: T::Op("("), .. }, b, Tok { t: T::Op(")"), .. }, rest @ ..] = t {
            if hex_byte(b) {
                t = rest;
            }
        } else if t.len() >= 8 && t[..8].iter().all(hex_byte) {
            t = &t[8..];
        }
    }
    t.to_vec()
}

/// A token as written, for messages.
pub(super) fn show(t: &T) -> String {
    match t {
        T::Reg(true, r) => format!("r{}", *r as u8),
        T::Reg(false, r) => format!("w{}", *r as u8),
        T::Num(n) => n.to_string(),
        T::Ident(w) => w.clone(),
        T::Op(o) => o.to_string(),
    }
}
