//! Which program types may call which helper, per kernel, measured: a program of type T that
//! calls helper H loaded (may call), or the verifier rejected it with a line naming H (may
//! not); compared with the program types the helper's documentation lists.
//!
//! Owns: reading the helper answer out of observations and the documentation comparison. Must
//! not: render.

use super::{Column, Row};
use crate::exec::{Outcome, Res};
use crate::tables::{self, HelperDoc};

/// The measured answer for one helper, program type and kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum May {
    /// A program of the type calling the helper loaded.
    Call,
    /// The verifier rejected such a program with a line refusing the helper to the type.
    Not,
    /// The kernel does not know the helper at all (its id is beyond the kernel's list).
    Absent,
    /// No answer: unsupported, refused, or rejected for another reason.
    Unknown,
}

impl May {
    pub fn words(self) -> &'static str {
        match self {
            May::Call => "may call",
            May::Not => "may not",
            May::Absent => "no such helper",
            May::Unknown => "?",
        }
    }
}

/// One cell: the answer, and the observation that gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub may: May,
    /// `instance step: result`.
    pub evidence: String,
    /// Some program loaded and another was refused the helper on this kernel.
    pub conflict: bool,
}

/// One program type (as a case names it) calling one helper, across the kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRow {
    pub prog_type: String,
    pub uapi: String,
    /// Whether the documentation lists the UAPI type; None when it has no list for the helper.
    pub documented: Option<bool>,
    /// Per column; None where nothing calling the helper from this type was observed.
    pub cells: Vec<Option<Cell>>,
}

impl TypeRow {
    /// The first column where the type may call the helper.
    pub fn first_call(&self) -> Option<usize> {
        self.cells
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.may == May::Call))
    }

    /// The last column where it may not (or the kernel lacks the helper).
    pub fn last_not(&self) -> Option<usize> {
        self.cells.iter().rposition(|c| {
            c.as_ref()
                .is_some_and(|c| matches!(c.may, May::Not | May::Absent))
        })
    }

    /// The answer of the newest kernel that gave one (may call or may not).
    pub fn latest(&self) -> Option<May> {
        self.cells
            .iter()
            .rev()
            .flatten()
            .map(|c| c.may)
            .find(|m| matches!(m, May::Call | May::Not))
    }

    /// Kernels with an answer: may call, may not, or no such helper.
    pub fn measured(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .filter(|c| c.may != May::Unknown)
            .count()
    }
}

/// One helper: its documentation and the program types measured calling it.
pub struct HelperTable {
    pub helper: String,
    pub doc: Option<&'static HelperDoc>,
    /// Program types in the order of the type table, unknown ones after.
    pub rows: Vec<TypeRow>,
}

impl HelperTable {
    /// The rows merged per UAPI type (fentry, fexit, tp_btf… are all TRACING): per column the
    /// best answer of any of its types. (UAPI name, the types, the merged row.)
    pub fn by_uapi(&self) -> Vec<(String, Vec<String>, TypeRow)> {
        let mut out: Vec<(String, Vec<String>, TypeRow)> = Vec::new();
        for r in &self.rows {
            match out.iter_mut().find(|(u, _, _)| *u == r.uapi) {
                Some((_, types, m)) => {
                    types.push(r.prog_type.clone());
                    for (a, b) in m.cells.iter_mut().zip(&r.cells) {
                        *a = merge(a.take(), b.clone());
                    }
                }
                None => out.push((r.uapi.clone(), vec![r.prog_type.clone()], r.clone())),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A documentation list that the measurement contradicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discrepancy {
    /// The documentation does not list the type, but programs of it may call the helper.
    Undocumented {
        helper: String,
        uapi: String,
        types: Vec<String>,
        /// First column where it may call; last column where it may not, if any.
        from: usize,
        not_until: Option<usize>,
    },
    /// The documentation lists the type, but the newest kernel that answered refuses it.
    Refused {
        helper: String,
        uapi: String,
        types: Vec<String>,
        /// Last column where it may not.
        until: usize,
        /// First column where it may call, if any.
        called_from: Option<usize>,
    },
}

/// The documentation discrepancies of every helper, per UAPI type.
pub fn discrepancies(tables: &[HelperTable]) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    for t in tables {
        for (uapi, types, row) in t.by_uapi() {
            match (row.documented, row.first_call(), row.last_not()) {
                (Some(false), Some(from), not_until) => out.push(Discrepancy::Undocumented {
                    helper: t.helper.clone(),
                    uapi,
                    types,
                    from,
                    not_until,
                }),
                (Some(true), called_from, Some(until)) if row.latest() == Some(May::Not) => out
                    .push(Discrepancy::Refused {
                        helper: t.helper.clone(),
                        uapi,
                        types,
                        until,
                        called_from,
                    }),
                _ => {}
            }
        }
    }
    out
}

/// The better-informed of two answers for one kernel.
fn merge(a: Option<Cell>, b: Option<Cell>) -> Option<Cell> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let conflict = a.conflict
                || b.conflict
                || (a.may == May::Call && b.may == May::Not)
                || (a.may == May::Not && b.may == May::Call);
            let mut best = if b.may < a.may { b } else { a };
            best.conflict = conflict;
            Some(best)
        }
        (a, b) => a.or(b),
    }
}

