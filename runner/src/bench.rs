//! `bpfcase bench`: the cost of one instance (compile + load + run + observe + close) against
//! the floor measured in the same run — a minimal SYSCALL program loaded and test-run through
//! libbpf-sys directly. Rounds interleave floor and instances so that drift hits both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bpfcase::bpf;
use bpfcase::exec::{Env, Outcome};
use bpfcase::pipeline;
use bpfcase::vm::qemu::Accel;
use bpfcase::vm::{self, kernels};

use crate::cli::{self, CliError};

pub fn bench(cases: &[PathBuf], filters: &[String], rounds: usize) -> Result<ExitCode, CliError> {
    bpfcase::exec::check_privileges()?;
    let loaded = cli::load(cases, filters)?;
    let instances: Vec<_> = loaded.iter().flat_map(|c| c.instances.iter()).collect();
    if instances.is_empty() {
        return Err(nothing_selected(cases, filters));
    }
    let mut env = Env::new();
    // Warm-up (probes, kernel BTF, caches, page faults); instances this kernel refuses or
    // lacks prerequisites for measure nothing and are left out.
    let total = instances.len();
    let instances: Vec<_> = instances
        .into_iter()
        .filter(|i| matches!(env.run(i).outcome, Outcome::Ran))
        .collect();
    if instances.is_empty() {
        eprintln!("bench: no instance runs here (refused or unsupported); run as root");
        return Ok(ExitCode::from(1));
    }
    if instances.len() < total {
        println!(
            "left out: {} of {total} instances (refused or unsupported here)",
            total - instances.len()
        );
    }
    if let Err(e) = bpf::floor_once() {
        eprintln!("bench: the floor program fails to run: {}", e.name());
        return Ok(ExitCode::from(1));
    }
    let n = instances.len();
    let mut floor = Vec::with_capacity(rounds * n);
    let mut inst = Vec::with_capacity(rounds * n);
    for _ in 0..rounds.max(1) {
        for _ in 0..n {
            let t = Instant::now();
            let _ = bpf::floor_once();
            floor.push(t.elapsed());
        }
        for i in &instances {
            let t = Instant::now();
            let _ = env.run(i);
            inst.push(t.elapsed());
        }
    }
    let f = median(&mut floor);
    let m = median(&mut inst);
    let total: Duration = inst.iter().sum::<Duration>() / rounds.max(1) as u32;
    println!("instances: {n} per round, {} rounds", rounds.max(1));
    println!(
        "floor (load+test_run+close of `r0 = 0; exit`): median {:.1} µs, p90 {:.1} µs",
        us(f),
        us(p90(&floor))
    );
    println!(
        "instance (compile+maps+load+run+observe+close): median {:.1} µs, p90 {:.1} µs",
        us(m),
        us(p90(&inst))
    );
    println!(
        "ratio instance/floor (medians): {:.2}",
        m.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "where an instance's other kernel time goes (medians of {} calls each, same run):",
        rounds.max(1) * 10
    );
    for (what, d) in breakdown(rounds.max(1) * 10) {
        println!("  {what:<58} {:>7.1} µs", us(d));
    }
    println!(
        "whole selection per round: {:.1} ms",
        total.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

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

/// Bad input: the selection is empty.
fn nothing_selected(cases: &[PathBuf], filters: &[String]) -> CliError {
    if filters.is_empty() {
        let given: Vec<String> = cases.iter().map(|c| c.display().to_string()).collect();
        CliError::arg(
            "cases",
            if given.is_empty() {
                "cases".into()
            } else {
                given.join(" ")
            },
            "hold no case file: name `*.json` case files or folders that hold them",
        )
    } else {
        CliError::arg(
            "--filter",
            filters.join("` `"),
            "selects no instance: `bpfcase list` prints the ids",
        )
    }
}

/// The kernel calls an instance makes besides its program, each timed alone.
fn breakdown(n: usize) -> Vec<(&'static str, Duration)> {
    use bpfcase::bpf::{MapBtf, MapParams};
    let time = |f: &mut dyn FnMut()| {
        let mut v: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        median(&mut v)
    };
    fn ts(btf: Option<&MapBtf>) -> MapParams<'_> {
        MapParams {
            map_type: 29,
            key_size: 4,
            value_size: 8,
            max_entries: 0,
            flags: 1,
            btf,
        }
    }
    let array = MapParams {
        map_type: 2,
        key_size: 4,
        value_size: 32,
        max_entries: 1,
        flags: 0,
        btf: None,
    };
    let mut out = Vec::new();
    out.push((
        "BTF for a map: build, load, free",
        time(&mut || drop(MapBtf::new(4, 8))),
    ));
    if let Ok(btf) = MapBtf::new(4, 8) {
        out.push((
            "task storage map: create, close",
            time(&mut || drop(bpf::map_create(&ts(Some(&btf))))),
        ));
        if let Ok(pidfd) = bpf::pidfd_open(std::process::id() as i32) {
            use std::os::fd::AsRawFd;
            let key = pidfd.as_raw_fd().to_ne_bytes();
            out.push((
                "task storage map with one element: create, update, close",
                time(&mut || {
                    if let Ok(m) = bpf::map_create(&ts(Some(&btf))) {
                        let _ = bpf::map_update(&m, &key, &[0u8; 8], 0);
                    }
                }),
            ));
        }
    }
    out.push((
        "result map (array): create, close",
        time(&mut || drop(bpf::map_create(&array))),
    ));
    out.push((
        "pidfd of the runner: open, close",
        time(&mut || drop(bpf::pidfd_open(std::process::id() as i32))),
    ));
    out
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &[Duration]) -> Duration {
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
