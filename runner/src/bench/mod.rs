//! `bpfcase bench`: the cost of one instance (compile + maps + load + run + observe + close)
//! against the floor measured in the same run — a minimal SYSCALL program loaded and test-run
//! through libbpf-sys directly — with the executor keeping objects between instances (the
//! default) and with every object fresh, and where an instance's time goes. Rounds interleave
//! floor and both executors so that drift hits all three.

mod vm;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bpfcase::bpf;
use bpfcase::exec::timing::Phase;
use bpfcase::exec::{Env, Outcome, Timings};

use crate::cli::{self, CliError};
pub use vm::bench_vm;

pub fn bench(cases: &[PathBuf], filters: &[String], rounds: usize) -> Result<ExitCode, CliError> {
    bpfcase::exec::check_privileges()?;
    let loaded = cli::load(cases, filters)?;
    let instances: Vec<_> = loaded.iter().flat_map(|c| c.instances.iter()).collect();
    if instances.is_empty() {
        return Err(nothing_selected(cases, filters));
    }
    let rounds = rounds.max(1);
    // Warm-up on the fresh executor (probes, kernel BTF, page faults); instances this kernel
    // refuses or lacks prerequisites for measure nothing and are left out.
    let mut fresh = Env::new();
    fresh.reuse = false;
    let total = instances.len();
    let instances: Vec<_> = instances
        .into_iter()
        .filter(|i| matches!(fresh.run(i).outcome, Outcome::Ran))
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
    // The first pass of the keeping executor: every cache starts empty.
    let mut kept = Env::new();
    let t = Instant::now();
    for i in &instances {
        let _ = kept.run(i);
    }
    let first = t.elapsed();
    let first_counts = kept.timings().counts;
    kept.reset_timings();
    fresh.reset_timings();
    let (mut floor, mut on, mut off) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..n {
            let t = Instant::now();
            let _ = bpf::floor_once();
            floor.push(t.elapsed());
        }
        for (env, into) in [(&mut kept, &mut on), (&mut fresh, &mut off)] {
            for i in &instances {
                let t = Instant::now();
                let _ = env.run(i);
                into.push(t.elapsed());
            }
        }
    }
    let per_round = |v: &[Duration]| v.iter().sum::<Duration>() / rounds as u32;
    let (round_on, round_off) = (per_round(&on), per_round(&off));
    let f = median(&mut floor);
    println!("instances: {n} per round, {rounds} rounds");
    println!(
        "floor (load+test_run+close of `r0 = 0; exit`): median {:.1} µs, p90 {:.1} µs",
        us(f),
        us(p90(&floor))
    );
    for (what, v) in [
        ("kept objects (default)", &mut on),
        ("every object fresh", &mut off),
    ] {
        let m = median(v);
        println!(
            "instance, {what}: median {:.1} µs, p90 {:.1} µs, ratio to the floor {:.2}",
            us(m),
            us(p90(v)),
            m.as_secs_f64() / f.as_secs_f64()
        );
    }
    println!(
        "first pass with kept objects (caches filling): {:.1} µs per instance; {} of {} loads from the cache",
        us(first / n as u32),
        first_counts.progs_reused,
        first_counts.progs_reused + first_counts.progs_loaded
    );
    println!("where an instance's time goes (mean µs per instance over the rounds):");
    println!("  {:<50} {:>8} {:>8}", "", "kept", "fresh");
    let rows = breakdown_rows(
        kept.timings(),
        fresh.timings(),
        [round_on / n as u32, round_off / n as u32],
    );
    for (what, a, b) in rows {
        println!("  {what:<50} {a:>8.1} {b:>8.1}");
    }
    println!("kernel objects per instance (made new + taken back):");
    for (what, a, b) in object_rows(kept.timings(), fresh.timings()) {
        println!("  {what:<50} {a:>8} {b:>8}");
    }
    println!(
        "the same kernel calls alone, outside instances (medians of {} calls each):",
        rounds * 10
    );
    for (what, d) in kernel_calls(rounds * 10) {
        println!("  {what:<58} {:>7.1} µs", us(d));
    }
    println!(
        "whole selection per round: {:.1} ms with kept objects, {:.1} ms fresh",
        round_on.as_secs_f64() * 1e3,
        round_off.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

/// Mean µs per instance of each phase, what the phases do not cover (bookkeeping, the
/// observation record), and the whole, for two executors whose instance means are `whole`.
fn breakdown_rows(a: &Timings, b: &Timings, whole: [Duration; 2]) -> Vec<(String, f64, f64)> {
    let per = |t: &Timings, d: Duration| us(d) / t.counts.instances.max(1) as f64;
    let mut rows: Vec<(String, f64, f64)> = Phase::ALL
        .iter()
        .map(|p| (p.words().to_string(), per(a, a.get(*p)), per(b, b.get(*p))))
        .collect();
    let (ta, tb) = (per(a, a.total()), per(b, b.total()));
    rows.push((
        "outside the phases".into(),
        (us(whole[0]) - ta).max(0.0),
        (us(whole[1]) - tb).max(0.0),
    ));
    rows.push(("whole instance (mean)".into(), us(whole[0]), us(whole[1])));
    rows
}

/// Objects per instance, made new + taken from an earlier instance, as "new+kept".
fn object_rows(a: &Timings, b: &Timings) -> Vec<(&'static str, String, String)> {
    let row = |t: &Timings, new: u64, old: u64| {
        let n = t.counts.instances.max(1) as f64;
        format!("{:.2}+{:.2}", new as f64 / n, old as f64 / n)
    };
    let (ca, cb) = (a.counts, b.counts);
    vec![
        (
            "program loads (verified + from the cache)",
            row(a, ca.progs_loaded, ca.progs_reused),
            row(b, cb.progs_loaded, cb.progs_reused),
        ),
        (
            "maps (created + kept)",
            row(a, ca.maps_created, ca.maps_reused),
            row(b, cb.maps_created, cb.maps_reused),
        ),
        (
            "result maps (created + kept)",
            row(a, ca.result_maps_created, ca.result_maps_reused),
            row(b, cb.result_maps_created, cb.result_maps_reused),
        ),
        (
            "map BTF (built + kept)",
            row(a, ca.btf_built, ca.btf_reused),
            row(b, cb.btf_built, cb.btf_reused),
        ),
    ]
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

/// The kernel calls a fresh instance makes besides its program, each timed alone.
fn kernel_calls(n: usize) -> Vec<(&'static str, Duration)> {
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
