//! The findings of a [`Matrix`] and the lines of its changes between adjacent kernels, written
//! once for every report: a [`Style`] says how a report marks up code and escapes text.
//!
//! Owns: which findings there are and their order. Must not: produce markup of its own.

use super::matrix::{group, reasons, Change, Class, Matrix};
use super::words::{self, list, plural};

/// How a report marks up names (`code`) and escapes any other text from the results (`text`).
pub struct Style {
    pub code: fn(&str) -> String,
    pub text: fn(&str) -> String,
}

/// One finding: a short label and a sentence in the report's markup.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub label: String,
    pub text: String,
}

/// Rows grouped by case, then by a key: (key, rows of one case), in row order.
pub fn by_case<K: PartialEq>(
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

/// Rows of one case as `case pattern, pattern`.
pub fn ids(m: &Matrix, rows: &[usize], st: &Style) -> String {
    let case = rows.first().map_or("", |&i| m.rows[i].case.as_str());
    let p: Vec<String> = words::patterns(m, rows)
        .iter()
        .map(|p| (st.code)(p))
        .collect();
    format!("{} {}", (st.text)(case), p.join(", "))
}

/// (row, its failures joined).
pub type Failures = Vec<(usize, String)>;

/// Runs of adjacent kernels failing the same instances the same way, those with failures only.
pub fn failure_runs(m: &Matrix) -> Vec<(usize, usize, Failures)> {
    super::words::runs(m, |c| failing(m, c))
        .into_iter()
        .filter(|(_, _, f)| !f.is_empty())
        .collect()
}

/// The failures on column `c`, in row order.
pub fn failing(m: &Matrix, c: usize) -> Failures {
    (0..m.rows.len())
        .filter_map(|i| {
            let r = m.rows[i].cells[c]?;
            (!r.failures.is_empty()).then(|| (i, r.failures.join("; ")))
        })
        .collect()
}

/// The findings, most telling first: documentation discrepancies, failing expectations,
/// conformance that depends on the kernel, changes between kernels, kernels that measured
/// nothing for some instances, unusable kernels and problems.
pub fn findings(m: &Matrix, st: &Style) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |label: String, text: String| out.push(Finding { label, text });
    let disc = words::discrepancies(m, &|h| (st.code)(h));
    let documented: Vec<String> = m
        .helpers
        .iter()
        .filter(|t| t.doc.is_some())
        .map(|t| (st.code)(&t.helper))
        .collect();
    if disc.is_empty() && !documented.is_empty() {
        add(
            "Documentation".into(),
            format!(
                "the program types measured agree with the documentation of {}.",
                list(&documented)
            ),
        );
    }
    for d in disc {
        add("Documentation".into(), d);
    }
    let fails: Vec<String> = words::runs(m, |c| failing(m, c))
        .into_iter()
        .filter(|(_, _, f)| !f.is_empty())
        .map(|(a, b, f)| {
            let each = if a == b { "" } else { "each of " };
            format!("{} on {each}{}", f.len(), (st.text)(&m.span(a, b)))
        })
        .collect();
    add(
        "Expectations".into(),
        if fails.is_empty() {
            "every rule that could be judged holds.".into()
        } else {
            format!("failing instances: {}.", fails.join("; "))
        },
    );
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
        let cases: Vec<String> = rows.iter().map(|r| ids(m, r, st)).collect();
        add(
            format!("Across kernels, {}", (st.text)(&class)),
            format!("{}.", cases.join("; ")),
        );
    }
    let differ = m.rows.iter().filter(|r| m.differs(r)).count();
    let steps: Vec<String> = m
        .changes
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| format!("{}: {}", (st.text)(&pair(m, c)), counts(c)))
        .collect();
    add(
        "Between kernels".into(),
        format!(
            "{} of {} measured different things on different kernels; {}.",
            plural(differ, "instance", "instances"),
            m.rows.len(),
            if steps.is_empty() {
                "no change between adjacent kernels".to_string()
            } else {
                format!("between adjacent kernels: {}", steps.join("; "))
            }
        ),
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
            .map(|(w, n)| format!("{} ({n})", (st.code)(&w)))
            .collect();
        add(
            format!("Measured nothing on {}", (st.text)(&m.kernels[c].label)),
            format!(
                "{} of {}: {}.",
                plural(rows.len(), "instance", "instances"),
                m.rows.len(),
                why.join(", ")
            ),
        );
    }
    for k in &m.kernels {
        if let Some(u) = &k.run.unusable {
            add("Unusable".into(), (st.text)(&format!("{}: {u}", k.label)));
        }
        if !k.run.problems.is_empty() {
            add(
                format!("Problems on {}", (st.text)(&k.label)),
                (st.text)(&k.run.problems.join("; ")),
            );
        }
    }
    out
}

