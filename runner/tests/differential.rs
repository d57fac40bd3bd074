//! The compiler checked against clang: every instance of the cases that the C program
//! `progs/task_storage.bpf.c` can run gives identical observations whether its programs are
//! compiled by bpfcase or by clang. Guards the assembler and compiler against encoding
//! mistakes. Needs root, like the kernel tests; without it the test says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use bpfcase::exec::Observation;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Observations of `bpfcase run --format json FILE`.
fn run(file: &Path) -> Result<Vec<Observation>, Failed> {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(["run", "--format", "json"])
        .arg(file)
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let j: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Failed::from(e.to_string()))?;
        if let Some(o) = j.get("observation") {
            v.push(serde_json::from_value(o.clone()).map_err(|e| Failed::from(e.to_string()))?);
        }
    }
    if v.is_empty() {
        return Err(format!(
            "no observations from {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(v)
}

/// Runs `case` as written and with `program.object` set or removed, and compares.
fn differential(case: &str) -> Result<Completion, Failed> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(Completion::ignored_with(
            "needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN)",
        ));
    }
    if bpfcase::progs::object("task_storage").is_none() {
        return Err("progs/task_storage.bpf.c was not built: install clang (scripts/setup)".into());
    }
    let src = workspace().join("cases/task_storage").join(case);
    let text = std::fs::read_to_string(&src).map_err(|e| Failed::from(e.to_string()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Failed::from(e.to_string()))?;
    if json.get("program").is_none() {
        json["program"] = serde_json::json!({ "type": "syscall" });
    }
    let program = json["program"]
        .as_object_mut()
        .ok_or("`program` is an object")?;
    let twin_has_object = program.remove("object").is_none();
    if twin_has_object {
        program.insert("object".into(), "task_storage".into());
    }
    // Removed when dropped, whatever the outcome.
    let dir = tempfile::Builder::new()
        .prefix("bpfcase-diff-")
        .tempdir()
        .map_err(|e| Failed::from(e.to_string()))?;
    let twin = dir.path().join(case);
    std::fs::write(
        &twin,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| Failed::from(e.to_string()))?;
    let (a, b) = (run(&src)?, run(&twin)?);
    let (compiled, clang) = if twin_has_object { (a, b) } else { (b, a) };
    if compiled.len() != clang.len() {
        return Err(format!(
            "{} compiled vs {} clang observations",
            compiled.len(),
            clang.len()
        )
        .into());
    }
    let mut diffs = Vec::new();
    for (x, y) in compiled.iter().zip(&clang) {
        // The verifier logs of rejected programs differ with the instructions: compare what
        // the programs did.
        if (&x.id, &x.outcome, &x.results) != (&y.id, &y.outcome, &y.results) {
            diffs.push(format!(
                "{}:\n  compiled: {:?}\n  clang:    {:?}",
                x.id, x.results, y.results
            ));
        }
    }
    let ran = compiled
        .iter()
        .filter(|o| o.results.iter().any(|(n, _)| n.starts_with("load")))
        .count();
    if ran * 2 < compiled.len() {
        return Err(format!(
            "only {ran} of {} instances ran a program: nothing was compared",
            compiled.len()
        )
        .into());
    }
    if diffs.is_empty() {
        Ok(Completion::Completed)
    } else {
        Err(format!("{} instances differ:\n{}", diffs.len(), diffs.join("\n")).into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let trials = ["get_flags.json", "c_program.json"]
        .into_iter()
        .map(|c| {
            Trial::ignorable_test(
                format!("compiled_equals_clang::{}", c.trim_end_matches(".json")),
                move || differential(c),
            )
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
