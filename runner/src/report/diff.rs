//! What changed between two `results.json`: two runs (what changed on each kernel) or two
//! kernels (what 7.3 does differently from 6.1), as text for people and a flag for scripts.
//!
//! Each instance is compared by its snapshot line (`report::line`) and its verdict; each kernel
//! by what happened to it as a whole (unusable, problems, instances that never reported).
//! Kernels pair by label when both files have the same ones, else the only kernel of each file,
//! else as chosen ([`DiffSel`]). The text is a header per pair, a unified diff (from `similar`)
//! per case with one line of context, and a summary line. Identities (release, build) are
//! shown in the headers, never counted as a change.
//!
//! Owns: pairing kernels and the text of a diff. Must not: read files or judge observations.

use std::collections::BTreeMap;

use similar::TextDiff;

use super::status::verdict_name;
use crate::results::{KernelRun, Results};

/// Which kernels to compare; each by label (`6.1`) or spec (`debian:6.1`). One alone names the
/// kernel on both sides. Neither: pair automatically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffSel {
    pub a_kernel: Option<String>,
    pub b_kernel: Option<String>,
}

/// A diff as text, and whether anything changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    pub text: String,
    pub changed: bool,
}

/// Why two results cannot be compared as asked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("no kernel `{name}` in {side} (its kernels: {have})")]
    NoSuchKernel {
        side: &'static str,
        name: String,
        have: String,
    },
    #[error("`{name}` names {count} kernels in {side}; name one by its spec ({have})")]
    Ambiguous {
        side: &'static str,
        name: String,
        count: usize,
        have: String,
    },
    #[error(
        "A and B have no kernel label in common (A: {a}; B: {b}); choose the kernels to compare"
    )]
    NoCommonKernel { a: String, b: String },
}

/// Lines of context around each change.
const CONTEXT: usize = 1;

struct Pairing<'a> {
    pairs: Vec<(&'a KernelRun, &'a KernelRun)>,
    only_a: Vec<&'a KernelRun>,
    only_b: Vec<&'a KernelRun>,
}

fn labels(r: &Results) -> String {
    let l: Vec<&str> = r
        .kernels
        .iter()
        .map(|k| k.identity.label.as_str())
        .collect();
    if l.is_empty() {
        "none".into()
    } else {
        l.join(", ")
    }
}

