//! What a CI report says about each instance and each kernel of a `results.json`: pass, no
//! rule, fail, skip, error or missing, with the words that say why. JUnit and KCIDB both render
//! from here, so they always agree.
//!
//! Owns: the mapping from verdicts, outcomes and kernel state to those statuses. Must not:
//! render any format, or judge anything again (the verdicts in the results are taken as they
//! are; only something that did not run is never called a pass).

use crate::exec::{Outcome, Res};
use crate::results::{InstanceResult, KernelRun, VerdictKind};

#[cfg(test)]
pub(crate) mod fixture;

/// How one instance (or one kernel-level check) ended, for a CI report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every applicable rule holds.
    Pass,
    /// It ran; no rule covers it.
    NoRule,
    /// Rules that do not hold, one line each.
    Fail(Vec<String>),
    /// It did not run here: unsupported or refused, as `unsupported(reason)`.
    Skip(String),
    /// The runner or the kernel failed: what happened.
    Error(String),
    /// It was selected but never reported (the guest stopped first).
    Missing(String),
}

/// One line of a CI report: an instance with an observation, or one that never reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    /// The full instance id (`get_flags/flags=0x1/…`).
    pub id: &'a str,
    /// The case file's name.
    pub case: &'a str,
    /// The snapshot line (`report::line`), when there is an observation.
    pub line: Option<String>,
    /// The end of the verifier log of each program it rejected: (program, log).
    pub logs: &'a [(String, String)],
    pub status: Status,
}

/// The instance id without the case name, as snapshot lines show it (`(single)` for a case
/// without a matrix).
pub fn short_id(id: &str) -> &str {
    id.split_once('/').map_or("(single)", |(_, rest)| rest)
}

/// The status of one instance: the outcome first (an instance that did not run is never a
/// pass, whatever its verdict says), then the verdict.
pub fn status(r: &InstanceResult) -> Status {
    match &r.observation.outcome {
        Outcome::Error { message } => return Status::Error(format!("error({message})")),
        Outcome::Unsupported { reason } => return Status::Skip(format!("unsupported({reason})")),
        Outcome::Refused { errno, what } => {
            return Status::Skip(format!("refused({errno}: {what})"))
        }
        Outcome::Ran => {}
    }
    match r.verdict {
        VerdictKind::Pass => Status::Pass,
        VerdictKind::NoRule => Status::NoRule,
        VerdictKind::Fail if r.failures.is_empty() => {
            Status::Fail(vec!["a rule does not hold (no detail recorded)".into()])
        }
        VerdictKind::Fail => Status::Fail(r.failures.clone()),
        VerdictKind::NotRun => Status::Skip(not_run(r)),
    }
}

/// Why an instance that ran has no verdict: the steps that were unsupported or refused here,
/// those with the same reason together (`st,load=unsupported(map type task_storage)`), or
/// (when none says so) the whole observation.
fn not_run(r: &InstanceResult) -> String {
    let mut reasons: Vec<(String, Vec<&str>)> = Vec::new();
    for (n, res) in &r.observation.results {
        if !matches!(res, Res::Unsupported { .. } | Res::Refused { .. }) {
            continue;
        }
        let why = super::render(res);
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(n),
            None => reasons.push((why, vec![n])),
        }
    }
    let steps: Vec<String> = reasons
        .iter()
        .map(|(why, names)| format!("{}={why}", names.join(",")))
        .collect();
    if steps.is_empty() {
        let line = super::line(&r.observation, None);
        let body = line.split_once(" → ").map_or(line.as_str(), |(_, b)| b);
        format!("no applicable rule could be checked: {body}")
    } else {
        steps.join("; ")
    }
}

/// Every instance of a kernel in plan order, then the selected instances that sent no
/// observation (in the order the results list them).
pub fn items(k: &KernelRun) -> Vec<Item<'_>> {
    let mut items: Vec<Item> = k
        .instances
        .iter()
        .map(|r| Item {
            id: &r.observation.id,
            case: &r.case,
            line: Some(super::line(&r.observation, None)),
            logs: &r.observation.logs,
            status: status(r),
        })
        .collect();
    for id in &k.did_not_report {
        if items.iter().any(|i| i.id == id.as_str()) {
            continue;
        }
        items.push(Item {
            id,
            case: id.split_once('/').map_or(id.as_str(), |(c, _)| c),
            line: None,
            logs: &[],
            status: Status::Missing(
                "did not report: the guest stopped before this instance sent its observation"
                    .into(),
            ),
        });
    }
    items
}

