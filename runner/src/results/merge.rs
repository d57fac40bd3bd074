//! `bpfcase merge`: shards (or separate runs) of one selection joined into one results file,
//! equal to what a single run of the whole plan records, timings aside.

use super::{CaseInfo, KernelRun, Plan, Results, Runner, SCHEMA_VERSION};
use crate::report::Summary;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(String);

fn fail<T>(why: impl Into<String>) -> Result<T, MergeError> {
    Err(MergeError(why.into()))
}

/// Joins `parts` (name, results) into one. Shards of one run must all be there; kernels that
/// appear in several parts must be the same kernel, and an instance may be observed only once
/// per kernel.
pub fn merge(parts: &[(String, Results)]) -> Result<Results, MergeError> {
    let Some((first_name, first)) = parts.first() else {
        return fail("nothing to merge");
    };
    for (name, r) in parts {
        if r.runner != first.runner {
            return fail(format!(
                "{name} was written by {} {}, {first_name} by {} {}: merge results of one runner",
                r.runner.name, r.runner.version, first.runner.name, first.runner.version
            ));
        }
        if r.plan.filters != first.plan.filters {
            return fail(format!(
                "{name} and {first_name} select different instances (--filter {:?} vs {:?})",
                r.plan.filters, first.plan.filters
            ));
        }
    }
    check_shards(parts)?;

    let mut plan = Plan {
        kernels: Vec::new(),
        cases: Vec::new(),
        filters: first.plan.filters.clone(),
    };
    for (_, r) in parts {
        for k in &r.plan.kernels {
            if !plan.kernels.contains(k) {
                plan.kernels.push(k.clone());
            }
        }
        for c in &r.plan.cases {
            if !plan.cases.contains(c) {
                plan.cases.push(c.clone());
            }
        }
    }

    let mut cases: Vec<CaseInfo> = Vec::new();
    for file in &plan.cases {
        let mut found: Option<(&str, &CaseInfo)> = None;
        for (name, r) in parts {
            for c in r.cases.iter().filter(|c| &c.file == file) {
                match found {
                    Some((other, f)) if f != c => {
                        return fail(format!(
                            "case file {file} differs between {other} and {name}: merge results of one selection"
                        ))
                    }
                    Some(_) => {}
                    None => found = Some((name, c)),
                }
            }
        }
        if let Some((_, c)) = found {
            cases.push(c.clone());
        }
    }
    // Instance order: case files in plan order, instances in matrix order.
    let order: std::collections::HashMap<&str, usize> = cases
        .iter()
        .flat_map(|c| c.instances.iter())
        .enumerate()
        .map(|(i, inst)| (inst.id.as_str(), i))
        .collect();

    let mut kernels: Vec<KernelRun> = Vec::new();
    for spec in &plan.kernels {
        let mut merged: Option<(String, KernelRun)> = None;
        for (name, r) in parts {
            for k in r.kernels.iter().filter(|k| &k.identity.spec == spec) {
                merged = Some(match merged.take() {
                    None => (name.clone(), k.clone()),
                    Some((from, m)) => (from.clone(), join(&from, m, name, k)?),
                });
            }
        }
        if let Some((_, mut k)) = merged {
            k.instances
                .sort_by_key(|i| order.get(i.observation.id.as_str()).copied());
            k.did_not_report
                .sort_by_key(|id| order.get(id.as_str()).copied());
            kernels.push(k);
        }
    }
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        runner: Runner {
            name: first.runner.name.clone(),
            version: first.runner.version.clone(),
        },
        plan,
        shard: None,
        cases,
        kernels,
    })
}

/// Shards must come from one plan and be complete: 1..N, each once.
fn check_shards(parts: &[(String, Results)]) -> Result<(), MergeError> {
    let sharded: Vec<&(String, Results)> =
        parts.iter().filter(|(_, r)| r.shard.is_some()).collect();
    let Some((first_name, first)) = sharded.first() else {
        return Ok(());
    };
    let count = first.shard.map_or(0, |s| s.count);
    let mut seen = vec![None::<&str>; count as usize];
    for (name, r) in &sharded {
        let Some(s) = r.shard else { continue };
        if s.count != count || r.plan != first.plan {
            return fail(format!(
                "{name} (shard {s}) and {first_name} (shard {}) are shards of different runs",
                first.shard.map_or(String::new(), |s| s.to_string())
            ));
        }
        match seen[s.index as usize - 1] {
            Some(other) => return fail(format!("shard {s} is given twice: {other} and {name}")),
            None => seen[s.index as usize - 1] = Some(name.as_str()),
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "shard{} {} missing: merge every shard of the run",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ));
    }
    if sharded.len() < parts.len() {
        return fail("some files are shards and some are not: merge the shards of one run");
    }
    Ok(())
}

/// One kernel seen by two parts.
fn join(
    a_name: &str,
    mut a: KernelRun,
    b_name: &str,
    b: &KernelRun,
) -> Result<KernelRun, MergeError> {
    if a.identity != b.identity {
        return fail(format!(
            "kernel {} is not the same kernel in {a_name} ({}) and {b_name} ({})",
            a.identity.spec,
            a.identity.release.as_deref().unwrap_or(&a.identity.origin),
            b.identity.release.as_deref().unwrap_or(&b.identity.origin)
        ));
    }
    for i in &b.instances {
        if a.instances
            .iter()
            .any(|x| x.observation.id == i.observation.id)
        {
            return fail(format!(
                "{} ran on {} in both {a_name} and {b_name}",
                i.observation.id, a.identity.spec
            ));
        }
    }
    a.instances.extend(b.instances.iter().cloned());
    a.unusable = a.unusable.or_else(|| b.unusable.clone());
    for p in &b.problems {
        if !a.problems.contains(p) {
            a.problems.push(p.clone());
        }
    }
    a.did_not_report.extend(b.did_not_report.iter().cloned());
    a.timings.extend(b.timings.iter().cloned());
    a.summary = sum(&a.summary, &b.summary);
    Ok(a)
}

fn sum(a: &Summary, b: &Summary) -> Summary {
    Summary {
        instances: a.instances + b.instances,
        accepted: a.accepted + b.accepted,
        rejected: a.rejected + b.rejected,
        unsupported: a.unsupported + b.unsupported,
        refused: a.refused + b.refused,
        errors: a.errors + b.errors,
        expect_pass: a.expect_pass + b.expect_pass,
        expect_fail: a.expect_fail + b.expect_fail,
        expect_none: a.expect_none + b.expect_none,
    }
}
