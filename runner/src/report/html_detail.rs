//! The detail sections of `conformance.html`, below the grid: the kernels, the expectation
//! failures per kernel, and the outcomes that differ between kernels as version ranges.
//!
//! Owns: those sections' HTML. Must not: compute what the matrix computes.

use std::fmt::Write;

use super::{count, esc, patterns, HTML};
use crate::report::findings::{self, by_case};
use crate::report::matrix::Matrix;
use crate::report::words;

pub fn kernels(s: &mut String, m: &Matrix) {
    s.push_str("<h2>Kernels</h2>\n<table class=\"kernels\">\n<tr><th>kernel</th><th>release</th><th>origin</th><th>BTF</th><th>instances</th><th>programs accepted / rejected</th><th>unsupported / refused / errors</th><th>expectations pass / fail / no rule</th><th>notes</th></tr>\n");
    for k in &m.kernels {
        let id = &k.run.identity;
        let (origin, btf) = words::identity_cells(id);
        let cells = words::summary_cells(&k.run.summary);
        let mut notes: Vec<String> = Vec::new();
        if let Some(why) = &k.run.unusable {
            notes.push(format!("unusable: {why}"));
        }
        notes.extend(k.run.problems.iter().cloned());
        if !k.run.did_not_report.is_empty() {
            notes.push(format!("{} did not report", k.run.did_not_report.len()));
        }
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{btf}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.label),
            esc(id.release.as_deref().unwrap_or("")),
            esc(&origin),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            esc(&notes.join("; "))
        );
    }
    s.push_str("</table>\n");
}

pub fn failures(s: &mut String, m: &Matrix) {
    s.push_str("<h2>Expectation failures</h2>\n");
    let runs = findings::failure_runs(m);
    if runs.is_empty() {
        s.push_str("<p>None.</p>\n");
    }
    for (a, b, fails) in runs {
        let each = if a == b { "" } else { ", the same on each" };
        let _ = writeln!(
            s,
            "<h3>{} — {}{each}</h3>\n<ul>",
            esc(&m.span(a, b)),
            count(fails.len())
        );
        for (t, rows) in by_case(m, fails) {
            let _ = writeln!(
                s,
                "<li>{}: {}</li>",
                findings::ids(m, &rows, &HTML),
                esc(&t)
            );
        }
        s.push_str("</ul>\n");
    }
}

pub fn differences(s: &mut String, m: &Matrix) {
    s.push_str("<h2>Outcomes that differ between kernels</h2>\n");
    let mut any = false;
    for (case, differ, total) in m.differing_by_case() {
        any = true;
        let _ = writeln!(
            s,
            "<details class=\"case\"><summary>{} — {} of {}</summary>",
            esc(&case),
            differ.len(),
            count(total)
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
            let _ = writeln!(
                s,
                "<div>{}</div>\n<ul class=\"ranges\">",
                patterns(m, &rows)
            );
            for (span, text) in ranges {
                let _ = writeln!(s, "<li>{}: <code>{}</code></li>", esc(&span), esc(&text));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("</details>\n");
    }
    if !any {
        s.push_str("<p>None: every instance measured the same on every kernel.</p>\n");
    }
    let same = (0..m.rows.len())
        .filter(|&i| !m.differs(&m.rows[i]) && m.ever_measured(&m.rows[i]))
        .count();
    let _ = writeln!(
        s,
        "<p>{} of {} measured the same on every kernel where they measured anything.</p>",
        count(same),
        m.rows.len()
    );
}
