//! `bpfcase bench --matrix`: the figures of the whole matrix — the running kernel (when
//! permitted) and every kernel of the manifest, kernels cached — as one `report` run makes
//! them: wall time, and per kernel where its time went (boot to the runner, cases, total).

use std::process::ExitCode;
use std::time::Instant;

use bpfcase::pipeline::{self, Event, Plan};
use bpfcase::results::Breakdown;
use bpfcase::vm::procs;

use crate::cli::{self, CliError, Selection};
use crate::vm_cmd::{self, ManifestArg};

pub fn matrix(
    sel: &Selection,
    words: &[String],
    jobs: usize,
    manifest: &ManifestArg,
) -> Result<ExitCode, CliError> {
    procs::handle_signals();
    let loaded = cli::load(&sel.cases, &sel.filter)?;
    let m = manifest.load()?;
    let mut words = words.to_vec();
    if words.is_empty() {
        if bpfcase::exec::host_unavailable().is_none() {
            words.push("host".into());
        }
        words.push("manifest".into());
    }
    let kernels = vm_cmd::specs("--kernel", &words, &m)?;
    let plan = Plan {
        kernels,
        cases: &loaded,
        filters: sel.filter.clone(),
        manifest: Some(m),
        options: bpfcase::vm::Options {
            cache: Some(bpfcase::vm::kernels::cache_dir()),
            ..bpfcase::vm::Options::default()
        },
        jobs: jobs.max(1),
        shard: None,
        explain: cli::kernel_problem,
    };
    let t0 = Instant::now();
    let mut done = Vec::new();
    let results = pipeline::run(&plan, &mut |e| {
        if let Event::KernelDone { run, .. } = e {
            done.push((run.identity.label.clone(), t0.elapsed().as_secs_f64()));
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let instances: usize = loaded.iter().map(|c| c.instances.len()).sum();
    println!(
        "matrix: {} kernels × {instances} instances, --jobs {}: {wall:.1} s wall",
        results.kernels.len(),
        plan.jobs
    );
    println!(
        "{:<12} {:>6} {:>8} {:>8} {:>8} {:>9}",
        "kernel", "accel", "boot s", "cases s", "total s", "done at s"
    );
    let mut failed = false;
    for k in &results.kernels {
        let at = done
            .iter()
            .find(|(l, _)| *l == k.identity.label)
            .map_or(0.0, |d| d.1);
        match (k.timings.first(), &k.unusable) {
            (Some(t), None) => {
                let boot = t.boot_s.unwrap_or(0.0);
                println!(
                    "{:<12} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>9.1}",
                    k.identity.label,
                    t.accel,
                    boot,
                    (t.total_s - boot).max(0.0),
                    t.total_s,
                    at
                );
            }
            (_, why) => {
                failed = true;
                println!(
                    "{:<12} cannot run: {}",
                    k.identity.label,
                    why.as_deref().unwrap_or("no timing")
                );
            }
        }
    }
    let guests: Vec<f64> = results
        .kernels
        .iter()
        .filter(|k| k.identity.spec != "host")
        .filter_map(|k| k.timings.first().map(|t| t.total_s))
        .collect();
    if !guests.is_empty() {
        let mut g = guests.clone();
        g.sort_by(f64::total_cmp);
        println!(
            "one guest, boot + full suite: median {:.2} s (min {:.2}, max {:.2}); sum of guests {:.1} s",
            g[g.len() / 2],
            g[0],
            g[g.len() - 1],
            g.iter().sum::<f64>()
        );
    }
    print_breakdowns(&results.kernels);
    Ok(if failed {
        ExitCode::from(cli::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many case files the breakdown names, slowest first.
const SLOWEST: usize = 8;

/// Where each kernel's time went, as its runner measured it (a guest by its own clock):
/// receiving the cases, each phase of the instances, sending observations back; then the case
/// files that cost most over all kernels.
fn print_breakdowns(kernels: &[bpfcase::results::KernelRun]) {
    let breakdowns: Vec<(&str, &Breakdown)> = kernels
        .iter()
        .filter_map(|k| {
            let b = k.timings.first()?.breakdown.as_ref()?;
            Some((k.identity.label.as_str(), b))
        })
        .collect();
    let Some((_, first)) = breakdowns.first() else {
        return;
    };
    let phases: Vec<&str> = first.phases.iter().map(|p| p.phase.as_str()).collect();
    println!();
    println!("inside the runner, seconds by its clock:");
    print!("{:<12} {:>8}", "kernel", "delivery");
    for p in &phases {
        print!(" {p:>8}");
    }
    println!(
        " {:>9}  anchors (quickest attach+detach without/with)",
        "transport"
    );
    for (label, b) in &breakdowns {
        print!("{label:<12} {:>8}", opt(b.delivery_s));
        for p in &phases {
            let s = b.phases.iter().find(|x| x.phase == *p).map(|x| x.s);
            print!(" {:>8}", opt(s));
        }
        println!(
            " {:>9}  {}",
            opt(b.transport_s),
            b.anchors.as_deref().unwrap_or("-")
        );
    }
    let mut per_case: Vec<(&str, usize, f64)> = Vec::new();
    for (_, b) in &breakdowns {
        for c in &b.cases {
            match per_case.iter_mut().find(|x| x.0 == c.case) {
                Some(x) => x.2 += c.s,
                None => per_case.push((&c.case, c.instances, c.s)),
            }
        }
    }
    per_case.sort_by(|a, b| b.2.total_cmp(&a.2));
    let all: f64 = per_case.iter().map(|c| c.2).sum();
    println!(
        "slowest case files, summed over {} kernels ({all:.1} s in all):",
        breakdowns.len()
    );
    for (case, n, s) in per_case.iter().take(SLOWEST) {
        println!(
            "  {case:<40} {n:>4} instances {s:>7.1} s ({:.0} %)",
            100.0 * s / all.max(f64::MIN_POSITIVE)
        );
    }
}

fn opt(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.2}"))
}
