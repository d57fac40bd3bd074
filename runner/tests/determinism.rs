//! Deterministic: three consecutive runs of the whole suite on one kernel give byte-identical
//! results — on the running kernel (three `bpfcase run` processes) and in a guest kernel (three
//! guests of one kernel in one `bpfcase vm`).
//!
//! The guest kernel is `BPFCASE_DETERMINISM_KERNEL`, else the second kernel `BPFCASE_KERNELS`
//! names (with `default`, Debian 6.1, where a deferred map free once changed a later instance's
//! result), else its first; without guest kernels that test says it is ignored.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod support;

const RUNS: usize = 3;

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

fn bpfcase(args: &[&str]) -> Result<String, Failed> {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(args)
        .arg(cases())
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    if out.stdout.is_empty() {
        return Err(format!(
            "bpfcase {args:?} printed nothing (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line where two runs differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    a.lines().zip(b.lines()).find(|(x, y)| x != y).map_or_else(
        || format!("{} lines vs {} lines", a.lines().count(), b.lines().count()),
        |(x, y)| format!("\n  {x}\n  {y}"),
    )
}

fn host() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let first = bpfcase(&["run", "--format", "json"])?;
    for i in 2..=RUNS {
        let again = bpfcase(&["run", "--format", "json"])?;
        if again != first {
            return Err(format!(
                "run {i} differs from run 1: {}",
                first_difference(&first, &again)
            )
            .into());
        }
    }
    Ok(Completion::Completed)
}

/// The guest kernel to repeat, if any.
fn guest_kernel() -> Option<String> {
    if let Ok(k) = std::env::var("BPFCASE_DETERMINISM_KERNEL") {
        return Some(k);
    }
    let kernels = support::guest_kernels();
    kernels.get(1).or(kernels.first()).cloned()
}

fn guest() -> Result<Completion, Failed> {
    let Some(kernel) = guest_kernel() else {
        return Ok(Completion::ignored_with(
            "needs guest kernels: set BPFCASE_KERNELS (scripts/test does)",
        ));
    };
    let three = [kernel.as_str(); RUNS].join(",");
    let out = bpfcase(&["vm", "--format", "json", "--jobs", "2", "--kernel", &three])?;
    // Each guest's records: its observation lines, in order, after its kernel record.
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for line in out.lines() {
        if line.starts_with("{\"kernel\":{") {
            runs.push(Vec::new());
        } else if line.contains("\"observation\"") {
            if let Some(r) = runs.last_mut() {
                r.push(line);
            }
        }
    }
    if runs.len() != RUNS || runs.iter().any(|r| r.len() < 100) {
        return Err(format!(
            "expected {RUNS} guests of {kernel} with the whole suite, got {:?} observations each",
            runs.iter().map(Vec::len).collect::<Vec<_>>()
        )
        .into());
    }
    for (i, r) in runs.iter().enumerate().skip(1) {
        if *r != runs[0] {
            let (a, b) = (runs[0].join("\n"), r.join("\n"));
            return Err(format!(
                "{kernel}: guest {} differs from guest 1: {}",
                i + 1,
                first_difference(&a, &b)
            )
            .into());
        }
    }
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(
        &args,
        vec![
            Trial::ignorable_test("host_three_runs", host),
            Trial::ignorable_test("guest_three_runs", guest),
        ],
    )
    .exit();
}
