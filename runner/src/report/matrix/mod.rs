//! The cross-kernel analysis every conformance report is rendered from: kernels in series
//! order, each instance's outcome per kernel and its runs of identical outcomes as version
//! ranges, what changed between adjacent kernels, a conformance class per instance from its
//! verdicts, a state per case and kernel, and (in [`helpers`]) which program types may call
//! which helper.
//!
//! Owns: the order of kernels and the comparison of observations across them. Must not: render
//! for people (markdown, html and ebpf_docs do), read files, or look at timings: the same
//! observations give the same analysis.

pub mod helpers;
pub mod ids;
mod outcome;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
pub(crate) mod tests;

use crate::exec::{Outcome, Res};
use crate::results::{InstanceInfo, InstanceResult, KernelRun, Results, VerdictKind};

pub use helpers::{Discrepancy, HelperTable, May, TypeRow};
pub use outcome::{diff, measured, outcome_text, reasons};

/// A results file analysed across its kernels.
pub struct Matrix<'a> {
    pub results: &'a Results,
    /// The kernels in series order ([`order`]); every column index below refers to this.
    pub kernels: Vec<Column<'a>>,
    /// Every instance, cases in plan order, instances in matrix order.
    pub rows: Vec<Row<'a>>,
    /// For each pair of adjacent kernels that both ran, the instances whose outcome changed.
    pub changes: Vec<Change>,
    /// For each helper a program calls, the program types that may call it on each kernel.
    pub helpers: Vec<HelperTable>,
}

/// One kernel of the run.
pub struct Column<'a> {
    pub run: &'a KernelRun,
    /// The kernel's label (`6.1`, `host-6.18`).
    pub label: String,
    /// `<major>.<minor>` from its release, when it said one.
    pub series: Option<String>,
    /// Whether it reported any observation (an unusable kernel did not).
    pub ran: bool,
}

/// One instance across the kernels.
pub struct Row<'a> {
    pub case: String,
    pub id: String,
    /// What the instance compiles to, when the results file describes it.
    pub info: Option<&'a InstanceInfo>,
    /// Per column: the instance's result there, when it reported one.
    pub cells: Vec<Option<&'a InstanceResult>>,
    /// Per column: the outcome as its snapshot line says it (the part after `→ `).
    pub texts: Vec<Option<String>>,
    /// Per column: whether the observation there measured anything ([`measured`]).
    pub measured: Vec<bool>,
    pub class: Class,
}

/// Adjacent kernels with an outcome each, the same outcome throughout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First and last column, inclusive.
    pub first: usize,
    pub last: usize,
    pub text: String,
}

/// Whether an instance's rules hold across the kernels it ran on, in kernel order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Every rule holds wherever it was judged.
    Holds,
    /// Some rule fails wherever it was judged.
    DoesNotHold,
    /// Fails before this kernel, holds from it on.
    HoldsFrom(String),
    /// Holds up to this kernel, fails after it.
    HoldsUntil(String),
    Mixed,
    /// It ran, but no rule covers it.
    NoRule,
    /// It ran nowhere (unsupported, refused, error, or no observation).
    NotRun,
}

impl Class {
    pub fn words(&self) -> String {
        match self {
            Class::Holds => "documented and holds".into(),
            Class::DoesNotHold => "documented and does not hold".into(),
            Class::HoldsFrom(k) => format!("holds only from {k} on"),
            Class::HoldsUntil(k) => format!("holds only until {k}"),
            Class::Mixed => "holds on some kernels, not on others".into(),
            Class::NoRule => "no rule".into(),
            Class::NotRun => "not run".into(),
        }
    }
}

/// The instances whose outcome differs between two adjacent kernels.
pub struct Change {
    pub from: usize,
    pub to: usize,
    /// (row, what changed: `name: old → new; …`), in row order, for instances that measured
    /// something on both kernels.
    pub rows: Vec<(usize, String)>,
    /// Rows that measured nothing on the older kernel and something on the newer one.
    pub appeared: Vec<usize>,
    /// Rows that measured something on the older kernel and nothing on the newer one.
    pub vanished: Vec<usize>,
    /// Rows that measured nothing on either, for different reasons.
    pub neither: Vec<usize>,
}

