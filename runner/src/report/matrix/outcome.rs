//! One observation as the reports compare it: its outcome text (the snapshot line's), whether
//! it measured anything, why not, and what differs from another.
//!
//! Owns: those four views. Must not: look across kernels.

use crate::exec::{Observation, Outcome, Res};

/// The outcome as the snapshot line shows it, without the instance id: map creations that
/// succeeded are scenery there.
pub fn outcome_text(obs: &Observation) -> String {
    let shown = Observation {
        results: obs
            .results
            .iter()
            .filter(|(_, r)| *r != Res::Created { value_size: None })
            .cloned()
            .collect(),
        ..obs.clone()
    };
    let l = crate::report::line(&shown, None);
    match l.split_once(" → ") {
        Some((_, body)) => body.to_string(),
        None => l,
    }
}

/// The results of an observation as (name, text).
fn fields(obs: &Observation) -> Vec<(String, String)> {
    obs.results
        .iter()
        .filter(|(_, r)| *r != Res::Unavailable)
        .map(|(n, r)| (n.clone(), crate::report::render(r)))
        .collect()
}

/// What differs between two observations: `name: old → new` for each result that changed, or
/// the whole outcome when one of them did not run.
pub fn diff(old: &Observation, new: &Observation) -> String {
    if old.outcome != Outcome::Ran || new.outcome != Outcome::Ran {
        return format!("{} → {}", outcome_text(old), outcome_text(new));
    }
    let (a, b) = (fields(old), fields(new));
    let get = |v: &[(String, String)], n: &str| {
        v.iter()
            .find(|(k, _)| k == n)
            .map_or("absent".to_string(), |(_, t)| t.clone())
    };
    let mut names: Vec<&String> = b.iter().map(|(n, _)| n).collect();
    for (n, _) in &a {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
        .into_iter()
        .filter_map(|n| {
            let (x, y) = (get(&a, n), get(&b, n));
            (x != y).then(|| format!("{n}: {x} → {y}"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the observation measured anything: it ran (or the runner failed), and one of its programs (`steps`, the
/// program steps; else results named `load…`) loaded or was rejected. An instance without
/// programs measured something when some result other than the scenery (maps created,
/// processes spawned) is neither unsupported nor refused.
pub fn measured(obs: &Observation, steps: &[&str]) -> bool {
    let stopped = |r: &Res| {
        matches!(
            r,
            Res::Unsupported { .. } | Res::Refused { .. } | Res::Unavailable
        )
    };
    match obs.outcome {
        Outcome::Ran => {}
        // A runner error is news about that kernel: it must not hide as "unsupported".
        Outcome::Error { .. } => return true,
        Outcome::Unsupported { .. } | Outcome::Refused { .. } => return false,
    }
    let program = |n: &str| {
        if steps.is_empty() {
            n.starts_with("load")
        } else {
            steps.contains(&n)
        }
    };
    let programs: Vec<&Res> = obs
        .results
        .iter()
        .filter(|(n, _)| program(n))
        .map(|(_, r)| r)
        .collect();
    if !programs.is_empty() {
        return programs.iter().any(|r| !stopped(r));
    }
    let scenery = |n: &str, r: &Res| {
        *r == Res::Created { value_size: None }
            || (*r == Res::Ok
                && ["spawn:", "exit:", "reap:"]
                    .iter()
                    .any(|p| n.starts_with(p)))
    };
    obs.results
        .iter()
        .any(|(n, r)| !scenery(n, r) && !stopped(r))
}

/// Why the observation measured nothing, or less: each distinct unsupported or refused reason
/// (`unsupported: map type task_storage`), in order.
pub fn reasons(obs: &Observation) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    match &obs.outcome {
        Outcome::Unsupported { reason } => add(format!("unsupported: {reason}")),
        Outcome::Refused { errno, what } => add(format!("refused: {what} ({errno})")),
        Outcome::Error { message } => add(format!("error: {message}")),
        Outcome::Ran => {}
    }
    for (_, r) in &obs.results {
        match r {
            Res::Unsupported { reason } => add(format!("unsupported: {reason}")),
            Res::Refused { errno, what } => add(format!("refused: {what} ({errno})")),
            _ => {}
        }
    }
    out
}
