//! `conformance.md`: a results file as Markdown a person reads in a minute, findings first
//! (documentation discrepancies, failing expectations, what changed between kernels), then the
//! kernels, a case × kernel grid, the program types per helper, and the detail.
//!
//! Owns: the Markdown text. Must not: compute what the matrix computes, or show timings (the
//! same observations must give the same bytes).

use std::fmt::Write;

use super::matrix::{group, helpers, Class, HelperTable, Matrix, May, State};
use super::words::{self, list, plural};

#[path = "markdown_changes.rs"]
mod changes;
use crate::results::Results;

/// The conformance report of a results file.
/// The conformance report of a results file.
pub fn markdown(r: &Results) -> String {
    let m = Matrix::new(r);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Conformance: {} cases, {} instances, {} kernels\n",
        m.cases().len(),
        m.rows.len(),
        m.kernels.len()
    );
    s.push_str(HOW_TO_READ);
    s.push('\n');
    findings(&mut s, &m);
    grid(&mut s, &m);
    kernels(&mut s, &m);
    failures(&mut s, &m);
    program_types(&mut s, &m);
    changes::differences(&mut s, &m);
    changes::changes(&mut s, &m);
    changes::same(&mut s, &m);
    s
}

const HOW_TO_READ: &str = "How to read: every case file expands into instances, and every \
instance ran on every kernel. An instance's outcome is its snapshot line: `name=result` for \
each step. Kernels go by series, oldest first; the running kernel (`host-X.Y`) comes after the \
guest of its series. A range `6.1 – 6.12` means every kernel from the first to the last in the \
kernel table gave that outcome. An instance *measured nothing* on a kernel where all it did was \
unsupported or refused; such kernels do not make an instance differ. Ids like \
`flags={0x2,0x3}/task=*` stand for every combination (`*`: every value of the case). In the \
program-type tables, `yes` means a program of that type calling the helper loaded; `no` means \
the verifier refused the helper to the type; `gone` means the kernel does not know the helper; \
`?` means no answer (unsupported, refused, or rejected for another reason). The findings come \
first, the details after.\n";

/// Inline code that survives any text.
pub(super) fn code(t: &str) -> String {
    let t = t.replace('\n', " ");
    if t.contains('`') {
        format!("`` {t} ``")
    } else {
        format!("`{t}`")
    }
}

/// Text for a table cell.
pub(super) fn cell(t: &str) -> String {
    t.replace('\n', " ").replace('|', "\\|")
}

/// Rows of one case as `case pattern, pattern`.
pub(super) fn ids(m: &Matrix, rows: &[usize]) -> String {
    let case = rows.first().map_or("", |&i| m.rows[i].case.as_str());
    let p: Vec<String> = words::patterns(m, rows).iter().map(|p| code(p)).collect();
    format!("{} {}", cell(case), p.join(", "))
}

/// Rows grouped by case, then by a key: (key, rows of one case), in row order.
pub(super) fn by_case<K: PartialEq + Clone>(
    m: &Matrix,
    rows: impl IntoIterator<Item = (usize, K)>,
) -> Vec<(K, Vec<usize>)> {
    group(
        rows.into_iter()
            .map(|(i, k)| ((m.rows[i].case.clone(), k), i)),
    )
    .into_iter()
    .map(|((_, k), rows)| (k, rows))
    .collect()
}

/// (row, its failures joined).
type Failures = Vec<(usize, String)>;

/// The failures of column `c`: (row, failures), in row order.
fn failing(m: &Matrix, c: usize) -> Failures {
    (0..m.rows.len())
        .filter_map(|i| {
            let r = m.rows[i].cells[c]?;
            (!r.failures.is_empty()).then(|| (i, r.failures.join("; ")))
        })
        .collect()
}

