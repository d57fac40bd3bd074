//! Snapshots are never lost. With a stored snapshot that no longer matches what the kernel does:
//! in CI (`CI=true`) the assertion fails and nothing is written; locally it fails, the new text
//! goes to `.snap.new` for review and the stored snapshot stays as it was until the new one is
//! accepted; a new snapshot in CI fails and writes nothing. Each assertion runs in a child
//! process (insta reads its configuration once per process), on a copy of one shipped snapshot
//! and real observations of the running kernel. Needs root, like the kernel tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use bpfcase::case;
use bpfcase::exec::Observation;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod snapshot_support;
use snapshot_support::{assert_case_snapshot, host_label, snapshot_name};

/// Set in the child: the snapshot folder to assert against.
const CHILD: &str = "BPFCASE_SNAPSHOT_TEST_DIR";
const REL: &str = "task_storage/get_args.json";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// In the child: runs the case on the host and asserts its snapshot in `dir`.
fn child(dir: &Path) -> Result<Completion, Failed> {
    let file = workspace().join("cases").join(REL);
    let c = case::load(&file).map_err(|e| Failed::from(e.to_string()))?;
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(["run", "--format", "json"])
        .arg(&file)
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    let observations: Vec<Observation> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| serde_json::from_value(v["observation"].clone()).ok())
        .collect();
    assert_case_snapshot(dir, &c, Path::new(REL), &host_label(), &observations)
}

/// Runs the child assertion against `dir`, in CI mode or not; whether it passed.
fn assert_in_child(dir: &Path, ci: bool) -> Result<bool, Failed> {
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| Failed::from(e.to_string()))?);
    cmd.env(CHILD, dir)
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_FORCE_PASS");
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    let out = cmd
        .output()
        .map_err(|e| Failed::from(format!("cannot start the child: {e}")))?;
    Ok(out.status.success())
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn never_lost() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let name = format!("{}@{}.snap", snapshot_name(Path::new(REL)), host_label());
    let shipped = workspace().join("snapshots").join(&name);
    let text = std::fs::read_to_string(&shipped)
        .map_err(|e| Failed::from(format!("{}: {e}", shipped.display())))?;
    let tmp = tempfile::tempdir().map_err(|e| Failed::from(e.to_string()))?;
    let dir = tmp.path();
    let snap = dir.join(&name);
    let new = dir.join(format!("{name}.new"));

    // The shipped snapshot matches what the kernel does.
    std::fs::write(&snap, &text).map_err(|e| Failed::from(e.to_string()))?;
    if !assert_in_child(dir, true)? {
        return Err(format!("the shipped {name} does not match this kernel").into());
    }
    // A stale one: an observation the kernel does not make.
    let stale = text.replacen(" → ", " → stale=1 ", 1);
    std::fs::write(&snap, &stale).map_err(|e| Failed::from(e.to_string()))?;
    if assert_in_child(dir, true)? {
        return Err("in CI a stale snapshot passed".into());
    }
    if files(dir) != [name.clone()] || std::fs::read_to_string(&snap).ok().as_ref() != Some(&stale)
    {
        return Err(format!("in CI the snapshot folder changed: {:?}", files(dir)).into());
    }
    // Locally: it fails, the new text waits for review, the stored one is untouched.
    if assert_in_child(dir, false)? {
        return Err("locally a stale snapshot passed".into());
    }
    if std::fs::read_to_string(&snap).ok().as_ref() != Some(&stale) || !new.exists() {
        return Err(format!(
            "locally the stale snapshot was not kept for review: {:?}",
            files(dir)
        )
        .into());
    }
    // Accepting the reviewed one (what `cargo insta accept` does) makes it pass.
    std::fs::rename(&new, &snap).map_err(|e| Failed::from(e.to_string()))?;
    if !assert_in_child(dir, true)? {
        return Err("the accepted snapshot does not pass".into());
    }
    // A new snapshot in CI fails and writes nothing.
    std::fs::remove_file(&snap).map_err(|e| Failed::from(e.to_string()))?;
    if assert_in_child(dir, true)? {
        return Err("in CI a missing snapshot passed".into());
    }
    if !files(dir).is_empty() {
        return Err(format!("in CI a new snapshot was written: {:?}", files(dir)).into());
    }
    Ok(Completion::Completed)
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let ok = std::panic::catch_unwind(|| child(Path::new(&dir)));
        std::process::exit(match ok {
            Ok(Ok(_)) => 0,
            _ => 1,
        });
    }
    let args = Arguments::from_args();
    libtest_mimic::run(&args, vec![Trial::ignorable_test("never_lost", never_lost)]).exit();
}
