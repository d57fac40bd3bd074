//! Other threads cannot fake a result: while instances of attached programs run on the main
//! thread, another thread of the same process makes the system calls that trigger them
//! (getpid, open) as fast as it can. Every instance must still see only the runner's own
//! event: the value it created is the main thread's storage, which `lookup self` finds.
//! Needs root, like the kernel tests; without it the test says so.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bpfcase::case;
use bpfcase::exec::{Env, Outcome, Res};
use bpfcase::report;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Instances per program type: enough that a thread check that lets the other thread through
/// fails many of them (with a tgid-only check, 40 % of them did).
const ROUNDS: u64 = 60;

fn case_text() -> String {
    let values: Vec<String> = (1..=ROUNDS).map(|n| format!("\"{n:#x}\"")).collect();
    format!(
        r#"{{
  "about": "tp_btf and tracepoint programs create storage for the current task while another thread of the runner triggers the same hooks",
  "maps": {{ "st": {{ "type": "task_storage", "value_size": 8 }} }},
  "matrix": {{ "prog": ["tp_btf", "tracepoint"], "n": [{}] }},
  "program": {{ "type": "$prog" }},
  "steps": [
    {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "value": "$n", "flags": 1 }} }} ] }},
    {{ "lookup": {{ "map": "st", "task": "self" }} }}
  ]
}}"#,
        values.join(", ")
    )
}

fn other_threads_do_not_trigger() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let c = case::parse(Path::new("threads.json"), &case_text())
        .map_err(|e| Failed::from(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let noise = {
        let (stop, calls) = (stop.clone(), calls.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: getpid has no preconditions; the raw syscall avoids libc caching.
                unsafe { libc::syscall(libc::SYS_getpid) };
                let _ = std::fs::File::open("/dev/null");
                calls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut env = Env::new();
    let mut wrong = Vec::new();
    let mut ran = 0;
    for inst in &c.instances {
        let obs = env.run(inst);
        let n = inst.id.rsplit_once("n=").map_or("", |(_, n)| n);
        match &obs.outcome {
            Outcome::Ran => {}
            other => {
                // A kernel without the hook or program type says so; nothing to compare.
                if matches!(other, Outcome::Error { .. }) {
                    wrong.push(report::line(&obs, Some(inst)));
                }
                continue;
            }
        }
        if obs
            .results
            .iter()
            .any(|(_, r)| matches!(r, Res::Unsupported { .. } | Res::Refused { .. }))
        {
            continue;
        }
        ran += 1;
        let get = obs.result("get").map(report::render);
        let lookup = obs.result("st.lookup").map(report::render);
        if get.as_deref() != Some(&format!("ptr:{n}")) || lookup.as_deref() != Some(n) {
            wrong.push(report::line(&obs, Some(inst)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = noise.join();
    let calls = calls.load(Ordering::Relaxed);
    if !wrong.is_empty() {
        return Err(format!(
            "{} of {ran} instances saw another thread's event ({calls} calls from the other thread):\n{}",
            wrong.len(),
            wrong.join("\n")
        )
        .into());
    }
    if ran == 0 {
        return Ok(Completion::ignored_with(
            "neither tp_btf nor tracepoint programs run on this kernel",
        ));
    }
    if calls < 1000 {
        return Err(format!("the other thread made only {calls} calls: it did not compete").into());
    }
    Ok(Completion::Completed)
}

fn main() {
    let mut args = Arguments::from_args();
    // On the main thread: `self` (a pidfd of the process) names the main thread's task.
    args.test_threads = Some(1);
    libtest_mimic::run(
        &args,
        vec![Trial::ignorable_test(
            "other_threads_do_not_trigger",
            other_threads_do_not_trigger,
        )],
    )
    .exit();
}
