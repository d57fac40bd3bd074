//! `conformance.md`: a results file as Markdown a person reads in a minute, findings first
//! (documentation discrepancies, failing expectations, what changed between kernels), then the
//! kernels, a case × kernel grid, the program types per helper, and the detail.
//!
//! Owns: the Markdown text. Must not: compute what the matrix computes, or show timings (the
//! same observations must give the same bytes).

use std::fmt::Write;

use super::findings::{self, Style};
use super::matrix::{helpers, HelperTable, Matrix, May, State};
use super::words::{self, list, plural};

#[path = "markdown_changes.rs"]
mod changes;

use crate::results::Results;

/// Markdown markup: names as code spans, other text escaped.
const MD: Style = Style { code, text };

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
    s.push_str("\n## Findings\n\n");
    for f in findings::findings(&m, &MD) {
        let _ = writeln!(s, "- **{}:** {}", f.label, f.text);
    }
    s.push('\n');
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

/// Text from the results, escaped so that Markdown shows it as it is: backslashes, `*`, code
/// and link brackets, HTML, table bars, and `_` that could start or end emphasis.
pub(super) fn text(t: &str) -> String {
    let chars: Vec<char> = t.chars().collect();
    let mut out = String::with_capacity(t.len());
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let escape = match c {
            '\\' | '*' | '`' | '[' | ']' | '<' | '>' | '|' => true,
            '_' => !(word(i.checked_sub(1)) && word(Some(i + 1))),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
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
        let (origin, btf) = words::identity_cells(id);
        let cells = words::summary_cells(&k.run.summary);
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
            "| {} | {} | {} | {btf} | {} | {} | {} | {} | {} |",
            cell(&k.label),
            cell(id.release.as_deref().unwrap_or("")),
            cell(&origin),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cell(&notes.join("; "))
        );
    }
    s.push('\n');
}

fn failures(s: &mut String, m: &Matrix) {
    s.push_str("## Expectation failures\n\n");
    let runs = findings::failure_runs(m);
    if runs.is_empty() {
        s.push_str("None.\n\n");
    }
    for (a, b, fails) in runs {
        let each = if a == b { "" } else { ", the same on each" };
        let _ = writeln!(
            s,
            "### {} — {}{each}\n",
            text(&m.span(a, b)),
            plural(fails.len(), "instance", "instances")
        );
        for (t, rows) in findings::by_case(m, fails) {
            let _ = writeln!(s, "- {}: {}", findings::ids(m, &rows, &MD), text(&t));
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