fn findings(s: &mut String, m: &Matrix) {
    s.push_str("## Findings\n\n");
    let disc = words::discrepancies(m, &|h| code(h));
    for d in &disc {
        let _ = writeln!(s, "- **Documentation:** {d}");
    }
    let documented: Vec<String> = m
        .helpers
        .iter()
        .filter(|t| t.doc.is_some())
        .map(|t| code(&t.helper))
        .collect();
    if disc.is_empty() && !documented.is_empty() {
        let _ = writeln!(
            s,
            "- **Documentation:** the program types measured agree with the documentation of {}.",
            list(&documented)
        );
    }
    let fails: Vec<String> = words::runs(m, |c| failing(m, c))
        .into_iter()
        .filter(|(_, _, f)| !f.is_empty())
        .map(|(a, b, f)| {
            let each = if a == b { "" } else { "each of " };
            format!("{} on {each}{}", f.len(), m.span(a, b))
        })
        .collect();
    if fails.is_empty() {
        s.push_str("- **Expectations:** every rule that could be judged holds.\n");
    } else {
        let _ = writeln!(
            s,
            "- **Expectations:** failing instances: {}.",
            fails.join("; ")
        );
    }
    let classes = by_case(
        m,
        (0..m.rows.len())
            .filter(|&i| {
                !matches!(
                    m.rows[i].class,
                    Class::Holds | Class::NoRule | Class::NotRun
                )
            })
            .map(|i| (i, m.rows[i].class.words())),
    );
    for (class, rows) in group(classes) {
        let cases: Vec<String> = rows.iter().map(|r| ids(m, r)).collect();
        let _ = writeln!(s, "- **Across kernels, {class}:** {}.", cases.join("; "));
    }
    let differ = m.rows.iter().filter(|r| m.differs(r)).count();
    let _ = writeln!(
        s,
        "- **Between kernels:** {} of {} measured different things on different kernels; {}.",
        plural(differ, "instance", "instances"),
        m.rows.len(),
        change_counts(m)
    );
    for c in m.ran() {
        let rows: Vec<usize> = (0..m.rows.len())
            .filter(|&i| m.rows[i].cells[c].is_some() && !m.rows[i].measured[c])
            .collect();
        if rows.is_empty() {
            continue;
        }
        let why: Vec<String> = words::reasons(m, &rows, c)
            .into_iter()
            .take(3)
            .map(|(w, n)| format!("{} ({n})", code(&w)))
            .collect();
        let _ = writeln!(
            s,
            "- **Measured nothing on {}:** {} of {}: {}.",
            m.kernels[c].label,
            plural(rows.len(), "instance", "instances"),
            m.rows.len(),
            why.join(", ")
        );
    }
    for k in &m.kernels {
        if let Some(u) = &k.run.unusable {
            let _ = writeln!(s, "- **Unusable:** {}: {}", k.label, u);
        }
        if !k.run.problems.is_empty() {
            let _ = writeln!(
                s,
                "- **Problems on {}:** {}",
                k.label,
                k.run.problems.join("; ")
            );
        }
    }
    s.push('\n');
}

fn change_counts(m: &Matrix) -> String {
    let steps: Vec<String> = m
        .changes
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| {
            let mut parts = Vec::new();
            if !c.rows.is_empty() {
                parts.push(format!("{} changed", c.rows.len()));
            }
            if !c.appeared.is_empty() {
                parts.push(format!("{} newly measured", c.appeared.len()));
            }
            if !c.vanished.is_empty() {
                parts.push(format!("{} no longer measured", c.vanished.len()));
            }
            if !c.neither.is_empty() {
                parts.push(format!("{} unmeasured for another reason", c.neither.len()));
            }
            format!(
                "{} → {}: {}",
                m.kernels[c.from].label,
                m.kernels[c.to].label,
                parts.join(", ")
            )
        })
        .collect();
    if steps.is_empty() {
        "no change between adjacent kernels".into()
    } else {
        format!("between adjacent kernels: {}", steps.join("; "))
    }
}

pub fn symbol(s: State) -> &'static str {
    match s {
        State::Error => "error",
        State::Fail => "FAIL",
        State::Unsupported => "unsup.",
        State::RejectedOnly => "rejected",
        State::Pass => "ok",
        State::Empty => "",
    }
}

fn header(s: &mut String, first: &[&str], m: &Matrix, last: &[&str]) {
    let labels: Vec<String> = m.ran().iter().map(|&c| cell(&m.kernels[c].label)).collect();
    let all: Vec<String> = first
        .iter()
        .map(|x| x.to_string())
        .chain(labels)
        .chain(last.iter().map(|x| x.to_string()))
        .collect();
    let _ = writeln!(s, "| {} |", all.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(all.len()));
}