impl Change {
    /// Whether nothing changed between the two kernels.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.appeared.is_empty()
            && self.vanished.is_empty()
            && self.neither.is_empty()
    }
}

/// How a case did on one kernel, worst first: a runner error, an expectation that fails, an
/// instance or step that could not run (unsupported, refused), every program rejected, all
/// well; or nothing observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Error,
    Fail,
    Unsupported,
    RejectedOnly,
    Pass,
    Empty,
}

impl State {
    pub fn words(self) -> &'static str {
        match self {
            State::Error => "runner error",
            State::Fail => "some expectations fail",
            State::Unsupported => "some instances unsupported or refused",
            State::RejectedOnly => "every program rejected",
            State::Pass => "all pass",
            State::Empty => "not observed",
        }
    }
}

impl<'a> Matrix<'a> {
    pub fn new(results: &'a Results) -> Matrix<'a> {
        let kernels: Vec<Column> = order(&results.kernels)
            .into_iter()
            .map(|i| {
                let run = &results.kernels[i];
                Column {
                    run,
                    label: run.identity.label.clone(),
                    series: run.identity.series(),
                    ran: !run.instances.is_empty(),
                }
            })
            .collect();
        let rows = rows(results, &kernels);
        let changes = changes(&kernels, &rows);
        let helpers = helpers::tables(&kernels, &rows);
        Matrix {
            results,
            kernels,
            rows,
            changes,
            helpers,
        }
    }

    /// The kernels that ran, as column indices in order.
    pub fn ran(&self) -> Vec<usize> {
        (0..self.kernels.len())
            .filter(|&c| self.kernels[c].ran)
            .collect()
    }

    /// `6.1` for one column, `6.1 – 6.12` for several.
    pub fn span(&self, first: usize, last: usize) -> String {
        if first == last {
            self.kernels[first].label.clone()
        } else {
            format!(
                "{} – {}",
                self.kernels[first].label, self.kernels[last].label
            )
        }
    }

    /// The runs of identical outcomes of a row over the kernels that ran; a kernel that ran
    /// but has no observation of the instance ends a run.
    pub fn ranges(&self, row: &Row) -> Vec<Range> {
        let mut out: Vec<Range> = Vec::new();
        let mut open = false;
        for c in self.ran() {
            match &row.texts[c] {
                Some(t) => match out.last_mut() {
                    Some(r) if open && r.text == *t => r.last = c,
                    _ => {
                        out.push(Range {
                            first: c,
                            last: c,
                            text: t.clone(),
                        });
                        open = true;
                    }
                },
                None => open = false,
            }
        }
        out
    }

    /// Whether the instance measured different things on different kernels (kernels where it
    /// measured nothing, being unsupported or refused, do not count).
    pub fn differs(&self, row: &Row) -> bool {
        let mut seen = row
            .texts
            .iter()
            .zip(&row.measured)
            .filter_map(|(t, m)| t.as_ref().filter(|_| *m));
        let first = seen.next();
        seen.any(|t| Some(t) != first)
    }

    /// Whether the instance measured something on some kernel.
    pub fn ever_measured(&self, row: &Row) -> bool {
        row.measured.iter().any(|m| *m)
    }

    /// The rows of a case, as indices.
    pub fn case_rows(&self, case: &str) -> Vec<usize> {
        (0..self.rows.len())
            .filter(|&i| self.rows[i].case == case)
            .collect()
    }

    /// Per case (in order) with rows that differ between kernels: its name, those rows, and
    /// how many rows it has.
    pub fn differing_by_case(&self) -> Vec<(String, Vec<usize>, usize)> {
        self.cases()
            .into_iter()
            .filter_map(|case| {
                let rows = self.case_rows(&case);
                let differ: Vec<usize> = rows
                    .iter()
                    .copied()
                    .filter(|&i| self.differs(&self.rows[i]))
                    .collect();
                (!differ.is_empty()).then_some((case, differ, rows.len()))
            })
            .collect()
    }

    /// The case names in order: the results' case files, then any case only observations name.
    pub fn cases(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.case) {
                out.push(r.case.clone());
            }
        }
        out
    }

    /// How case `case` did on column `c`.
    pub fn state(&self, case: &str, c: usize) -> State {
        let cells: Vec<&InstanceResult> = self
            .case_rows(case)
            .into_iter()
            .filter_map(|i| self.rows[i].cells[c])
            .collect();
        if cells.is_empty() {
            return State::Empty;
        }
        let worst = cells.iter().map(|r| instance_state(r)).min();
        let programs: Vec<&Res> = cells
            .iter()
            .flat_map(|r| r.observation.results.iter())
            .filter(|(n, _)| n.starts_with("load"))
            .map(|(_, r)| r)
            .collect();
        let all_rejected = !programs.is_empty()
            && programs
                .iter()
                .all(|r| matches!(r, Res::Rejected { .. } | Res::NotCompiled { .. }));
        match worst {
            Some(State::Pass) if all_rejected => State::RejectedOnly,
            Some(s) => s,
            None => State::Empty,
        }
    }

    /// Whether some instance of the case has another outcome on column `c` than on the kernel
    /// before it that ran.
    pub fn changed(&self, case: &str, c: usize) -> bool {
        let ran = self.ran();
        let Some(p) = ran.iter().position(|&x| x == c) else {
            return false;
        };
        let Some(&prev) = p.checked_sub(1).and_then(|p| ran.get(p)) else {
            return false;
        };
        self.case_rows(case).into_iter().any(|i| {
            let t = &self.rows[i].texts;
            matches!((&t[prev], &t[c]), (Some(a), Some(b)) if a != b)
        })
    }
}

