//! `conformance.html`: the conformance report as one self-contained page (inline CSS and a
//! little inline JS, nothing fetched): the findings and the changes between adjacent kernels
//! first, then a colour grid of cases × kernels whose cells open the case's instances on that
//! kernel (observation, verdict, program listings, verifier log), the program types per helper,
//! the kernels, and the detail.
//!
//! Owns: the HTML page and its escaping. Must not: compute what the matrix computes, or show
//! timings (the same observations must give the same bytes).

use std::collections::HashMap;
use std::fmt::Write;

use super::findings::{self, Style};
use super::matrix::{helpers, instance_state, HelperTable, Matrix, May, State};
use super::words::{self, list, plural};
use crate::results::{Results, VerdictKind};

#[path = "html_detail.rs"]
mod detail;

const CSS: &str = include_str!("html.css");
const JS: &str = include_str!("html.js");

/// HTML markup: names as `<code>`, other text escaped.
const HTML: Style = Style {
    code: |t| format!("<code>{}</code>", esc(t)),
    text: esc,
};

/// Text as HTML text or attribute value: `& < > " '` as entities.
pub fn esc(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside `<script>`: no `<`, `>` or `&` outside escapes, so no `</script>`
/// or `<!--` can end the block.
pub fn script_json(v: &serde_json::Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The conformance report of a results file as one HTML page.
pub fn html(r: &Results) -> String {
    let m = Matrix::new(r);
    let mut s = String::new();
    let title = format!(
        "Conformance: {} cases, {} instances, {} kernels",
        m.cases().len(),
        m.rows.len(),
        m.kernels.len()
    );
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n<details class=\"how\"><summary>How to read this page</summary><p>{HOW}</p></details>\n",
        esc(&title),
        esc(&title)
    );
    s.push_str("<h2>Findings</h2>\n<ul class=\"findings\">\n");
    for f in findings::findings(&m, &HTML) {
        let cls = if f.label == "Documentation" {
            " class=\"doc\""
        } else {
            ""
        };
        let _ = writeln!(s, "<li{cls}><b>{}:</b> {}</li>", esc(&f.label), f.text);
    }
    s.push_str("</ul>\n");
    changes(&mut s, &m);
    grid(&mut s, &m);
    program_types(&mut s, &m);
    detail::kernels(&mut s, &m);
    detail::failures(&mut s, &m);
    detail::differences(&mut s, &m);
    let _ = write!(
        s,
        "<script type=\"application/json\" id=\"data\">{}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        script_json(&data(&m))
    );
    s
}

const HOW: &str = "Each cell is one case on one kernel, coloured by its worst instance; \
Δ marks a cell where some outcome differs from the kernel before. Click a cell for the \
case's instances there: the observation (snapshot line), the verdict and failing rules, the \
programs as compiled and the verifier log of rejected programs. Kernels go by series, the \
running kernel (host-X.Y) after the guest of its series. An instance measured nothing where \
all it did was unsupported or refused. In the program-type tables a cell says whether a \
program of that type calling the helper loaded (may call), was refused the helper by the \
verifier (may not), met a kernel without the helper (gone), or gave no answer (?).";

fn changes(s: &mut String, m: &Matrix) {
    s.push_str("<h2>Changed between adjacent kernels</h2>\n<div class=\"changes\">\n");
    let quiet: Vec<String> = m
        .changes
        .iter()
        .filter(|c| c.is_empty())
        .map(|c| esc(&findings::pair(m, c)))
        .collect();
    for c in m.changes.iter().filter(|c| !c.is_empty()) {
        let _ = writeln!(
            s,
            "<details><summary><b>{}</b>: {}</summary>\n<ul>",
            esc(&findings::pair(m, c)),
            esc(&findings::counts(c))
        );
        for line in findings::change_lines(m, c, &HTML) {
            let _ = writeln!(s, "<li>{line}</li>");
        }
        s.push_str("</ul></details>\n");
    }
    if !quiet.is_empty() {
        let _ = writeln!(s, "<p class=\"quiet\">No change: {}.</p>", list(&quiet));
    }
    s.push_str("</div>\n");
}

fn class(st: State) -> &'static str {
    match st {
        State::Error => "s-error",
        State::Fail => "s-fail",
        State::Unsupported => "s-unsup",
        State::RejectedOnly => "s-rej",
        State::Pass => "s-pass",
        State::Empty => "s-empty",
    }
}

