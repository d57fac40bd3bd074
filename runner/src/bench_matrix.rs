//! `bpfcase bench --matrix`: the figures of the whole matrix — the running kernel (when
//! permitted) and every kernel of the manifest, kernels cached — as one `report` run makes
//! them: wall time, and per kernel where its time went (boot to the runner, cases, total).

use std::process::ExitCode;
use std::time::Instant;

use bpfcase::pipeline::{self, Event, Plan};
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
    Ok(if failed {
        ExitCode::from(cli::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
