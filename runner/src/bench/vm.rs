//! `bpfcase bench --kernel`: the cost of an instance inside a guest, from boots with the whole
//! selection and boots with its first instance only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bpfcase::pipeline;
use bpfcase::vm::qemu::Accel;
use bpfcase::vm::{self, kernels};

use super::{median, nothing_selected};
use crate::cli::{self, CliError};

/// Boots `kernel` `rounds` times with the whole selection and `rounds` times with its first
/// instance only; the difference gives the cost of an instance inside the guest.
pub fn bench_vm(
    kernel: &str,
    cases: &[PathBuf],
    filters: &[String],
    rounds: usize,
    manifest: &crate::vm_cmd::ManifestArg,
    append: &crate::vm_cmd::AppendArg,
) -> Result<ExitCode, CliError> {
    vm::procs::handle_signals();
    let loaded = cli::load(cases, filters)?;
    let n: usize = loaded.iter().map(|c| c.instances.len()).sum();
    let Some(first) = loaded.iter().flat_map(|c| c.instances.first()).next() else {
        return Err(nothing_selected(cases, filters));
    };
    let spec: kernels::KernelSpec = kernel
        .parse()
        .map_err(|e| CliError::kernel("--kernel", kernel, e))?;
    let manifest = manifest.load()?;
    let k = match kernels::resolve(&spec, Some(&manifest), &kernels::cache_dir()) {
        Ok(Some(k)) => {
            for w in &k.warnings {
                eprintln!("warning: {spec}: {w}");
            }
            k
        }
        Ok(None) => return Err(CliError::arg(
            "--kernel",
            kernel,
            "names the running kernel, which boots no guest: run `bpfcase bench` without --kernel",
        )),
        Err(e) => return Err(CliError::kernel("--kernel", kernel, e)),
    };
    let mut opts = vm::Options {
        append: append.params.clone(),
        ..vm::Options::default()
    };
    opts.check()
        .map_err(|e| CliError::arg("--append", append.params.join(" "), e))?;
    let one = vec![first.id.clone()];
    let just_one = cli::load(cases, &one)?;
    // One boot outside the measurement: it settles the accelerator (a first KVM attempt costs
    // its hello timeout) and warms the page cache; every measured boot then uses that one.
    let origin = k.origin.clone();
    match guest_run(&spec, &just_one, &one, &opts, &manifest) {
        Ok((run, notes)) => {
            for n in &notes {
                eprintln!("note: {n}");
            }
            let t = run.timings.first();
            eprintln!(
                "bench: warm-up boot in {:.2} s ({})",
                t.map_or(0.0, |t| t.total_s),
                t.map_or("?", |t| t.accel.as_str())
            );
            opts.accel = t.map(|t| {
                if t.accel == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            });
        }
        Err(e) => {
            eprintln!("bench: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    let (mut full, mut single, mut hello, mut initramfs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        for (sel, filter, into) in [
            (&loaded, filters.to_vec(), &mut full),
            (&just_one, one.clone(), &mut single),
        ] {
            let run = match guest_run(&spec, sel, &filter, &opts, &manifest) {
                Ok((run, _)) => run,
                Err(e) => {
                    eprintln!("bench: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let Some(t) = run.timings.first().filter(|_| run.problems.is_empty()) else {
                eprintln!("bench: the guest did not finish: {:?}", run.problems);
                return Ok(ExitCode::from(1));
            };
            into.push(Duration::from_secs_f64(t.total_s));
            hello.extend(t.boot_s.map(Duration::from_secs_f64));
            initramfs.extend(t.initramfs_s.map(Duration::from_secs_f64));
            eprintln!(
                "bench: {} instance(s) in {:.2} s ({})",
                if filter == one { 1 } else { n },
                t.total_s,
                t.accel
            );
        }
    }
    let f = median(&mut full);
    let o = median(&mut single);
    let per = f.saturating_sub(o).as_secs_f64() / (n.max(2) - 1) as f64;
    println!("kernel: {origin}");
    println!(
        "boots: {} with {n} instances, {} with 1",
        full.len(),
        single.len()
    );
    println!(
        "initramfs build: median {:.1} ms",
        median(&mut initramfs).as_secs_f64() * 1e3
    );
    println!(
        "boot to runner: median {:.2} s",
        median(&mut hello).as_secs_f64()
    );
    println!(
        "boot to result, {n} instances: median {:.2} s (min {:.2}, max {:.2})",
        f.as_secs_f64(),
        full[0].as_secs_f64(),
        full[full.len() - 1].as_secs_f64()
    );
    println!(
        "boot to result, 1 instance: median {:.2} s",
        o.as_secs_f64()
    );
    println!("per extra instance in the guest: {:.2} ms", per * 1e3);
    Ok(ExitCode::SUCCESS)
}

/// One guest of `spec` through the run pipeline: its run and the notes for the user, or why
/// it could not run.
fn guest_run(
    spec: &kernels::KernelSpec,
    cases: &[bpfcase::case::Case],
    filters: &[String],
    opts: &vm::Options,
    manifest: &kernels::Manifest,
) -> Result<(bpfcase::results::KernelRun, Vec<String>), String> {
    let plan = pipeline::Plan {
        kernels: vec![spec.clone()],
        cases,
        filters: filters.to_vec(),
        manifest: Some(manifest.clone()),
        options: opts.clone(),
        jobs: 1,
        shard: None,
        explain: cli::kernel_problem,
    };
    let mut notes = Vec::new();
    let r = pipeline::run(&plan, &mut |e| {
        if let pipeline::Event::KernelDone { notes: n, .. } = e {
            notes.extend(n.iter().cloned());
        }
    });
    let run = r.kernels.into_iter().next().ok_or("no kernel ran")?;
    match &run.unusable {
        Some(u) => Err(u.clone()),
        None => Ok((run, notes)),
    }
}