/// Whether a verifier line refuses helper `h` to the program's type: `program of this type
/// cannot use helper bpf_x#156`, or `unknown func bpf_x#156` (what older kernels say when the
/// type's helper list lacks it). Other lines naming the helper (`cannot pass map_type 1 into
/// func bpf_x#156`) are about its arguments.
pub fn refuses_helper(line: &str, h: &str) -> bool {
    ["cannot use helper ", "unknown func "].iter().any(|p| {
        line.match_indices(p).any(|(i, _)| {
            names_helper(&line[i + p.len()..], h) && line[i + p.len()..].starts_with(h)
        })
    })
}

/// Whether a line names helper `h` as a word (`bpf_x#156`, not `bpf_x_y`).
pub fn names_helper(line: &str, h: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(h).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + h.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The answer one program step gives about helper `h`.
fn answer(outcome: &Outcome, res: Option<&Res>, h: &str) -> (May, String) {
    if *outcome != Outcome::Ran {
        let text = match outcome {
            Outcome::Unsupported { reason } => format!("unsupported({reason})"),
            Outcome::Refused { errno, what } => format!("refused({errno}: {what})"),
            Outcome::Error { message } => format!("error({message})"),
            Outcome::Ran => String::new(),
        };
        return (May::Unknown, text);
    }
    let Some(res) = res else {
        return (May::Unknown, "no result".into());
    };
    let text = super::super::render(res);
    let may = match res {
        Res::Loaded
        | Res::Ok
        | Res::LoadOnly
        | Res::Attached { .. }
        | Res::AttachedFor { .. }
        | Res::RunFailed { .. } => May::Call,
        Res::Rejected { line, .. } if refuses_helper(line, h) => May::Not,
        Res::Unsupported { reason }
            if reason.starts_with(&format!("helper {h} "))
                && reason.ends_with("unknown to this kernel") =>
        {
            May::Absent
        }
        _ => May::Unknown,
    };
    (may, text)
}

/// The program-type table of every helper named in the instances' programs (kfuncs aside), in
/// order of first call.
pub fn tables(kernels: &[Column], rows: &[Row]) -> Vec<HelperTable> {
    let mut out: Vec<HelperTable> = Vec::new();
    for row in rows {
        let Some(info) = row.info else { continue };
        for p in &info.programs {
            for h in p.calls.iter().filter(|c| !c.starts_with("kfunc ")) {
                let t = match out.iter().position(|t| t.helper == *h) {
                    Some(i) => &mut out[i],
                    None => {
                        out.push(HelperTable {
                            helper: h.clone(),
                            doc: tables::helper_doc(h),
                            rows: Vec::new(),
                        });
                        let last = out.len() - 1;
                        &mut out[last]
                    }
                };
                let tr = match t.rows.iter().position(|r| r.prog_type == p.program_type) {
                    Some(i) => &mut t.rows[i],
                    None => {
                        t.rows.push(TypeRow {
                            prog_type: p.program_type.clone(),
                            uapi: p.uapi_type.clone(),
                            documented: t.doc.map(|d| d.program_types.contains(&&*p.uapi_type)),
                            cells: vec![None; kernels.len()],
                        });
                        let last = t.rows.len() - 1;
                        &mut t.rows[last]
                    }
                };
                for (c, cell) in row.cells.iter().enumerate() {
                    let Some(r) = cell else { continue };
                    let o = &r.observation;
                    let (may, text) = answer(&o.outcome, o.result(&p.step), h);
                    let new = Cell {
                        may,
                        evidence: format!("{} {}: {text}", row.id, p.step),
                        conflict: false,
                    };
                    tr.cells[c] = merge(tr.cells[c].take(), Some(new));
                }
            }
        }
    }
    let rank = |t: &str| {
        tables::PROG_TYPES
            .iter()
            .position(|p| p.name == t)
            .unwrap_or(usize::MAX)
    };
    for t in &mut out {
        t.rows.sort_by(|a, b| {
            (rank(&a.prog_type), &a.prog_type).cmp(&(rank(&b.prog_type), &b.prog_type))
        });
    }
    out
}
