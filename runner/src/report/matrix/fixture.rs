//! A results file built in code for the renderers' tests: the shapes real runs record (program
//! types gaining a helper between kernels, a rule that holds only from one kernel on, a host
//! that refuses tracing programs, an unusable kernel, a runner error), no kernel needed.

use crate::exec::{Observation, Outcome, Res};
use crate::report::{Summary, Verdict};
use crate::results::*;

pub fn obs(id: &str, results: Vec<(&str, Res)>) -> Observation {
    Observation {
        id: id.into(),
        outcome: Outcome::Ran,
        results: results.into_iter().map(|(n, r)| (n.into(), r)).collect(),
        logs: Vec::new(),
    }
}

pub fn result(o: Observation, verdict: VerdictKind, failures: &[&str]) -> InstanceResult {
    InstanceResult {
        case: o.id.split('/').next().unwrap_or_default().into(),
        observation: o,
        verdict,
        failures: failures.iter().map(|s| s.to_string()).collect(),
        checks: Vec::new(),
    }
}

pub fn kernel(
    spec: &str,
    label: &str,
    release: Option<&str>,
    rs: Vec<InstanceResult>,
) -> KernelRun {
    let mut summary = Summary::default();
    for r in &rs {
        let v = match r.verdict {
            VerdictKind::Pass => Verdict::Pass,
            VerdictKind::Fail => Verdict::Fail(r.failures.clone()),
            VerdictKind::NoRule => Verdict::NoRule,
            VerdictKind::NotRun => Verdict::NotRun,
        };
        summary.add(&r.observation, &v);
    }
    KernelRun {
        identity: KernelIdentity {
            spec: spec.into(),
            label: label.into(),
            release: release.map(String::from),
            build: None,
            origin: if spec == "host" {
                "the running kernel".into()
            } else {
                format!("{spec} = linux-image-{label}")
            },
            package: (spec != "host").then(|| format!("linux-image-{label}-cloud-amd64")),
            package_version: (spec != "host").then(|| format!("{label}.1-1")),
            image_sha256: None,
            btf: release.map(|_| true),
        },
        unusable: release
            .is_none()
            .then(|| "cannot boot: no kernel image".into()),
        problems: Vec::new(),
        did_not_report: Vec::new(),
        timings: vec![Timing {
            accel: "tcg".into(),
            start: None,
            initramfs_s: Some(0.5),
            boot_s: Some(4.0),
            total_s: 12.0,
            breakdown: None,
        }],
        summary,
        instances: rs,
    }
}

