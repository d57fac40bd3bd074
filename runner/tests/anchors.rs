//! Trampoline anchors change no observation. With a guest kernel whose trampolines they are for
//! (the first 6.x kernel `BPFCASE_KERNELS` names, else its first; otherwise this reports itself
//! ignored), the case files that attach most — fentry, fexit, fmod_ret and LSM programs, one
//! triggered per instance, and programs that stay attached on a function the helpers call —
//! run with anchors on every target (`bpfcase.anchors=1`) and with none (`bpfcase.anchors=0`):
//! the observations are the same line for line, and the first run did anchor its targets.

mod support;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use support::*;

const CASES: [&str; 3] = [
    "cases/inode_storage/inode_get_flags.json",
    "cases/task_storage/program_types.json",
    "cases/task_storage/recursion_update.json",
];

fn kernel() -> Option<String> {
    let all = guest_kernels();
    all.iter()
        .find(|k| series(k).is_some_and(|s| s.starts_with("6.")))
        .or(all.first())
        .cloned()
}

/// The observation lines of one run, and what its kernel record says about anchors.
fn run(spec: &str, anchors: &str) -> Result<(Vec<String>, String), Failed> {
    let out = bpfcase(&new_mark("anchors"))
        .args(["vm", "--format", "json", "--kernel", spec])
        .arg("--append")
        .arg(format!("bpfcase.anchors={anchors}"))
        .args(CASES.iter().map(|c| workspace().join(c)))
        .output()?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let record: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap_or(""))
        .map_err(|e| format!("no kernel record ({e}): {stdout}{stderr}"))?;
    let k = &record["kernel"];
    if k["problems"].as_array().is_none_or(|p| !p.is_empty()) {
        return Err(format!("problems: {} ({stderr})", k["problems"]).into());
    }
    let verdict = k["timings"][0]["breakdown"]["anchors"]
        .as_str()
        .ok_or_else(|| format!("no anchor verdict in {k}"))?
        .to_string();
    let observations: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains("\"observation\""))
        .map(String::from)
        .collect();
    Ok((observations, verdict))
}

fn same_observations(spec: &str) -> Result<(), Failed> {
    let (with, verdict) = run(spec, "1")?;
    let (without, off) = run(spec, "0")?;
    // inode_get_flags, program_types and recursion_update attach to bpf_lsm_file_open,
    // bpf_fentry_test1, bpf_modify_return_test and bpf_local_storage_update.
    let anchored: usize = verdict
        .strip_prefix("always: on for ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("anchors were not forced on: {verdict}"))?;
    if anchored < 3 {
        return Err(format!("only {anchored} targets anchored: {verdict}").into());
    }
    if off != "off" {
        return Err(format!("anchors were not off: {off}").into());
    }
    if with.len() < 40 {
        return Err(format!("only {} observations", with.len()).into());
    }
    if with != without {
        let first = with.iter().zip(&without).find(|(a, b)| a != b).map_or_else(
            || format!("{} against {} lines", with.len(), without.len()),
            |(a, b)| format!("with anchors:\n{a}\nwithout:\n{b}"),
        );
        return Err(format!("anchors changed an observation on {spec}:\n{first}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let trial = Trial::ignorable_test("anchors_change_no_observation", || {
        let Some(spec) = kernel() else {
            return Ok(Completion::ignored_with(
                "needs a guest kernel: set BPFCASE_KERNELS (scripts/test does)",
            ));
        };
        same_observations(&spec).map(|()| Completion::Completed)
    });
    libtest_mimic::run(&args, vec![trial]).exit();
}
