//! Interrupts cannot fake a result: a program that stays attached to a hook the kernel runs
//! from hard interrupts (`tp_btf` on `hrtimer_expire_entry`: every timer tick, also while the
//! runner's thread is current) counts no run while the runner loads and runs 40 programs. Without
//! the task-context check it counted 14 and 15 runs in two boots of 6.12.
//!
//! Runs in the guest kernels `BPFCASE_KERNELS` names (as `scripts/test` sets it); a kernel that
//! cannot tell interrupts apart (no per-CPU preempt count in its BTF, e.g. Debian's 5.10) must
//! say so: `unsupported(…)`, never a count.

use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod support;

/// Programs the runner loads and runs while the hook's program stays attached.
const STEPS: usize = 40;

fn case_text() -> String {
    let steps: Vec<String> = (0..STEPS)
        .map(|i| {
            format!(r#"{{ "prog": {{ "type": "syscall", "ops": [ {{ "current_task": {{ "as": "s{i}" }} }} ] }} }}"#)
        })
        .collect();
    format!(
        r#"{{
  "about": "a tp_btf program on a hard-interrupt tracepoint stays attached while the runner works",
  "maps": {{}},
  "steps": [
    {{ "prog": {{ "type": "tp_btf", "attach_to": "btf_trace_hrtimer_expire_entry", "stay": true,
                 "ops": [ {{ "current_task": {{ "as": "t" }} }} ] }} }},
    {}
  ]
}}"#,
        steps.join(",\n    ")
    )
}

fn no_interrupt_counts() -> Result<Completion, Failed> {
    let kernels = support::guest_kernels();
    if kernels.is_empty() {
        return Ok(Completion::ignored_with(
            "needs guest kernels: set BPFCASE_KERNELS (scripts/test does)",
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| Failed::from(e.to_string()))?;
    let case = dir.path().join("interrupts.json");
    std::fs::write(&case, case_text()).map_err(|e| Failed::from(e.to_string()))?;
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(["vm", "--format", "json", "--kernel", &kernels.join(",")])
        .arg(&case)
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase vm: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut kernel = String::new();
    let mut counted = Vec::new();
    let mut wrong = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Failed::from(format!("bad output line {line:?}: {e}")))?;
        if let Some(label) = v["kernel"]["label"].as_str() {
            kernel = label.to_string();
            continue;
        }
        let Some(results) = v["observation"]["results"].as_array() else {
            continue;
        };
        let load = results
            .iter()
            .find(|r| r[0] == "load#1")
            .map(|r| r[1].clone());
        match load {
            Some(r) if r["attached"]["runs"] == 0 => counted.push(kernel.clone()),
            Some(r) if r.get("unsupported").is_some() => {}
            other => wrong.push(format!("{kernel}: load#1 = {other:?}")),
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "the program counted runs the runner did not make:\n{}",
            wrong.join("\n")
        )
        .into());
    }
    if counted.is_empty() {
        return Err(format!(
            "no kernel of {kernels:?} ran the program (exit {:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    eprintln!("no interrupt counted on {}", counted.join(", "));
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let trial = Trial::ignorable_test("no_interrupt_counts", no_interrupt_counts);
    libtest_mimic::run(&args, vec![trial]).exit();
}