pub fn program(step: &str, ty: &str, uapi: &str, calls: &[&str]) -> ProgramInfo {
    ProgramInfo {
        step: step.into(),
        program_type: ty.into(),
        uapi_type: uapi.into(),
        calls: calls.iter().map(|s| s.to_string()).collect(),
        listing: calls
            .iter()
            .enumerate()
            .map(|(i, c)| format!("   {i}: call {c}#1"))
            .chain(["   9: exit".to_string()])
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn info(id: &str, ty: &str, uapi: &str) -> InstanceInfo {
    InstanceInfo {
        id: id.into(),
        bindings: vec![("prog".into(), ty.into())],
        program_type: ty.into(),
        programs: vec![
            program("load#1", ty, uapi, &["bpf_get_current_task_btf"]),
            program(
                "load#2",
                ty,
                uapi,
                &["bpf_get_current_task_btf", "bpf_task_storage_get"],
            ),
        ],
    }
}

const KINDS: [(&str, &str); 3] = [
    ("syscall", "SYSCALL"),
    ("xdp", "XDP"),
    ("fentry", "TRACING"),
];

fn rejected(line: &str) -> Res {
    Res::Rejected {
        errno: "EINVAL".into(),
        line: line.into(),
    }
}

fn unsupported(reason: &str) -> Res {
    Res::Unsupported {
        reason: reason.into(),
    }
}

/// program_types on one kernel, by series.
fn program_types(k: &str) -> Vec<InstanceResult> {
    KINDS
        .iter()
        .map(|(ty, _)| {
            let id = format!("program_types/prog={ty}");
            let ok = |n| vec![("st", Res::Created { value_size: None }), ("load#1", Res::Loaded), ("current_task", Res::TaskPtr), (n, Res::Loaded), ("get", Res::Ptr { bytes: vec![7, 0, 0, 0, 0, 0, 0, 0], total: 8 })];
            let rs = match (k, *ty) {
                ("5.10", "syscall") => vec![("st", unsupported("map type task_storage")), ("load#1", unsupported("program type syscall")), ("load#2", unsupported("map type task_storage"))],
                ("5.10", _) => vec![("st", unsupported("map type task_storage")), ("load#1", unsupported("helper bpf_get_current_task_btf (#158) is unknown to this kernel")), ("load#2", unsupported("map type task_storage"))],
                ("6.1", "xdp") => vec![("st", Res::Created { value_size: None }), ("load#1", Res::Loaded), ("current_task", Res::TaskPtr), ("load#2", rejected("unknown func bpf_task_storage_get#156"))],
                ("6.12", "xdp") => vec![("st", Res::Created { value_size: None }), ("load#1", Res::Loaded), ("current_task", Res::TaskPtr), ("load#2", rejected("program of this type cannot use helper bpf_task_storage_get#156"))],
                ("host", "fentry") => {
                    let r = Res::Refused { errno: "EPERM".into(), what: "loading a fentry program".into() };
                    vec![("st", Res::Created { value_size: None }), ("load#1", r.clone()), ("load#2", r)]
                }
                _ => ok("load#2"),
            };
            let mut o = obs(&id, rs);
            if o.results.iter().any(|(_, r)| matches!(r, Res::Rejected { .. })) {
                o.logs = vec![("load#2".into(), "0: (85) call bpf_task_storage_get#156\nunknown func <script>alert(\"x\")</script>".into())];
            }
            result(o, VerdictKind::NoRule, &[])
        })
        .collect()
}

/// get_flags on one kernel: flags=0x2 must be refused with EINVAL; 6.1 returns a pointer.
fn get_flags(k: &str) -> Vec<InstanceResult> {
    if k == "5.10" {
        return ["flags=0x0", "flags=0x2"]
            .iter()
            .map(|f| {
                let mut o = obs(&format!("get_flags/{f}"), vec![]);
                o.outcome = Outcome::Unsupported {
                    reason: "map type task_storage".into(),
                };
                result(o, VerdictKind::NotRun, &[])
            })
            .collect();
    }
    let zero = obs(
        "get_flags/flags=0x0",
        vec![("load", Res::Loaded), ("get", Res::Null)],
    );
    let two = if k == "6.1" {
        result(
            obs(
                "get_flags/flags=0x2",
                vec![
                    ("load", Res::Loaded),
                    (
                        "get",
                        Res::Ptr {
                            bytes: vec![0; 8],
                            total: 8,
                        },
                    ),
                ],
            ),
            VerdictKind::Fail,
            &["get: expected NULL, got ptr:0x0 (unknown flags are refused)"],
        )
    } else {
        result(
            obs(
                "get_flags/flags=0x2",
                vec![("load", Res::Loaded), ("get", Res::Null)],
            ),
            VerdictKind::Pass,
            &[],
        )
    };
    vec![result(zero, VerdictKind::Pass, &[]), two]
}

fn odd(k: &str) -> Vec<InstanceResult> {
    let mut o = obs("odd/x=<b>&\"'", vec![("load", Res::Loaded)]);
    if k == "7.3" {
        o.outcome = Outcome::Error {
            message: "reading the result map: EFAULT".into(),
        };
        o.results.clear();
    }
    vec![result(o, VerdictKind::NoRule, &[])]
}

fn on(k: &str) -> Vec<InstanceResult> {
    let series = k.trim_start_matches("host-");
    let key = if k.starts_with("host") {
        "host"
    } else {
        series
    };
    let mut v = program_types(key);
    v.extend(get_flags(series));
    v.extend(odd(series));
    v
}

/// Seven kernels, in plan order: host first, then guests out of series order, one unusable.
pub fn sample() -> Results {
    let kernels = vec![
        kernel("host", "host-6.18", Some("6.18.0-1-amd64"), on("host-6.18")),
        kernel("debian:6.1", "6.1", Some("6.1.0-56-cloud-amd64"), on("6.1")),
        kernel(
            "debian:5.10",
            "5.10",
            Some("5.10.0-46-cloud-amd64"),
            on("5.10"),
        ),
        kernel("debian:6.16", "debian:6.16", None, vec![]),
        kernel(
            "debian:7.3",
            "7.3",
            Some("7.3.4+deb13-cloud-amd64"),
            on("7.3"),
        ),
        kernel(
            "debian:6.12",
            "6.12",
            Some("6.12.118+deb13-cloud-amd64"),
            on("6.12"),
        ),
        kernel(
            "debian:6.18",
            "6.18",
            Some("6.18.15+deb13-cloud-amd64"),
            on("6.18"),
        ),
    ];
    let mut program_types = CaseInfo {
        name: "program_types".into(),
        file: "cases/task_storage/program_types.json".into(),
        about: "which program types may call bpf_task_storage_get".into(),
        instances: KINDS
            .iter()
            .map(|(t, u)| info(&format!("program_types/prog={t}"), t, u))
            .collect(),
    };
    program_types.instances[0].programs[0].listing = "   0: r0 = 0\n   1: exit".into();
    let flags = CaseInfo {
        name: "get_flags".into(),
        file: "cases/task_storage/get_flags.json".into(),
        about: "flags of bpf_task_storage_get".into(),
        instances: ["flags=0x0", "flags=0x2"]
            .iter()
            .map(|f| InstanceInfo {
                id: format!("get_flags/{f}"),
                bindings: vec![("flags".into(), f.trim_start_matches("flags=").into())],
                program_type: "syscall".into(),
                programs: vec![program(
                    "load",
                    "syscall",
                    "SYSCALL",
                    &["bpf_task_storage_get"],
                )],
            })
            .collect(),
    };
    let odd = CaseInfo {
        name: "odd".into(),
        file: "cases/odd.json".into(),
        about: "text to escape: <script>alert('x')</script> & \"quotes\"".into(),
        instances: vec![InstanceInfo {
            id: "odd/x=<b>&\"'".into(),
            bindings: Vec::new(),
            program_type: "syscall".into(),
            programs: vec![program(
                "load",
                "syscall",
                "SYSCALL",
                &["kfunc bpf_task_release"],
            )],
        }],
    };
    Results {
        schema_version: SCHEMA_VERSION,
        runner: Runner {
            name: "bpfcase".into(),
            version: "0.1.0".into(),
        },
        plan: Plan {
            kernels: kernels.iter().map(|k| k.identity.spec.clone()).collect(),
            cases: vec![
                program_types.file.clone(),
                flags.file.clone(),
                odd.file.clone(),
            ],
            filters: Vec::new(),
        },
        shard: None,
        cases: vec![program_types, flags, odd],
        kernels,
    }
}
