//! Kernel tests: one test per case file and kernel, asserting the insta snapshot
//! `snapshots/<case>@<label>.snap`.
//!
//! - The running kernel (`host-<major>.<minor>`): needs root (CAP_BPF, CAP_PERFMON and
//!   CAP_NET_ADMIN, or CAP_SYS_ADMIN); without it these tests report themselves ignored, with the
//!   reason. Cases run in the `bpfcase` binary, a single-threaded process, so that "current" in
//!   a program and "self" in user space are the same task.
//! - Guest kernels (`<major>.<minor>`), listed in `BPFCASE_KERNELS` (comma-separated
//!   `debian:<series>`, image paths, or `default` for the manifest's default set): each kernel
//!   boots once in QEMU (`bpfcase vm`), then its tests compare their cases. Needs no root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use bpfcase::case::{self, Case};
use bpfcase::exec::Observation;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod snapshot_support;
mod support;
use snapshot_support::{assert_case_snapshot, host_label, snapshot_name};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace exists")
}

/// Why the host cannot run cases, if it cannot: the privileges `bpfcase run` checks first (it
/// would exit with 3), then whether the kernel has BPF at all.
fn host_unavailable() -> Option<String> {
    bpfcase::exec::host_unavailable().map(|why| format!("{why} Run scripts/test as root."))
}

fn assert_snapshot(
    c: &Case,
    rel: &Path,
    label: &str,
    observations: &[Observation],
) -> Result<Completion, Failed> {
    assert_case_snapshot(&workspace().join("snapshots"), c, rel, label, observations)
}

/// Observations by case file.
type ByFile = HashMap<String, Vec<Observation>>;

/// Kernel records and observations from `run`/`vm --format json` output lines.
fn parse_records(stdout: &str) -> Result<(Vec<serde_json::Value>, ByFile), Failed> {
    let mut kernels = Vec::new();
    let mut by_file = ByFile::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Failed::from(format!("bad output line {line:?}: {e}")))?;
        if v.get("summary").is_some() {
            continue;
        }
        if let Some(k) = v.get("kernel").filter(|k| k.is_object()) {
            kernels.push(k.clone());
            continue;
        }
        let obs: Observation = serde_json::from_value(v["observation"].clone())
            .map_err(|e| Failed::from(format!("bad observation in {line}: {e}")))?;
        let file = v
            .get("file")
            .and_then(|f| f.as_str())
            .unwrap_or_default()
            .to_string();
        by_file.entry(file).or_default().push(obs);
    }
    Ok((kernels, by_file))
}

fn host_case(file: &Path, rel: &Path, label: &str) -> Result<Completion, Failed> {
    let c = case::load(file).map_err(|e| Failed::from(e.to_string()))?;
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(["run", "--format", "json"])
        .arg(file)
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    let (_, by_file) = parse_records(&String::from_utf8_lossy(&out.stdout))?;
    let observations = by_file.into_values().next().unwrap_or_default();
    if observations.len() != c.instances.len() {
        return Err(format!(
            "bpfcase ran {} of {} instances (exit {:?}): {}",
            observations.len(),
            c.instances.len(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    assert_snapshot(&c, rel, label, &observations)
}

/// One guest kernel's run, shared by its tests: (label, observations by case file) or why it failed.
type GuestResult = Result<(String, ByFile), String>;

fn guest_run(spec: &str) -> GuestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args([
            "vm", "--format", "json", "--jobs", "1", "--kernel", spec, "cases",
        ])
        .current_dir(workspace())
        .output()
        .map_err(|e| format!("cannot start bpfcase vm: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (kernels, by_file) = parse_records(&stdout).map_err(|e| format!("{e:?}"))?;
    let k = kernels.first().ok_or_else(|| {
        format!(
            "bpfcase vm printed no kernel record (exit {:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = k.get("error").and_then(|e| e.as_str()) {
        return Err(format!("{spec} cannot run: {e}"));
    }
    if let Some(u) = k.get("unusable").and_then(|u| u.as_str()) {
        return Err(format!("{spec} cannot serve: {u}"));
    }
    let problems: Vec<&str> = k["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    if !problems.is_empty() {
        return Err(format!(
            "{spec}: the guest reported problems:\n{}\n-- console:\n{}",
            problems.join("\n"),
            k["console_tail"].as_str().unwrap_or("")
        ));
    }
    let label = k["label"].as_str().ok_or("no kernel label")?.to_string();
    // One entry per boot of the kernel (a guest that had to be booted again has more): the last.
    let t = k["timings"]
        .as_array()
        .and_then(|a| a.last())
        .unwrap_or(&serde_json::Value::Null);
    eprintln!(
        "{spec}: {} ({} start) booted to the runner in {} s, {} s in all ({})",
        k["origin"].as_str().unwrap_or("?"),
        t["start"].as_str().unwrap_or("?"),
        t["boot_s"],
        t["total_s"],
        t["accel"].as_str().unwrap_or("?")
    );
    Ok((label, by_file))
}

fn main() {
    let args = Arguments::from_args();
    let cases_dir = workspace().join("cases");
    let files = case::discover(std::slice::from_ref(&cases_dir)).unwrap_or_default();
    let rel = |f: &Path| f.strip_prefix(&cases_dir).unwrap_or(f).to_path_buf();
    let mut trials = Vec::new();

    let label = host_label();
    let skip = host_unavailable();
    for file in &files {
        let (file, rel, label, skip) = (file.clone(), rel(file), label.clone(), skip.clone());
        trials.push(Trial::ignorable_test(
            format!("{label}::{}", snapshot_name(&rel)),
            move || match skip {
                Some(reason) => Ok(Completion::ignored_with(reason)),
                None => host_case(&file, &rel, &label),
            },
        ));
    }

    for spec in support::guest_kernels() {
        let shared: Arc<OnceLock<GuestResult>> = Arc::new(OnceLock::new());
        let gate = Arc::new(Mutex::new(()));
        for file in &files {
            let (rel, spec, shared, gate) = (rel(file), spec.clone(), shared.clone(), gate.clone());
            let name = format!("{}::{}", spec.replace(':', "-"), snapshot_name(&rel));
            trials.push(Trial::test(name, move || {
                let result = {
                    let _one_boot = gate.lock();
                    shared.get_or_init(|| guest_run(&spec))
                };
                let (label, by_file) = result.as_ref().map_err(|e| Failed::from(e.clone()))?;
                let c = case::load(&workspace().join("cases").join(&rel))
                    .map_err(|e| Failed::from(e.to_string()))?;
                let key = Path::new("cases").join(&rel).display().to_string();
                let observations = by_file.get(&key).cloned().unwrap_or_default();
                assert_snapshot(&c, &rel, label, &observations).map(|_| ())
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
