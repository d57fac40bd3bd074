//! Findings of a [`Matrix`] in words, shared by the Markdown and HTML reports: documentation
//! discrepancies as sentences, kernels with the same expectation failures, instance ids as
//! compact patterns. Each takes a `quote` function that marks up names (code spans, escaped
//! HTML), so the wording is written once.
//!
//! Owns: the wording. Must not: produce markup of its own.

use super::matrix::{group, helpers, ids, Discrepancy, Matrix};

/// `a`, `a and b`, `a, b and c`.
pub fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A kernel's counts as the kernel tables show them: instances, programs accepted / rejected,
/// unsupported / refused / errors, expectations pass / fail / no rule.
pub fn summary_cells(u: &crate::report::Summary) -> [String; 4] {
    [
        u.instances.to_string(),
        format!("{} / {}", u.accepted, u.rejected),
        format!("{} / {} / {}", u.unsupported, u.refused, u.errors),
        format!("{} / {} / {}", u.expect_pass, u.expect_fail, u.expect_none),
    ]
}

/// A kernel's origin and BTF cells: the Debian package and version when known, else its
/// origin in words; `yes`/`no`, or nothing when the kernel never said.
pub fn identity_cells(id: &crate::results::KernelIdentity) -> (String, &'static str) {
    let origin = match (&id.package, &id.package_version) {
        (Some(p), Some(v)) => format!("{p} {v}"),
        (Some(p), None) => p.clone(),
        _ => id.origin.clone(),
    };
    (origin, id.btf.map_or("", |b| if b { "yes" } else { "no" }))
}

pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The documentation discrepancies as sentences, helpers with the same finding together.
pub fn discrepancies(m: &Matrix, quote: &dyn Fn(&str) -> String) -> Vec<String> {
    // (kind, from, until) → (helper, UAPI type)
    let found = helpers::discrepancies(&m.helpers);
    let keyed = found.iter().map(|d| match d {
        Discrepancy::Undocumented {
            helper,
            uapi,
            from,
            not_until,
            ..
        } => (
            (true, Some(*from), *not_until),
            (helper.clone(), uapi.clone()),
        ),
        Discrepancy::Refused {
            helper,
            uapi,
            until,
            called_from,
            ..
        } => (
            (false, *called_from, Some(*until)),
            (helper.clone(), uapi.clone()),
        ),
    });
    let mut out = Vec::new();
    for (key, pairs) in group(keyed) {
        let per_helper = group(pairs);
        let by_types = group(per_helper.into_iter().map(|(h, types)| (types, h)));
        for (types, helpers) in by_types {
            out.push(sentence(m, key, &helpers, &types, quote));
        }
    }
    out
}

fn sentence(
    m: &Matrix,
    (undocumented, call, not): (bool, Option<usize>, Option<usize>),
    helpers: &[String],
    types: &[String],
    quote: &dyn Fn(&str) -> String,
) -> String {
    let names = list(&helpers.iter().map(|h| quote(h)).collect::<Vec<_>>());
    let its = if helpers.len() == 1 { "its" } else { "their" };
    let them = list(types);
    let these = if types.len() == 1 {
        them.clone()
    } else {
        "these program types".to_string()
    };
    let label = |c: usize| m.kernels[c].label.clone();
    if undocumented {
        let from = call.map_or(String::new(), |c| format!(" from {} on", label(c)));
        let before = not.map_or(String::new(), |c| format!(" (not up to {})", label(c)));
        format!(
            "{names} may be called from {them} programs{from}{before}, but {its} documentation does not list {these}."
        )
    } else {
        let once = call.map_or(String::new(), |c| {
            format!(" (they could from {})", label(c))
        });
        let on = not.map_or(String::new(), |c| format!(" on {}", label(c)));
        let it = if helpers.len() == 1 { "it" } else { "them" };
        format!("The documentation of {names} lists {them}, but {them} programs may not call {it}{on}{once}.")
    }
}

/// Kernels (that ran) in runs of adjacent kernels with the same value: (first, last, value).
pub fn runs<T: PartialEq + Clone>(
    m: &Matrix,
    value: impl Fn(usize) -> T,
) -> Vec<(usize, usize, T)> {
    let mut out: Vec<(usize, usize, T)> = Vec::new();
    for c in m.ran() {
        let v = value(c);
        match out.last_mut() {
            Some((_, last, w)) if *w == v => *last = c,
            _ => out.push((c, c, v)),
        }
    }
    out
}

/// The rows' instance ids as compact patterns of their case (rows of one case).
pub fn patterns(m: &Matrix, rows: &[usize]) -> Vec<String> {
    let Some(&first) = rows.first() else {
        return Vec::new();
    };
    let case = &m.rows[first].case;
    let all: Vec<&str> = m
        .case_rows(case)
        .iter()
        .map(|&i| m.rows[i].id.as_str())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|&i| m.rows[i].id.as_str()).collect();
    ids::compact(&ids, &all)
}

/// The distinct reasons the rows measured nothing on column `c`, with how many rows gave each,
/// most frequent first.
pub fn reasons(m: &Matrix, rows: &[usize], c: usize) -> Vec<(String, usize)> {
    let all = rows.iter().flat_map(|&i| {
        m.rows[i].cells[c]
            .map(|r| super::matrix::reasons(&r.observation))
            .unwrap_or_default()
            .into_iter()
            .map(move |why| (why, i))
    });
    let mut counted: Vec<(String, usize)> = group(all)
        .into_iter()
        .map(|(why, rows)| (why, rows.len()))
        .collect();
    counted.sort_by_key(|c| std::cmp::Reverse(c.1));
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::matrix::fixture::sample;

    #[test]
    fn discrepancies_read_as_sentences() {
        let r = sample();
        let m = Matrix::new(&r);
        let q = |s: &str| format!("<{s}>");
        assert_eq!(
            discrepancies(&m, &q),
            ["<bpf_task_storage_get> may be called from XDP programs from 6.18 on (not up to 6.12), but its documentation does not list XDP."]
        );
        let (undoc, refused) = ((true, Some(3), Some(2)), (false, None, Some(5)));
        let hs = ["a".to_string(), "b".to_string()];
        let ts = ["XDP".to_string(), "SCHED_CLS".to_string()];
        assert_eq!(
            sentence(&m, undoc, &hs, &ts, &q),
            "<a> and <b> may be called from XDP and SCHED_CLS programs from 6.18 on (not up to 6.12), but their documentation does not list these program types."
        );
        assert_eq!(
            sentence(&m, refused, &hs[..1], &ts[..1], &q),
            "The documentation of <a> lists XDP, but XDP programs may not call it on 7.3."
        );
    }

    #[test]
    fn runs_and_reasons() {
        let r = sample();
        let m = Matrix::new(&r);
        let fails = runs(&m, |c| m.kernels[c].run.summary.expect_fail);
        assert_eq!(fails, [(0, 0, 0), (1, 1, 1), (2, 5, 0)]);
        let rows = m.case_rows("program_types");
        assert_eq!(
            reasons(&m, &rows, 0),
            [
                ("unsupported: map type task_storage".to_string(), 3),
                (
                    "unsupported: helper bpf_get_current_task_btf (#158) is unknown to this kernel"
                        .to_string(),
                    2
                ),
                ("unsupported: program type syscall".to_string(), 1),
            ]
        );
        assert_eq!(patterns(&m, &rows[1..]), ["prog={xdp,fentry}"]);
    }
}
