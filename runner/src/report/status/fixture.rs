//! Results built by hand for the CI renderers' tests: every status, kernels that ran and
//! kernels that could not, and text that needs escaping.

use crate::exec::{Observation, Outcome, Res};
use crate::report::Summary;
use crate::results::{
    CaseInfo, InstanceInfo, InstanceResult, KernelIdentity, KernelRun, Plan, Results, Runner,
    Timing, VerdictKind, SCHEMA_VERSION,
};

fn case_of(id: &str) -> String {
    id.split('/').next().unwrap_or(id).to_string()
}

fn with(id: &str, outcome: Outcome, results: Vec<(String, Res)>, v: VerdictKind) -> InstanceResult {
    InstanceResult {
        case: case_of(id),
        observation: Observation {
            id: id.into(),
            outcome,
            results,
            logs: Vec::new(),
        },
        verdict: v,
        failures: Vec::new(),
        checks: Vec::new(),
    }
}

/// An instance that ran: `get=NULL`.
pub fn ran(id: &str, v: VerdictKind) -> InstanceResult {
    with(id, Outcome::Ran, vec![("get".into(), Res::Null)], v)
}

/// An instance that ran and breaks one rule.
pub fn failing(id: &str, failure: &str) -> InstanceResult {
    let mut r = ran(id, VerdictKind::Fail);
    r.failures = vec![failure.into()];
    r
}

/// An instance whose program the environment refused: it ran, its verdict is `not_run`.
pub fn step_refused(id: &str) -> InstanceResult {
    let refused = Res::Refused {
        errno: "EPERM".into(),
        what: "fentry".into(),
    };
    with(
        id,
        Outcome::Ran,
        vec![("load".into(), refused), ("get".into(), Res::Unavailable)],
        VerdictKind::NotRun,
    )
}

/// An instance that did not run as a whole.
pub fn outcome(id: &str, o: Outcome) -> InstanceResult {
    with(id, o, Vec::new(), VerdictKind::NotRun)
}

/// A Debian kernel that ran `instances`.
pub fn kernel(spec: &str, instances: Vec<InstanceResult>) -> KernelRun {
    let series = spec.trim_start_matches("debian:");
    KernelRun {
        identity: KernelIdentity {
            spec: spec.into(),
            label: series.into(),
            release: Some(format!("{series}.0-56-cloud-amd64")),
            build: Some(format!("#1 SMP PREEMPT_DYNAMIC Debian {series}.192-2")),
            origin: format!(
                "{spec} = linux-image-{series}.0-56-cloud-amd64-unsigned {series}.192-2"
            ),
            package: Some(format!("linux-image-{series}.0-56-cloud-amd64-unsigned")),
            package_version: Some(format!("{series}.192-2")),
            image_sha256: Some("ab".repeat(32)),
            btf: Some(true),
        },
        unusable: None,
        problems: Vec::new(),
        did_not_report: Vec::new(),
        timings: vec![Timing {
            accel: "tcg".into(),
            start: None,
            initramfs_s: Some(0.1),
            boot_s: Some(3.0),
            total_s: 9.0,
            breakdown: None,
        }],
        summary: Summary {
            instances: instances.len(),
            ..Summary::default()
        },
        instances,
    }
}

/// A kernel that could not run the cases: it booted (or at least its image was there) when
/// `image`, else it was not even found.
pub fn unusable(spec: &str, why: &str, image: bool) -> KernelRun {
    let mut k = kernel(spec, Vec::new());
    k.unusable = Some(why.into());
    k.identity.label = spec.into();
    k.identity.release = None;
    k.identity.build = None;
    k.identity.btf = None;
    k.timings = Vec::new();
    if !image {
        k.identity.image_sha256 = None;
        k.identity.package = None;
        k.identity.package_version = None;
        k.identity.origin = format!("{spec}: not found");
    }
    k
}

/// The results of `kernels`, with a case list made from their instance ids.
pub fn results(kernels: Vec<KernelRun>) -> Results {
    let mut cases: Vec<CaseInfo> = Vec::new();
    for r in kernels.iter().flat_map(|k| &k.instances) {
        let i = match cases.iter().position(|c| c.name == r.case) {
            Some(i) => i,
            None => {
                cases.push(CaseInfo {
                    name: r.case.clone(),
                    file: format!("cases/{}.json", r.case),
                    about: "about".into(),
                    instances: Vec::new(),
                });
                cases.len() - 1
            }
        };
        if !cases[i].instances.iter().any(|x| x.id == r.observation.id) {
            cases[i].instances.push(InstanceInfo {
                id: r.observation.id.clone(),
                bindings: Vec::new(),
                program_type: "syscall".into(),
                programs: Vec::new(),
            });
        }
    }
    Results {
        schema_version: SCHEMA_VERSION,
        runner: Runner::this(),
        plan: Plan {
            kernels: kernels.iter().map(|k| k.identity.spec.clone()).collect(),
            cases: cases.iter().map(|c| c.file.clone()).collect(),
            filters: Vec::new(),
        },
        shard: None,
        cases,
        kernels,
    }
}

/// Two kernels that ran (one with a kernel problem and an instance that never reported) and
/// one that was not found; every status, and text with `<`, `&`, quotes and control characters.
pub fn everything() -> Results {
    let mut rejected = ran("get_flags/flags=1<<32/value=null", VerdictKind::Pass);
    rejected.observation.results = vec![(
        "load".into(),
        Res::Rejected {
            errno: "EACCES".into(),
            line: "R1 type=scalar expected=map_ptr & \"fp\"".into(),
        },
    )];
    rejected.observation.logs = vec![(
        "load".into(),
        "0: (b7) r1 = 0\nR1 type=scalar expected=map_ptr\x1b[0m\u{0}".into(),
    )];
    let a = vec![
        ran("get_flags/flags=0x0/value=null", VerdictKind::Pass),
        failing(
            "get_flags/flags=0x1/value=null",
            "get: expected ptr:*, got NULL (because <F_CREATE> & 'create')",
        ),
        rejected,
        ran("children", VerdictKind::NoRule),
        step_refused("program_types/prog=fentry.s"),
        outcome(
            "map_create/flags=no_prealloc|mmapable",
            Outcome::Unsupported {
                reason: "map type task_storage".into(),
            },
        ),
        outcome(
            "map_create/flags=0x0",
            Outcome::Error {
                message: "reading the result map: EFAULT\u{7}".into(),
            },
        ),
    ];
    let mut k61 = kernel("debian:6.1", a.clone());
    k61.problems = vec!["WARNING: CPU: 0 PID: 1 at kernel/bpf/verifier.c:1 <bpf_check>".into()];
    k61.did_not_report = vec!["get_flags/flags=u64::MAX/value=null".into()];
    let mut b = a;
    b[1] = ran("get_flags/flags=0x1/value=null", VerdictKind::Pass);
    let k73 = kernel("debian:7.3", b);
    let gone = unusable(
        "debian:9.9",
        "no package for debian:9.9 & \"trixie\"",
        false,
    );
    results(vec![k61, k73, gone])
}
