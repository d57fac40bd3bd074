//! Kernel tests on the running kernel: one test per case file, named `host-<major>.<minor>::<case>`,
//! asserting the insta snapshot `snapshots/<case>@host-<major>.<minor>.snap`.
//!
//! Needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN). Without it every test reports itself
//! ignored with the reason; none passes. The cases run in the `bpfcase` binary, a
//! single-threaded process, so that "current" in a program and "self" in user space are the
//! same task.

use std::path::{Path, PathBuf};
use std::process::Command;

use bpfcase::bpf::{self, MapParams};
use bpfcase::case;
use bpfcase::exec::Observation;
use bpfcase::report;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `host-<major>.<minor>` from the running kernel's release.
fn label() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    format!("host-{major}.{minor}")
}

/// Why the host cannot run cases, if it cannot.
fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN): run scripts/test as root".into(),
        );
    }
    let probe = bpf::map_create(&MapParams {
        map_type: 2,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        flags: 0,
        btf: None,
    });
    match probe {
        Ok(_) => None,
        Err(e) => Some(format!(
            "this kernel refuses BPF_MAP_CREATE ({}): no BPF here",
            e.name()
        )),
    }
}

/// Snapshot name of a case file: its path under `cases/`, `/` → `__`, without `.json`.
fn snapshot_name(file: &Path, cases: &Path) -> String {
    let rel = file.strip_prefix(cases).unwrap_or(file);
    rel.with_extension("").to_string_lossy().replace('/', "__")
}

fn run_case(file: &Path, name: &str, label: &str) -> Result<Completion, Failed> {
    let c = case::load(file).map_err(|e| Failed::from(e.to_string()))?;
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(["run", "--format", "json"])
        .arg(file)
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut observations = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Failed::from(format!("bad output line {line:?}: {e}")))?;
        if let Some(o) = v.get("observation") {
            let obs: Observation = serde_json::from_value(o.clone())
                .map_err(|e| Failed::from(format!("bad observation {o}: {e}")))?;
            if let Some(f) = v.get("verdict").and_then(|v| v.get("fail")) {
                eprintln!(
                    "{label}::{name}: {} differs from its expectations: {f}",
                    obs.id
                );
            }
            observations.push(obs);
        }
    }
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
    let text = report::snapshot(&c, &observations);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(workspace().join("snapshots"));
    settings.set_snapshot_suffix(label);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(file);
    // A mismatch panics; libtest-mimic reports the panic as this test's failure.
    settings.bind(|| insta::assert_snapshot!(name.to_string(), text));
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let cases_dir = workspace().join("cases");
    let label = label();
    let files = case::discover(std::slice::from_ref(&cases_dir)).unwrap_or_default();
    let skip = unavailable();
    let trials = files
        .into_iter()
        .map(|file| {
            let name = snapshot_name(&file, &cases_dir);
            let test_name = format!("{label}::{name}");
            let (skip, label) = (skip.clone(), label.clone());
            Trial::ignorable_test(test_name, move || match skip {
                Some(reason) => Ok(Completion::ignored_with(reason)),
                None => run_case(&file, &name, &label),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
