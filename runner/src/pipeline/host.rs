//! The running kernel: instances run natively on a thread of this process.

use std::time::Instant;

use super::kernel::{instance_result, summarize};
use super::Event;
use crate::case::{Case, Instance};
use crate::exec::timing::Phase;
use crate::exec::{Env, Observation};
use crate::results::{Breakdown, CaseTime, KernelIdentity, KernelRun, PhaseTime, Timing};

/// The one loop over instances, wherever it runs (the host, a guest's init, `bpfcase run`):
/// each instance of each case in order, with its observation. Returns each case file's time
/// (what `each` did included).
pub fn run_instances(
    env: &mut Env,
    cases: &[&Case],
    each: &mut dyn FnMut(&Case, &Instance, Observation),
) -> Vec<CaseTime> {
    let mut times = Vec::with_capacity(cases.len());
    for c in cases {
        let t0 = Instant::now();
        for inst in &c.instances {
            let obs = env.run(inst);
            each(c, inst, obs);
        }
        times.push(CaseTime {
            case: c.name.clone(),
            instances: c.instances.len(),
            s: secs(t0.elapsed()),
        });
    }
    times
}

/// Where `env`'s instances spent their time, with each case file's time from
/// [`run_instances`].
pub fn breakdown(env: &Env, cases: Vec<CaseTime>) -> Breakdown {
    let t = env.timings();
    Breakdown {
        delivery_s: None,
        transport_s: None,
        anchors: Some(env.anchoring()),
        phases: Phase::ALL
            .iter()
            .map(|&p| PhaseTime {
                phase: p.name().to_string(),
                s: secs(t.get(p)),
            })
            .collect(),
        cases,
    }
}

/// The running kernel, as results name it.
pub fn identity() -> KernelIdentity {
    let uts = nix::sys::utsname::uname().ok();
    let text = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref().map(|u| f(u).to_string_lossy().into_owned())
    };
    let release = text(nix::sys::utsname::UtsName::release);
    KernelIdentity {
        spec: "host".into(),
        label: format!(
            "host-{}",
            crate::vm::label(release.as_deref().unwrap_or(""))
        ),
        release,
        build: text(nix::sys::utsname::UtsName::version),
        origin: "the running kernel".into(),
        package: None,
        package_version: None,
        image_sha256: None,
        btf: Some(std::path::Path::new("/sys/kernel/btf/vmlinux").exists()),
    }
}

pub(super) fn run(k: usize, cases: &[&Case], emit: &mut dyn FnMut(Event)) -> KernelRun {
    let t0 = Instant::now();
    let identity = identity();
    let release = identity.release.clone();
    let total = cases.iter().map(|c| c.instances.len()).sum();
    emit(Event::Started {
        kernel: k,
        instances: total,
    });
    let mut env = Env::new();
    let mut instances = Vec::new();
    let times = run_instances(&mut env, cases, &mut |c, inst, obs| {
        let r = instance_result(&c.name, inst, obs, release.as_deref());
        emit(Event::Instance {
            kernel: k,
            result: Box::new(r.clone()),
        });
        instances.push(r);
        emit(Event::Progress {
            kernel: k,
            done: instances.len(),
        });
    });
    let run = KernelRun {
        identity,
        unusable: None,
        problems: Vec::new(),
        did_not_report: Vec::new(),
        timings: vec![Timing {
            accel: "native".into(),
            start: None,
            initramfs_s: None,
            boot_s: None,
            total_s: secs(t0.elapsed()),
            breakdown: Some(breakdown(&env, times)),
        }],
        summary: summarize(&instances),
        instances,
    };
    emit(Event::KernelDone {
        kernel: k,
        run: Box::new(run.clone()),
        notes: Vec::new(),
        console_tail: String::new(),
    });
    run
}

/// Seconds, to the millisecond.
pub fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