/// The kernels' indices in series order: by `<major>.<minor>` of the release, the running
/// kernel (`host-X.Y`) after the guest of its series, kernels without a release last; plan
/// order otherwise.
pub fn order(kernels: &[KernelRun]) -> Vec<usize> {
    let key = |i: usize| {
        let id = &kernels[i].identity;
        let series = id.series().and_then(|s| {
            let (a, b) = s.split_once('.')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        });
        let host = id.spec == "host" || id.label.starts_with("host-");
        (series.is_none(), series, host, i)
    };
    let mut v: Vec<usize> = (0..kernels.len()).collect();
    v.sort_by_key(|&i| key(i));
    v
}

fn rows<'a>(r: &'a Results, kernels: &[Column<'a>]) -> Vec<Row<'a>> {
    let mut ids: Vec<(String, String, Option<&InstanceInfo>)> = r
        .cases
        .iter()
        .flat_map(|c| {
            c.instances
                .iter()
                .map(|i| (c.name.clone(), i.id.clone(), Some(i)))
        })
        .collect();
    for k in kernels {
        for i in &k.run.instances {
            if !ids.iter().any(|(_, id, _)| *id == i.observation.id) {
                ids.push((i.case.clone(), i.observation.id.clone(), None));
            }
        }
    }
    ids.into_iter()
        .map(|(case, id, info)| {
            let cells: Vec<Option<&InstanceResult>> = kernels
                .iter()
                .map(|k| k.run.instances.iter().find(|i| i.observation.id == id))
                .collect();
            let texts = cells
                .iter()
                .map(|c| c.map(|c| outcome_text(&c.observation)))
                .collect();
            let steps: Vec<&str> = info
                .map(|i| i.programs.iter().map(|p| p.step.as_str()).collect())
                .unwrap_or_default();
            let measured = cells
                .iter()
                .map(|c| c.is_some_and(|c| measured(&c.observation, &steps)))
                .collect();
            let class = classify(kernels, &cells);
            Row {
                case,
                id,
                info,
                cells,
                texts,
                measured,
                class,
            }
        })
        .collect()
}

fn classify(kernels: &[Column], cells: &[Option<&InstanceResult>]) -> Class {
    let judged: Vec<(usize, bool)> = cells
        .iter()
        .enumerate()
        .filter_map(|(c, r)| match r.map(|r| r.verdict) {
            Some(VerdictKind::Pass) => Some((c, true)),
            Some(VerdictKind::Fail) => Some((c, false)),
            _ => None,
        })
        .collect();
    if judged.is_empty() {
        let no_rule = cells
            .iter()
            .flatten()
            .any(|r| r.verdict == VerdictKind::NoRule);
        return if no_rule {
            Class::NoRule
        } else {
            Class::NotRun
        };
    }
    let pass: Vec<bool> = judged.iter().map(|(_, p)| *p).collect();
    if pass.iter().all(|p| *p) {
        return Class::Holds;
    }
    if pass.iter().all(|p| !*p) {
        return Class::DoesNotHold;
    }
    // Exactly one switch between holding and failing, in one direction or the other.
    let switches: Vec<usize> = (1..pass.len())
        .filter(|&i| pass[i] != pass[i - 1])
        .collect();
    match switches[..] {
        [i] if pass[i] => Class::HoldsFrom(kernels[judged[i].0].label.clone()),
        [i] => Class::HoldsUntil(kernels[judged[i - 1].0].label.clone()),
        _ => Class::Mixed,
    }
}

/// How one instance did on one kernel (a case's [`State`] is its worst instance's).
pub fn instance_state(r: &InstanceResult) -> State {
    let o = &r.observation;
    let stopped = o
        .results
        .iter()
        .any(|(_, r)| matches!(r, Res::Unsupported { .. } | Res::Refused { .. }));
    match &o.outcome {
        Outcome::Error { .. } => State::Error,
        _ if r.verdict == VerdictKind::Fail => State::Fail,
        Outcome::Unsupported { .. } | Outcome::Refused { .. } => State::Unsupported,
        Outcome::Ran if stopped => State::Unsupported,
        Outcome::Ran => State::Pass,
    }
}

fn changes(kernels: &[Column], rows: &[Row]) -> Vec<Change> {
    let ran: Vec<usize> = (0..kernels.len()).filter(|&c| kernels[c].ran).collect();
    ran.windows(2)
        .map(|w| {
            let (from, to) = (w[0], w[1]);
            let mut c = Change {
                from,
                to,
                rows: Vec::new(),
                appeared: Vec::new(),
                vanished: Vec::new(),
                neither: Vec::new(),
            };
            for (i, row) in rows.iter().enumerate() {
                let (Some(a), Some(b)) = (row.cells[from], row.cells[to]) else {
                    continue;
                };
                if row.texts[from] == row.texts[to] {
                    continue;
                }
                match (row.measured[from], row.measured[to]) {
                    (false, true) => c.appeared.push(i),
                    (true, false) => c.vanished.push(i),
                    (false, false) => c.neither.push(i),
                    (true, true) => c.rows.push((i, diff(&a.observation, &b.observation))),
                }
            }
            c
        })
        .collect()
}

/// Items grouped by an equal key, groups in order of first appearance.
pub fn group<T, K: PartialEq>(items: impl IntoIterator<Item = (K, T)>) -> Vec<(K, Vec<T>)> {
    let mut out: Vec<(K, Vec<T>)> = Vec::new();
    for (k, t) in items {
        match out.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(t),
            None => out.push((k, vec![t])),
        }
    }
    out
}

/// An instance id without its case name (`prog=xdp`), `(single)` for a case without a matrix.
pub fn short_id(id: &str) -> &str {
    id.split_once('/').map_or("(single)", |(_, rest)| rest)
}