/// Whether the kernel booted or could not run at all: `Pass` when it ran, `Fail` with the reason
/// when its image was there (it did not boot, or has no BPF or BTF), `Error` when not even the
/// image was (not found, not downloaded).
pub fn boot(k: &KernelRun) -> Status {
    match &k.unusable {
        None => Status::Pass,
        Some(why) if k.identity.image_sha256.is_some() || k.identity.release.is_some() => {
            Status::Fail(vec![why.clone()])
        }
        Some(why) => Status::Error(why.clone()),
    }
}

/// Whether the kernel ran the cases: kernel panics, oopses, WARN splats, hangs and guest errors
/// are an error of the run as a whole; `None` for a kernel that never ran them.
pub fn problems(k: &KernelRun) -> Option<Status> {
    if k.unusable.is_some() && k.instances.is_empty() {
        return None;
    }
    Some(if k.problems.is_empty() {
        Status::Pass
    } else {
        Status::Error(k.problems.join("\n"))
    })
}

/// The verdict as results.json spells it.
pub fn verdict_name(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Pass => "pass",
        VerdictKind::Fail => "fail",
        VerdictKind::NoRule => "no_rule",
        VerdictKind::NotRun => "not_run",
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    #[test]
    fn outcome_wins_over_a_verdict_that_claims_a_pass() {
        let mut r = ran("c/x=1", VerdictKind::Pass);
        r.observation.outcome = Outcome::Unsupported {
            reason: "no task storage".into(),
        };
        assert_eq!(
            status(&r),
            Status::Skip("unsupported(no task storage)".into())
        );
        r.observation.outcome = Outcome::Refused {
            errno: "EPERM".into(),
            what: "fentry".into(),
        };
        assert_eq!(status(&r), Status::Skip("refused(EPERM: fentry)".into()));
        r.observation.outcome = Outcome::Error {
            message: "boom".into(),
        };
        assert_eq!(status(&r), Status::Error("error(boom)".into()));
    }

    #[test]
    fn steps_that_did_not_run_say_why() {
        let mut r = step_refused("c/p=fentry");
        assert_eq!(
            status(&r),
            Status::Skip("load=refused(EPERM: fentry)".into())
        );
        let unsupported = |reason: &str| Res::Unsupported {
            reason: reason.into(),
        };
        r.observation.results = vec![
            ("st".into(), unsupported("map type task_storage")),
            ("load#1".into(), unsupported("program type syscall")),
            ("load#2".into(), unsupported("map type task_storage")),
        ];
        assert_eq!(
            status(&r),
            Status::Skip(
                "st,load#2=unsupported(map type task_storage); \
                 load#1=unsupported(program type syscall)"
                    .into()
            )
        );
        let mut r = ran("c/x=1", VerdictKind::NotRun);
        r.observation.results = vec![("get".into(), Res::Unavailable)];
        let Status::Skip(why) = status(&r) else {
            panic!("not a skip")
        };
        assert!(why.starts_with("no applicable rule"), "{why}");
    }

    #[test]
    fn fail_without_detail_still_fails() {
        let r = ran("c/x=1", VerdictKind::Fail);
        assert!(matches!(status(&r), Status::Fail(f) if f.len() == 1));
        assert_eq!(status(&failing("c/x=1", "get: expected NULL, got ok")), {
            Status::Fail(vec!["get: expected NULL, got ok".into()])
        });
    }

    #[test]
    fn instances_that_never_reported_are_missing_once() {
        let mut k = kernel("debian:6.1", vec![ran("c/x=1", VerdictKind::Pass)]);
        k.did_not_report = vec!["c/x=1".into(), "c/x=2".into()];
        let items = items(&k);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].case, "c");
        assert!(matches!(items[1].status, Status::Missing(_)));
        assert_eq!(items[1].line, None);
    }

    #[test]
    fn boot_status_follows_how_far_the_kernel_got() {
        let k = kernel("debian:6.1", vec![]);
        assert_eq!(boot(&k), Status::Pass);
        let k = unusable("debian:6.1", "no kernel BTF", true);
        assert_eq!(boot(&k), Status::Fail(vec!["no kernel BTF".into()]));
        assert_eq!(problems(&k), None);
        let k = unusable("debian:9.9", "no such package", false);
        assert_eq!(boot(&k), Status::Error("no such package".into()));
    }

    #[test]
    fn kernel_problems_are_an_error() {
        let mut k = kernel("debian:6.1", vec![]);
        assert_eq!(problems(&k), Some(Status::Pass));
        k.problems = vec!["WARNING: at kernel/bpf".into(), "hang".into()];
        assert_eq!(
            problems(&k),
            Some(Status::Error("WARNING: at kernel/bpf\nhang".into()))
        );
    }
}