fn pick<'a>(r: &'a Results, side: &'static str, name: &str) -> Result<&'a KernelRun, DiffError> {
    let by_spec: Vec<&KernelRun> = r
        .kernels
        .iter()
        .filter(|k| k.identity.spec == name)
        .collect();
    let by_label: Vec<&KernelRun> = r
        .kernels
        .iter()
        .filter(|k| k.identity.label == name)
        .collect();
    let many = match (by_spec.as_slice(), by_label.as_slice()) {
        ([k], _) | ([], [k]) => return Ok(k),
        ([], []) => {
            return Err(DiffError::NoSuchKernel {
                side,
                name: name.into(),
                have: labels(r),
            })
        }
        ([], many) => many,
        (many, _) => many,
    };
    Err(DiffError::Ambiguous {
        side,
        name: name.into(),
        count: many.len(),
        have: many
            .iter()
            .map(|k| k.identity.spec.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A kernel's key for pairing: its label, or label and spec when the label is not unique.
fn keys(r: &Results) -> Vec<String> {
    r.kernels
        .iter()
        .map(|k| {
            let l = &k.identity.label;
            if r.kernels.iter().filter(|o| &o.identity.label == l).count() > 1 {
                format!("{l} ({})", k.identity.spec)
            } else {
                l.clone()
            }
        })
        .collect()
}

fn pair<'a>(a: &'a Results, b: &'a Results, sel: &DiffSel) -> Result<Pairing<'a>, DiffError> {
    if let Some(an) = sel.a_kernel.as_ref().or(sel.b_kernel.as_ref()) {
        let bn = sel.b_kernel.as_ref().unwrap_or(an);
        let pairs = vec![(pick(a, "A", an)?, pick(b, "B", bn)?)];
        return Ok(Pairing {
            pairs,
            only_a: Vec::new(),
            only_b: Vec::new(),
        });
    }
    let (ka, kb) = (keys(a), keys(b));
    let mut sa = ka.clone();
    let mut sb = kb.clone();
    sa.sort();
    sb.sort();
    if sa != sb && a.kernels.len() == 1 && b.kernels.len() == 1 {
        return Ok(Pairing {
            pairs: vec![(&a.kernels[0], &b.kernels[0])],
            only_a: Vec::new(),
            only_b: Vec::new(),
        });
    }
    let find = |keys: &[String], key: &str| keys.iter().position(|k| k == key);
    let mut p = Pairing {
        pairs: Vec::new(),
        only_a: Vec::new(),
        only_b: Vec::new(),
    };
    for (i, k) in ka.iter().enumerate() {
        match find(&kb, k) {
            Some(j) => p.pairs.push((&a.kernels[i], &b.kernels[j])),
            None => p.only_a.push(&a.kernels[i]),
        }
    }
    for (j, k) in kb.iter().enumerate() {
        if find(&ka, k).is_none() {
            p.only_b.push(&b.kernels[j]);
        }
    }
    if p.pairs.is_empty() && !(a.kernels.is_empty() && b.kernels.is_empty()) {
        return Err(DiffError::NoCommonKernel {
            a: labels(a),
            b: labels(b),
        });
    }
    Ok(p)
}

fn describe(k: &KernelRun) -> String {
    let id = &k.identity;
    let how = match (&id.release, &id.package_version) {
        (Some(r), Some(v)) => format!("{r}, {v}"),
        (Some(r), None) => r.clone(),
        (None, _) => "did not boot".into(),
    };
    format!("{} ({}: {how})", id.label, id.spec)
}

/// What happened to a kernel as a whole, one line each.
fn kernel_lines(k: &KernelRun) -> String {
    let mut s = String::new();
    if let Some(u) = &k.unusable {
        s.push_str(&format!("unusable: {u}\n"));
    }
    for p in &k.problems {
        s.push_str(&format!("problem: {}\n", p.replace('\n', " ")));
    }
    for id in &k.did_not_report {
        s.push_str(&format!("did not report: {id}\n"));
    }
    s
}

/// (case, id, line + verdict) of every instance of a kernel, in plan order.
fn lines(k: &KernelRun) -> Vec<(&str, &str, String)> {
    k.instances
        .iter()
        .map(|r| {
            let line = super::line(&r.observation, None).replace('\n', " ");
            let v = verdict_name(r.verdict);
            (
                r.case.as_str(),
                r.observation.id.as_str(),
                format!("{line}  [{v}]\n"),
            )
        })
        .collect()
}

#[derive(Default)]
struct Counts {
    instances: usize,
    changed: usize,
    only_a: usize,
    only_b: usize,
    kernels_changed: usize,
}

fn unified(a: &str, b: &str, ha: &str, hb: &str) -> String {
    TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(ha, hb)
        .to_string()
}

/// The differences of one pair of kernels, added to `out`.
fn compare<'a>(ka: &'a KernelRun, kb: &'a KernelRun, n: &mut Counts, out: &mut String) {
    let (la, lb) = (&ka.identity.label, &kb.identity.label);
    out.push_str(&format!("=== A {} | B {}\n", describe(ka), describe(kb)));
    let mut any = false;
    let (sa, sb) = (kernel_lines(ka), kernel_lines(kb));
    if sa != sb {
        n.kernels_changed += 1;
        any = true;
        out.push_str(&unified(
            &sa,
            &sb,
            &format!("A {la}: kernel"),
            &format!("B {lb}: kernel"),
        ));
    }
    let (xa, xb) = (lines(ka), lines(kb));
    let by_id = |xs: &[(&'a str, &'a str, String)]| -> BTreeMap<&'a str, String> {
        xs.iter().map(|(_, i, l)| (*i, l.clone())).collect()
    };
    let (ia, ib) = (by_id(&xa), by_id(&xb));
    for (id, l) in &ia {
        n.instances += 1;
        match ib.get(id) {
            Some(m) if m != l => n.changed += 1,
            Some(_) => {}
            None => n.only_a += 1,
        }
    }
    for id in ib.keys() {
        if !ia.contains_key(id) {
            n.instances += 1;
            n.only_b += 1;
        }
    }
    let mut cases: Vec<&str> = Vec::new();
    for (c, _, _) in xa.iter().chain(&xb) {
        if !cases.contains(c) {
            cases.push(c);
        }
    }
    for case in cases {
        let text = |xs: &[(&str, &str, String)]| -> String {
            xs.iter()
                .filter(|(c, _, _)| *c == case)
                .map(|(_, _, l)| l.as_str())
                .collect()
        };
        let (ta, tb) = (text(&xa), text(&xb));
        if ta != tb {
            any = true;
            out.push_str(&unified(
                &ta,
                &tb,
                &format!("A {la}: {case}"),
                &format!("B {lb}: {case}"),
            ));
        }
    }
    if !any {
        out.push_str("no differences\n");
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What changed from `a` to `b` on the kernels `sel` pairs.
pub fn diff(a: &Results, b: &Results, sel: DiffSel) -> Result<Diff, DiffError> {
    let p = pair(a, b, &sel)?;
    let mut n = Counts::default();
    let mut body = String::new();
    for (ka, kb) in &p.pairs {
        compare(ka, kb, &mut n, &mut body);
    }
    let changed = n.changed + n.only_a + n.only_b + n.kernels_changed > 0
        || !p.only_a.is_empty()
        || !p.only_b.is_empty();
    if !changed {
        let text = format!(
            "no differences ({}, {})\n",
            plural(p.pairs.len(), "kernel pair", "kernel pairs"),
            plural(n.instances, "instance", "instances")
        );
        return Ok(Diff { text, changed });
    }
    let mut text = body;
    let mut summary = format!(
        "{} changed, {} only in A, {} only in B",
        plural(n.changed, "instance", "instances"),
        n.only_a,
        n.only_b
    );
    if n.kernels_changed > 0 {
        summary.push_str(&format!(
            "; {} changed state",
            plural(n.kernels_changed, "kernel", "kernels")
        ));
    }
    for (side, ks) in [("A", &p.only_a), ("B", &p.only_b)] {
        if !ks.is_empty() {
            let l: Vec<String> = ks.iter().map(|k| describe(k)).collect();
            text.push_str(&format!("=== only in {side}: {}\n", l.join(", ")));
            summary.push_str(&format!(
                "; {} only in {side}",
                plural(ks.len(), "kernel", "kernels")
            ));
        }
    }
    text.push_str(&summary);
    text.push('\n');
    Ok(Diff { text, changed })
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
