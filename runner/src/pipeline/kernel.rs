//! A kernel in a QEMU guest: boot it with the selected case files, then turn what its runner
//! sent into instance results with verdicts judged here, on the host.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::Sender;

use super::host::secs;
use super::{progress, Event, Plan};
use crate::case::{Case, Instance, KernelSeries};
use crate::exec::Observation;
use crate::report::{self, Summary, Verdict};
use crate::results::{InstanceResult, KernelIdentity, KernelRun, Timing, VerdictKind};
use crate::vm::kernels::{Kernel, KernelSpec};
use crate::vm::{self, GuestRun};

/// One instance's observation judged against its case's rules on kernel `series`.
pub fn instance_result(
    case: &str,
    inst: &Instance,
    obs: Observation,
    release: Option<&str>,
) -> InstanceResult {
    let kernel = release.and_then(KernelSeries::from_release);
    let v = report::verdict(inst, &obs, kernel);
    let checks = report::checks(inst, &obs, kernel);
    let (verdict, failures) = match v {
        Verdict::Pass => (VerdictKind::Pass, Vec::new()),
        Verdict::Fail(f) => (VerdictKind::Fail, f),
        Verdict::NoRule => (VerdictKind::NoRule, Vec::new()),
        Verdict::NotRun => (VerdictKind::NotRun, Vec::new()),
    };
    InstanceResult {
        case: case.to_string(),
        observation: obs,
        verdict,
        failures,
        checks,
    }
}

/// The verdict an instance result records, as `report` knows it.
pub fn verdict_of(r: &InstanceResult) -> Verdict {
    match r.verdict {
        VerdictKind::Pass => Verdict::Pass,
        VerdictKind::Fail => Verdict::Fail(r.failures.clone()),
        VerdictKind::NoRule => Verdict::NoRule,
        VerdictKind::NotRun => Verdict::NotRun,
    }
}

pub(super) fn summarize(instances: &[InstanceResult]) -> Summary {
    let mut s = Summary::default();
    for r in instances {
        s.add(&r.observation, &verdict_of(r));
    }
    s
}

/// A kernel that could not be had or booted at all.
pub fn failed(spec: &KernelSpec, why: String) -> KernelRun {
    KernelRun {
        identity: KernelIdentity {
            spec: spec.to_string(),
            label: spec.to_string(),
            release: None,
            build: None,
            origin: spec.to_string(),
            package: None,
            package_version: None,
            image_sha256: None,
            btf: None,
        },
        unusable: Some(why),
        problems: Vec::new(),
        did_not_report: Vec::new(),
        timings: Vec::new(),
        summary: Summary::default(),
        instances: Vec::new(),
    }
}

pub(super) fn guest(
    k: usize,
    spec: &KernelSpec,
    kern: &Kernel,
    cases: &[&Case],
    plan: &Plan<'_>,
    tx: &Sender<Event>,
) -> KernelRun {
    let total = cases.iter().map(|c| c.instances.len()).sum();
    let _ = tx.send(Event::Started {
        kernel: k,
        instances: total,
    });
    let files: Vec<PathBuf> = cases.iter().map(|c| c.file.clone()).collect();
    let booted = vm::boot_watched(kern, &files, &plan.filters, &plan.options, &progress(k, tx));
    let g = match booted {
        Ok(g) => g,
        Err(e) => {
            let mut run = failed(spec, e.to_string());
            run.identity = identity(spec, kern, None);
            let _ = tx.send(Event::KernelDone {
                kernel: k,
                run: Box::new(run.clone()),
                notes: Vec::new(),
                console_tail: String::new(),
            });
            return run;
        }
    };
    let identity = identity(spec, kern, Some(&g));
    let release = identity.release.clone();
    let mut problems = g.problems.clone();
    let mut instances = Vec::new();
    for (file, rec) in &g.records {
        let Some(c) = cases.get(*file) else {
            problems.push(format!(
                "an observation names case file {file}, which was not sent"
            ));
            continue;
        };
        let obs = match serde_json::from_value::<Observation>(rec["observation"].clone()) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("unreadable observation: {e}"));
                continue;
            }
        };
        let Some(inst) = c.instances.iter().find(|i| i.id == obs.id) else {
            problems.push(format!("an observation of an unknown instance: {}", obs.id));
            continue;
        };
        let r = instance_result(&c.name, inst, obs, release.as_deref());
        let _ = tx.send(Event::Instance {
            kernel: k,
            result: Box::new(r.clone()),
        });
        instances.push(r);
    }
    let reported: HashSet<&str> = instances
        .iter()
        .map(|r| r.observation.id.as_str())
        .collect();
    let did_not_report = if g.unusable.is_some() {
        Vec::new()
    } else {
        cases
            .iter()
            .flat_map(|c| c.instances.iter())
            .filter(|i| !reported.contains(i.id.as_str()))
            .map(|i| i.id.clone())
            .collect()
    };
    let run = KernelRun {
        identity,
        unusable: g.unusable.clone(),
        problems,
        did_not_report,
        timings: vec![Timing {
            accel: g.accel.name().to_string(),
            start: Some(g.start.name().to_string()),
            initramfs_s: Some(secs(g.initramfs)),
            boot_s: g.boot_to_hello.map(secs),
            total_s: secs(g.total),
            breakdown: g.breakdown.clone(),
        }],
        summary: summarize(&instances),
        instances,
    };
    for message in run.unusable.iter().chain(&run.problems) {
        let _ = tx.send(Event::Fault {
            kernel: k,
            message: message.clone(),
        });
    }
    let _ = tx.send(Event::KernelDone {
        kernel: k,
        run: Box::new(run.clone()),
        notes: g.notes.clone(),
        console_tail: g.console_tail.clone(),
    });
    run
}

fn identity(spec: &KernelSpec, kern: &Kernel, g: Option<&GuestRun>) -> KernelIdentity {
    let hello = g.and_then(|g| g.hello.as_ref());
    KernelIdentity {
        spec: spec.to_string(),
        // A guest that never said hello has no release: it goes by its spec.
        label: g
            .and_then(|g| g.label())
            .unwrap_or_else(|| spec.to_string()),
        release: hello.map(|h| h.release.clone()),
        build: hello.map(|h| h.version.clone()),
        origin: kern.origin.clone(),
        package: kern.package.as_ref().map(|p| p.0.clone()),
        package_version: kern.package.as_ref().map(|p| p.1.clone()),
        image_sha256: Some(kern.image_sha256.clone()),
        btf: hello.map(|h| h.btf),
    }
}
