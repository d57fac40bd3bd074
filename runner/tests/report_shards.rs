//! The sharded report, as a CI matrix runs it (docs/github-actions.yml), reproduced locally:
//! `bpfcase report --shard I/N` for every shard, `bpfcase merge` of their results, then
//! `bpfcase report --from` the merged file must give exactly the report of one unsharded run —
//! every rendered file byte for byte, and results.json apart from timings.
//!
//! Kernels: the running kernel when permitted, and the first two guest kernels of
//! `BPFCASE_KERNELS`. Three shards over three kernels and three case files split one kernel's
//! cases between two shards (and two guests).

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod support;

const FILTERS: &[&str] = &["program_types/*", "map_create/*", "get_args/*"];
const SHARDS: u32 = 3;

fn report(kernels: &str, extra: &[&str], out: &Path) -> Result<(), Failed> {
    let mut c = support::bpfcase(&support::new_mark("report"));
    c.arg("report")
        .args(["--kernel", kernels, "--out"])
        .arg(out);
    for f in FILTERS {
        c.args(["--filter", f]);
    }
    let o = c
        .args(extra)
        .arg(support::workspace().join("cases"))
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    // 1: an expectation does not hold on some kernel; the files are written either way.
    if !matches!(o.status.code(), Some(0 | 1)) {
        return Err(format!(
            "bpfcase report {extra:?} exited with {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(())
}

fn without_timings(path: &Path) -> Result<serde_json::Value, Failed> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failed::from(format!("{}: {e}", path.display())))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Failed::from(e.to_string()))?;
    for k in v["kernels"].as_array_mut().into_iter().flatten() {
        if let Some(o) = k.as_object_mut() {
            o.remove("timings");
        }
    }
    Ok(v)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn shards_merge_into_the_unsharded_report(kernels: String) -> Result<Completion, Failed> {
    let tmp = tempfile::tempdir().map_err(|e| Failed::from(e.to_string()))?;
    let dir = |n: &str| -> PathBuf { tmp.path().join(n) };
    report(&kernels, &[], &dir("whole"))?;
    let mut parts = Vec::new();
    for i in 1..=SHARDS {
        let d = dir(&format!("shard{i}"));
        report(&kernels, &["--shard", &format!("{i}/{SHARDS}")], &d)?;
        let names = files(&d);
        if names != ["results.json", "results.schema.json"] {
            return Err(
                format!("shard {i} wrote {names:?}: a shard writes its results only").into(),
            );
        }
        parts.push(d.join("results.json"));
    }
    let merged = dir("merged.json");
    let o = support::bpfcase(&support::new_mark("merge"))
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .output()
        .map_err(|e| Failed::from(e.to_string()))?;
    if !o.status.success() {
        return Err(format!("bpfcase merge: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    let o = support::bpfcase(&support::new_mark("render"))
        .args(["report", "--from"])
        .arg(&merged)
        .arg("--out")
        .arg(dir("rendered"))
        .output()
        .map_err(|e| Failed::from(e.to_string()))?;
    if !matches!(o.status.code(), Some(0 | 1)) {
        return Err(format!(
            "bpfcase report --from: {}",
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    let (whole, rendered) = (dir("whole"), dir("rendered"));
    if files(&whole) != files(&rendered) {
        return Err(format!("files {:?} vs {:?}", files(&whole), files(&rendered)).into());
    }
    let w = without_timings(&whole.join("results.json"))?;
    if w["kernels"].as_array().map_or(0, Vec::len) != kernels.split(',').count() {
        return Err(format!("the unsharded run has no result for some of {kernels}").into());
    }
    if w != without_timings(&rendered.join("results.json"))? {
        return Err("results.json of the merged shards differs from the unsharded run's".into());
    }
    // `bpfcase diff` agrees: nothing changed between the two, and it says so with exit 0.
    let o = support::bpfcase(&support::new_mark("diff"))
        .arg("diff")
        .arg(whole.join("results.json"))
        .arg(&merged)
        .output()
        .map_err(|e| Failed::from(e.to_string()))?;
    let said = String::from_utf8_lossy(&o.stdout);
    if o.status.code() != Some(0) || !said.starts_with("no differences") {
        return Err(format!(
            "bpfcase diff whole merged: exit {:?}: {said}",
            o.status.code()
        )
        .into());
    }
    for name in files(&whole).iter().filter(|n| *n != "results.json") {
        let (a, b) = (
            std::fs::read(whole.join(name)).unwrap_or_default(),
            std::fs::read(rendered.join(name)).unwrap_or_default(),
        );
        if a != b || a.is_empty() {
            return Err(
                format!("{name} of the merged shards differs from the unsharded run's").into(),
            );
        }
    }
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let mut kernels: Vec<String> = support::guest_kernels().into_iter().take(2).collect();
    if bpfcase::exec::host_unavailable().is_none() {
        kernels.insert(0, "host".into());
    }
    let trial = if kernels.len() < 2 {
        Trial::ignorable_test("shards_merge_into_the_unsharded_report", || {
            Ok(Completion::ignored_with(
                "needs two kernels: root for the running kernel, or BPFCASE_KERNELS",
            ))
        })
    } else {
        let k = kernels.join(",");
        Trial::ignorable_test("shards_merge_into_the_unsharded_report", move || {
            shards_merge_into_the_unsharded_report(k)
        })
    };
    libtest_mimic::run(&args, vec![trial]).exit();
}
