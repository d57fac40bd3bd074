//! `ebpf-docs.yaml`: the measured program types of each helper in the shape of isovalent/ebpf-docs'
//! `data/helpers-functions.yaml` (`programs:` → `BPF_PROG_TYPE_*:` → `- name: helper` with
//! `since: {version}`), so that a person can turn it into a patch there. `since.version` is the
//! first kernel series measured where a program of the type calling the helper loaded; a
//! comment says the last series where it did not, how many kernels answered, and whether the
//! documentation lists the type today. The kernel commit (`since.commit` upstream) is not
//! something a run measures: the comment says between which releases to look for it.
//!
//! Owns: the YAML text, written by hand in a fixed order. Must not: compute what the matrix
//! computes, or show timings.

use std::fmt::Write;

use super::matrix::{Matrix, May, TypeRow};
use crate::results::Results;

/// The measured helper data of a results file.
pub fn ebpf_docs(r: &Results) -> String {
    let m = Matrix::new(r);
    let mut s = String::new();
    let ran: Vec<String> = m
        .ran()
        .iter()
        .map(|&c| m.kernels[c].label.clone())
        .collect();
    s.push_str(
        "# Program types that may call each helper, as measured by bpfcase, in the shape of\n",
    );
    s.push_str("# data/helpers-functions.yaml of isovalent/ebpf-docs. `since.version` is the first kernel\n");
    s.push_str("# series measured where a program of the type calling the helper loaded; the comment says\n");
    s.push_str("# the last series where it did not, how many kernels answered, and whether the\n");
    s.push_str("# documentation lists the type. Add `since.commit` (not measured) before sending upstream.\n");
    let _ = writeln!(
        s,
        "# Kernels measured ({}): {}",
        ran.len(),
        comment(&ran.join(", "))
    );
    // UAPI type → [(helper, types, merged row, documented)]
    let mut programs: Vec<(String, Vec<Entry>)> = Vec::new();
    for t in &m.helpers {
        for (uapi, types, row) in t.by_uapi() {
            let e = Entry {
                helper: t.helper.clone(),
                types,
                row,
            };
            match programs.iter_mut().find(|(u, _)| *u == uapi) {
                Some((_, v)) => v.push(e),
                None => programs.push((uapi, vec![e])),
            }
        }
    }
    programs.sort_by(|a, b| a.0.cmp(&b.0));
    s.push_str(if programs.is_empty() {
        "programs: {}\n"
    } else {
        "programs:\n"
    });
    for (uapi, mut entries) in programs {
        entries.sort_by(|a, b| a.helper.cmp(&b.helper));
        let key = scalar(&format!("BPF_PROG_TYPE_{uapi}"));
        if entries.iter().any(|e| e.row.first_call().is_some()) {
            let _ = writeln!(s, "  {key}:");
        } else {
            // No helper measured here loaded: an empty list, the comments below say why.
            let _ = writeln!(s, "  {key}: []");
        }
        for e in &entries {
            entry(&mut s, &m, e);
        }
    }
    s
}

struct Entry {
    helper: String,
    types: Vec<String>,
    row: TypeRow,
}

/// One helper of one program type: a list item when some kernel loaded it, else only a
/// comment.
fn entry(s: &mut String, m: &Matrix, e: &Entry) {
    let series = |c: usize| {
        let k = &m.kernels[c];
        k.series.clone().unwrap_or_else(|| k.label.clone())
    };
    let label = |c: usize| m.kernels[c].label.clone();
    let measured = e.row.measured();
    let of = m.ran().len();
    let types = e.types.join(", ");
    let doc = match e.row.documented {
        Some(true) => "; the documentation lists this type",
        Some(false) => "; the documentation does not list this type",
        None => "",
    };
    let first = e.row.first_call();
    let last_not = e.row.last_not();
    let not_word = |c: usize| match e.row.cells[c].as_ref().map(|c| c.may) {
        Some(May::Absent) => "no such helper",
        _ => "refused",
    };
    let Some(first) = first else {
        let what = match last_not {
            Some(last) => format!(
                "{} up to {}, loaded on no kernel",
                not_word(last),
                label(last)
            ),
            None => "no kernel answered".to_string(),
        };
        let _ = writeln!(
            s,
            "  # {}: {what} ({types}); {measured} of {of} kernels answered{doc}",
            comment(&e.helper)
        );
        return;
    };
    let history = match last_not {
        Some(l) if l < first => format!(
            "{} up to {}, loads from {} on, so since a release after {} up to {}",
            not_word(l),
            label(l),
            label(first),
            series(l),
            series(first)
        ),
        Some(l) => format!(
            "loads from {}, but {} again on {}: not one version",
            label(first),
            not_word(l),
            label(l)
        ),
        None => {
            let silent: Vec<String> = (0..first)
                .filter(|&c| {
                    e.row.cells[c]
                        .as_ref()
                        .is_some_and(|c| c.may == May::Unknown)
                })
                .map(label)
                .collect();
            let before = if silent.is_empty() {
                String::new()
            } else {
                format!(" ({} gave no answer)", silent.join(", "))
            };
            format!(
                "loads from {} on; no kernel measured refuses it{before}, so {} is an upper bound",
                label(first),
                series(first)
            )
        }
    };
    let _ = writeln!(s, "  - name: {}", scalar(&e.helper));
    let _ = writeln!(
        s,
        "    # {} ({types}); {measured} of {of} kernels answered{doc}",
        comment(&history)
    );
    let _ = writeln!(s, "    since:\n      version: {}", quoted(&series(first)));
}

/// A comment's text on one line.
fn comment(t: &str) -> String {
    t.replace(['\n', '\r'], " ")
}

/// A YAML scalar: plain when it cannot be read as anything but this string, else quoted.
pub fn scalar(t: &str) -> String {
    let plain = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&t.to_ascii_lowercase().as_str());
    if plain {
        t.to_string()
    } else {
        quoted(t)
    }
}

/// A double-quoted YAML string (`"6.10"` stays a string, not the number 6.1).
pub fn quoted(t: &str) -> String {
    let mut out = String::from("\"");
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[path = "ebpf_docs_tests.rs"]
mod tests;