fn grid(s: &mut String, m: &Matrix) {
    s.push_str("## Cases × kernels\n\n");
    header(s, &["case"], m, &[]);
    for case in m.cases() {
        let cells: Vec<String> = m
            .ran()
            .into_iter()
            .map(|c| {
                let mark = if m.changed(&case, c) { " Δ" } else { "" };
                format!("{}{mark}", symbol(m.state(&case, c)))
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", cell(&case), cells.join(" | "));
    }
    s.push_str("\n`ok`: all pass (or no rule); `FAIL`: some expectation fails; `unsup.`: some instance or step unsupported or refused; `rejected`: every program rejected; `error`: the runner failed; Δ: some outcome differs from the kernel before.\n\n");
}

fn kernels(s: &mut String, m: &Matrix) {
    s.push_str("## Kernels\n\n");
    s.push_str("| kernel | release | origin | BTF | instances | programs accepted / rejected | unsupported / refused / errors | expectations pass / fail / no rule | notes |\n|---|---|---|---|---|---|---|---|---|\n");
    for k in &m.kernels {
        let id = &k.run.identity;
        let origin = match (&id.package, &id.package_version) {
            (Some(p), Some(v)) => format!("{p} {v}"),
            (Some(p), None) => p.clone(),
            _ => id.origin.clone(),
        };
        let btf = id.btf.map_or("", |b| if b { "yes" } else { "no" });
        let u = &k.run.summary;
        let mut notes: Vec<String> = Vec::new();
        if let Some(why) = &k.run.unusable {
            notes.push(format!("unusable: {why}"));
        }
        if !k.run.problems.is_empty() {
            notes.push(plural(k.run.problems.len(), "problem", "problems"));
        }
        if !k.run.did_not_report.is_empty() {
            notes.push(format!("{} did not report", k.run.did_not_report.len()));
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {btf} | {} | {} / {} | {} / {} / {} | {} / {} / {} | {} |",
            cell(&k.label),
            cell(id.release.as_deref().unwrap_or("")),
            cell(&origin),
            u.instances,
            u.accepted,
            u.rejected,
            u.unsupported,
            u.refused,
            u.errors,
            u.expect_pass,
            u.expect_fail,
            u.expect_none,
            cell(&notes.join("; "))
        );
    }
    s.push('\n');
}

fn failures(s: &mut String, m: &Matrix) {
    s.push_str("## Expectation failures\n\n");
    let runs: Vec<(usize, usize, Failures)> = words::runs(m, |c| failing(m, c))
        .into_iter()
        .filter(|(_, _, f)| !f.is_empty())
        .collect();
    if runs.is_empty() {
        s.push_str("None.\n\n");
    }
    for (a, b, fails) in runs {
        let each = if a == b { "" } else { ", the same on each" };
        let _ = writeln!(
            s,
            "### {} — {}{each}\n",
            m.span(a, b),
            plural(fails.len(), "instance", "instances")
        );
        for (text, rows) in by_case(m, fails) {
            let _ = writeln!(s, "- {}: {}", ids(m, &rows), text);
        }
        s.push('\n');
    }
}

fn may(c: Option<&helpers::Cell>) -> &'static str {
    match c {
        None => "",
        Some(c) if c.conflict => "yes*",
        Some(c) => match c.may {
            May::Call => "yes",
            May::Not => "no",
            May::Absent => "gone",
            May::Unknown => "?",
        },
    }
}

fn program_types(s: &mut String, m: &Matrix) {
    if m.helpers.is_empty() {
        return;
    }
    s.push_str("## Program types per helper\n\n");
    for t in &m.helpers {
        helper_table(s, m, t);
    }
}

fn helper_table(s: &mut String, m: &Matrix, t: &HelperTable) {
    let _ = writeln!(s, "### {}\n", code(&t.helper));
    match t.doc {
        Some(d) => {
            let _ = writeln!(
                s,
                "The documentation ({}) lists {}.\n",
                d.page,
                list(
                    &d.program_types
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                )
            );
        }
        None => s.push_str("No documentation list to compare with.\n\n"),
    }
    header(
        s,
        &["type", "UAPI", "documented"],
        m,
        &["may call from", "may not up to"],
    );
    for r in &t.rows {
        let cells: Vec<&str> = m.ran().iter().map(|&c| may(r.cells[c].as_ref())).collect();
        let doc = r.documented.map_or("", |d| if d { "yes" } else { "no" });
        let at = |c: Option<usize>| c.map_or(String::new(), |c| m.kernels[c].label.clone());
        let _ = writeln!(
            s,
            "| {} | {} | {doc} | {} | {} | {} |",
            cell(&r.prog_type),
            cell(&r.uapi),
            cells.join(" | "),
            at(r.first_call()),
            at(r.last_not())
        );
    }
    if t.rows
        .iter()
        .flat_map(|r| r.cells.iter())
        .flatten()
        .any(|c| c.conflict)
    {
        s.push_str("\n`yes*`: some program of the type loaded, another was refused the helper.\n");
    }
    s.push('\n');
}

#[cfg(test)]
#[path = "markdown_tests.rs"]
mod tests;
