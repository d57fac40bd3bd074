//! The cross-kernel sections of `conformance.md`: outcomes that differ between kernels as
//! version ranges, what changed between adjacent kernels, and how many instances measured the
//! same everywhere.
//!
//! Owns: those sections' text. Must not: compute what the matrix computes.

use std::fmt::Write;

use super::{cell, code, MD};
use crate::report::findings::{self, by_case};
use crate::report::matrix::Matrix;
use crate::report::words::{self, plural};

pub fn differences(s: &mut String, m: &Matrix) {
    s.push_str("## Outcomes that differ between kernels\n\n");
    let mut any = false;
    for (case, differ, total) in m.differing_by_case() {
        any = true;
        let _ = writeln!(
            s,
            "### {} — {} of {} instances\n",
            cell(&case),
            differ.len(),
            total
        );
        let groups = by_case(
            m,
            differ.iter().map(|&i| {
                let ranges: Vec<(String, String)> = m
                    .ranges(&m.rows[i])
                    .iter()
                    .map(|g| (m.span(g.first, g.last), g.text.clone()))
                    .collect();
                (i, ranges)
            }),
        );
        for (ranges, rows) in groups {
            let p: Vec<String> = words::patterns(m, &rows).iter().map(|p| code(p)).collect();
            let _ = writeln!(s, "- {}", p.join(", "));
            for (span, text) in ranges {
                let _ = writeln!(s, "  - {span}: {}", code(&text));
            }
        }
        s.push('\n');
    }
    if !any {
        s.push_str("None: every instance measured the same on every kernel.\n\n");
    }
}

pub fn changes(s: &mut String, m: &Matrix) {
    s.push_str("## Changed between adjacent kernels\n\n");
    for c in &m.changes {
        let pair = super::text(&findings::pair(m, c));
        if c.is_empty() {
            let _ = writeln!(s, "- {pair}: no change");
            continue;
        }
        let _ = writeln!(s, "- {pair}: {}", findings::counts(c));
        for line in findings::change_lines(m, c, &MD) {
            let _ = writeln!(s, "  - {line}");
        }
    }
    if m.changes.is_empty() {
        s.push_str("Fewer than two kernels ran.\n");
    }
    s.push('\n');
}

pub fn same(s: &mut String, m: &Matrix) {
    s.push_str("## The same on every kernel\n\n");
    let same = |i: usize| !m.differs(&m.rows[i]) && m.ever_measured(&m.rows[i]);
    let per_case: Vec<String> = m
        .cases()
        .iter()
        .map(|c| {
            let rows = m.case_rows(c);
            format!(
                "{} {} of {}",
                cell(c),
                rows.iter().filter(|&&i| same(i)).count(),
                rows.len()
            )
        })
        .collect();
    let never = (0..m.rows.len())
        .filter(|&i| !m.ever_measured(&m.rows[i]))
        .count();
    let _ = writeln!(
        s,
        "{} of {} measured the same on every kernel where they measured anything ({}); {} measured nothing anywhere.",
        plural((0..m.rows.len()).filter(|&i| same(i)).count(), "instance", "instances"),
        m.rows.len(),
        per_case.join(", "),
        never
    );
}