fn grid(s: &mut String, m: &Matrix) {
    s.push_str("<h2>Cases × kernels</h2>\n<div class=\"legend\">");
    for st in [
        State::Pass,
        State::Fail,
        State::Unsupported,
        State::RejectedOnly,
        State::Error,
    ] {
        let _ = write!(
            s,
            "<span class=\"{}\">{}</span>",
            class(st),
            esc(st.words())
        );
    }
    s.push_str("<span>Δ differs from the kernel before</span></div>\n<table class=\"grid\">\n<tr><th></th>");
    let ran = m.ran();
    for &c in &ran {
        let _ = write!(s, "<th>{}</th>", esc(&m.kernels[c].label));
    }
    s.push_str("</tr>\n");
    for (ci, case) in m.cases().iter().enumerate() {
        let about = m
            .results
            .cases
            .iter()
            .find(|c| c.name == *case)
            .map_or("", |c| c.about.as_str());
        let _ = write!(
            s,
            "<tr><th class=\"case\" title=\"{}\">{}</th>",
            esc(about),
            esc(case)
        );
        let rows = m.case_rows(case);
        for (k, &c) in ran.iter().enumerate() {
            let st = m.state(case, c);
            let n = rows
                .iter()
                .filter(|&&i| m.rows[i].cells[c].is_some_and(|r| instance_state(r) == st))
                .count();
            let text = match st {
                State::Pass => "✓".to_string(),
                State::Fail => format!("✗ {n}"),
                State::Unsupported => format!("? {n}"),
                State::RejectedOnly => "R".to_string(),
                State::Error => format!("! {n}"),
                State::Empty => String::new(),
            };
            let chg = if m.changed(case, c) { " chg" } else { "" };
            let tip = format!(
                "{case} on {}: {} ({n} of {})",
                m.kernels[c].label,
                st.words(),
                rows.len()
            );
            let _ = write!(
                s,
                "<td><button type=\"button\" class=\"{}{chg}\" data-c=\"{ci}\" data-k=\"{k}\" title=\"{}\">{}</button></td>",
                class(st),
                esc(&tip),
                esc(&text)
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n<div id=\"panel\" hidden></div>\n");
}

fn program_types(s: &mut String, m: &Matrix) {
    if m.helpers.is_empty() {
        return;
    }
    s.push_str("<h2>Program types per helper</h2>\n");
    for t in &m.helpers {
        table(s, m, t);
    }
}

fn table(s: &mut String, m: &Matrix, t: &HelperTable) {
    let _ = writeln!(s, "<h3><code>{}</code></h3>", esc(&t.helper));
    match t.doc {
        Some(d) => {
            let types: Vec<String> = d.program_types.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(
                s,
                "<p>The <a href=\"{}\">documentation</a> lists {}.</p>",
                esc(d.page),
                esc(&list(&types))
            );
        }
        None => s.push_str("<p class=\"quiet\">No documentation list to compare with.</p>\n"),
    }
    s.push_str("<table class=\"types\">\n<tr><th>type</th><th>UAPI</th><th>documented</th>");
    let ran = m.ran();
    for &c in &ran {
        let _ = write!(s, "<th>{}</th>", esc(&m.kernels[c].label));
    }
    s.push_str("<th>may call from</th><th>may not up to</th></tr>\n");
    for r in &t.rows {
        let off = r.documented == Some(false) && r.first_call().is_some();
        let on = r.documented == Some(true) && r.latest() == Some(May::Not);
        let tr = if off || on {
            "<tr class=\"discrepancy\">"
        } else {
            "<tr>"
        };
        let doc = r.documented.map_or("", |d| if d { "yes" } else { "no" });
        let _ = write!(
            s,
            "{tr}<td>{}</td><td>{}</td><td>{doc}</td>",
            esc(&r.prog_type),
            esc(&r.uapi)
        );
        for &c in &ran {
            let _ = write!(s, "{}", cell(r.cells[c].as_ref()));
        }
        let at = |c: Option<usize>| c.map_or(String::new(), |c| esc(&m.kernels[c].label));
        let _ = writeln!(
            s,
            "<td>{}</td><td>{}</td></tr>",
            at(r.first_call()),
            at(r.last_not())
        );
    }
    s.push_str("</table>\n");
}

fn cell(c: Option<&helpers::Cell>) -> String {
    let Some(c) = c else {
        return "<td class=\"m\"></td>".into();
    };
    let (cls, word) = match c.may {
        _ if c.conflict => ("m-conflict", "may call*"),
        May::Call => ("m-call", "may call"),
        May::Not => ("m-not", "may not"),
        May::Absent => ("m-gone", "gone"),
        May::Unknown => ("m-unk", "?"),
    };
    format!(
        "<td class=\"m {cls}\" title=\"{}\">{word}</td>",
        esc(&c.evidence)
    )
}

/// Strings kept once, referred to by index.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Strings {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }
}

/// Multi-line texts (listings, verifier logs) kept once each, as lists of lines kept once:
/// logs of one program on many kernels share most of their lines.
#[derive(Default)]
struct Docs {
    lines: Strings,
    docs: Vec<Vec<usize>>,
    index: HashMap<String, usize>,
}

impl Docs {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let doc = s.split('\n').map(|l| self.lines.id(l)).collect();
        self.docs.push(doc);
        self.index.insert(s.to_string(), self.docs.len() - 1);
        self.docs.len() - 1
    }
}

