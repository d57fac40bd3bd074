//! `bpfcase bench`: the cost of one instance (compile + load + run + observe + close) against
//! the floor measured in the same run — a minimal SYSCALL program loaded and test-run through
//! libbpf-sys directly. Rounds interleave floor and instances so that drift hits both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bpfcase::bpf;
use bpfcase::case::CaseError;
use bpfcase::exec::{Env, Outcome};

pub fn bench(cases: &[PathBuf], filters: &[String], rounds: usize) -> Result<ExitCode, CaseError> {
    let cases = crate::load(cases, filters)?;
    let instances: Vec<_> = cases.iter().flat_map(|c| c.instances.iter()).collect();
    if instances.is_empty() {
        eprintln!("bench: no instance selected");
        return Ok(ExitCode::from(2));
    }
    let mut env = Env::new();
    // Warm-up: probes, kernel BTF, caches, page faults.
    for i in &instances {
        let obs = env.run(i);
        if let Outcome::Refused { errno, what } = obs.outcome {
            eprintln!("bench: refused ({errno}: {what}); run as root");
            return Ok(ExitCode::from(1));
        }
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
        "whole selection per round: {:.1} ms",
        total.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
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