/// `6.1 → 6.12`.
pub fn pair(m: &Matrix, c: &Change) -> String {
    format!("{} → {}", m.kernels[c.from].label, m.kernels[c.to].label)
}

/// `3 changed, 5 newly measured`.
pub fn counts(c: &Change) -> String {
    let mut parts = Vec::new();
    let mut part = |n: usize, what: &str| {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    };
    part(c.rows.len(), "changed");
    part(c.appeared.len(), "newly measured");
    part(c.vanished.len(), "no longer measured");
    part(c.neither.len(), "unmeasured for another reason");
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(", ")
    }
}

/// What changed between the two kernels of `c`, one line per group of instances: results that
/// changed (`case ids: name: old → new`), then instances measured on one kernel only.
pub fn change_lines(m: &Matrix, c: &Change, st: &Style) -> Vec<String> {
    let (a, b) = (&m.kernels[c.from].label, &m.kernels[c.to].label);
    let mut out: Vec<String> = by_case(m, c.rows.iter().map(|(i, d)| (*i, d.clone())))
        .into_iter()
        .map(|(d, rows)| format!("{}: {}", ids(m, &rows, st), (st.code)(&d)))
        .collect();
    let mut moved = |rows: &[usize], col: usize, what: String| {
        out.extend(moved_lines(m, rows, col, &(st.text)(&what), st))
    };
    moved(&c.appeared, c.from, format!("measured on {b}, not on {a}"));
    moved(&c.vanished, c.to, format!("measured on {a}, not on {b}"));
    moved(
        &c.neither,
        c.to,
        format!("measured nothing on either; on {b}"),
    );
    out
}

/// Rows that measured something on one of two kernels only, with why not on the other (column
/// `c`): by case when they are few, else counted by reason.
fn moved_lines(m: &Matrix, rows: &[usize], c: usize, what: &str, st: &Style) -> Vec<String> {
    if rows.is_empty() {
        return Vec::new();
    }
    let why = |i: usize| {
        m.rows[i].cells[c]
            .map(|r| reasons(&r.observation).join("; "))
            .unwrap_or_default()
    };
    if rows.len() <= 12 {
        return by_case(m, rows.iter().map(|&i| (i, why(i))))
            .into_iter()
            .map(|(w, rows)| format!("{}: {what} ({})", ids(m, &rows, st), (st.text)(&w)))
            .collect();
    }
    let counted: Vec<String> = words::reasons(m, rows, c)
        .into_iter()
        .map(|(w, n)| format!("{} ({n})", (st.code)(&w)))
        .collect();
    vec![format!(
        "{} {what}: {}",
        plural(rows.len(), "instance", "instances"),
        counted.join(", ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::matrix::fixture::sample;

    const PLAIN: Style = Style {
        code: |s| format!("[{s}]"),
        text: |s| s.to_string(),
    };

    #[test]
    fn findings_in_order() {
        let r = sample();
        let m = Matrix::new(&r);
        let labels: Vec<String> = findings(&m, &PLAIN).into_iter().map(|f| f.label).collect();
        assert_eq!(
            labels,
            [
                "Documentation",
                "Expectations",
                "Across kernels, holds only from 6.12 on",
                "Between kernels",
                "Measured nothing on 5.10",
                "Measured nothing on host-6.18",
                "Unusable"
            ]
        );
    }

    #[test]
    fn change_lines_name_ids_and_results() {
        let r = sample();
        let m = Matrix::new(&r);
        assert_eq!(counts(&m.changes[0]), "5 newly measured");
        assert_eq!(pair(&m, &m.changes[1]), "6.1 → 6.12");
        assert_eq!(
            change_lines(&m, &m.changes[1], &PLAIN),
            [
                "program_types [prog=xdp]: [load#2: rejected(EINVAL: unknown func bpf_task_storage_get#156) → rejected(EINVAL: program of this type cannot use helper bpf_task_storage_get#156)]",
                "get_flags [flags=0x2]: [get: ptr:0x0 → NULL]",
            ]
        );
        assert_eq!(
            change_lines(&m, &m.changes[3], &PLAIN),
            ["program_types [prog=fentry]: measured on 6.18, not on host-6.18 (refused: loading a fentry program (EPERM))"]
        );
    }
}