/// What the cells open: per case its rows; per row its programs `[step, type, listing]` and,
/// per kernel that ran, its observation `[outcome, verdict, failures or -1, [[program, log]]]`.
/// Outcomes and failures index `s`; listings and logs index `d`, lists of lines of `l`.
fn data(m: &Matrix) -> serde_json::Value {
    use serde_json::json;
    let mut st = Strings::default();
    let mut docs = Docs::default();
    let ran = m.ran();
    let cases: Vec<serde_json::Value> = m
        .cases()
        .iter()
        .map(|c| {
            let about = m
                .results
                .cases
                .iter()
                .find(|x| x.name == *c)
                .map_or("", |x| x.about.as_str());
            json!({"n": c, "a": about, "r": m.case_rows(c)})
        })
        .collect();
    let rows: Vec<serde_json::Value> = m
        .rows
        .iter()
        .map(|row| {
            let programs: Vec<serde_json::Value> = row
                .info
                .map(|i| i.programs.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|p| json!([p.step, p.program_type, docs.id(&p.listing)]))
                .collect();
            let o: Vec<serde_json::Value> = ran
                .iter()
                .map(|&c| match (row.cells[c], &row.texts[c]) {
                    (Some(r), Some(text)) => {
                        let verdict = match r.verdict {
                            VerdictKind::Pass => 0,
                            VerdictKind::Fail => 1,
                            VerdictKind::NoRule => 2,
                            VerdictKind::NotRun => 3,
                        };
                        let fails = if r.failures.is_empty() {
                            -1
                        } else {
                            st.id(&r.failures.join("\n")) as i64
                        };
                        let logs: Vec<serde_json::Value> = r
                            .observation
                            .logs
                            .iter()
                            .map(|(p, l)| json!([p, docs.id(l)]))
                            .collect();
                        json!([st.id(text), verdict, fails, logs])
                    }
                    _ => serde_json::Value::Null,
                })
                .collect();
            json!({"id": super::matrix::short_id(&row.id), "p": programs, "o": o})
        })
        .collect();
    let kernels: Vec<&str> = ran.iter().map(|&c| m.kernels[c].label.as_str()).collect();
    json!({"k": kernels, "cases": cases, "rows": rows, "s": st.list, "d": docs.docs, "l": docs.lines.list})
}

/// `n instances`, for the detail sections.
fn count(n: usize) -> String {
    plural(n, "instance", "instances")
}

/// The rows' ids of one case as escaped patterns.
fn patterns(m: &Matrix, rows: &[usize]) -> String {
    words::patterns(m, rows)
        .iter()
        .map(|p| (HTML.code)(p))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
