//! Nothing leaks: after every shipped instance has run on the host, no child is left (every
//! child is reaped as its instance ends); the executor holds no more fds after a second pass
//! than after the first (what it keeps for later instances does not grow with them); and once
//! it is dropped the process holds the same fds as before (every map, program, BTF object and
//! pidfd is closed) and the kernel holds no BPF program, map, BTF object or link that was not
//! there before (walked through the BPF object id iterators; the kernel frees some of them
//! later, after RCU grace periods and in workers, so the walk is repeated for a while). Needs
//! root, like the kernel tests; without it the test says so.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bpfcase::bpf::{self, ObjectKind};
use bpfcase::case;
use bpfcase::exec::{Env, Outcome};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    std::fs::read_link(e.path())
                        .ok()
                        .map(|l| format!("{} -> {}", e.file_name().to_string_lossy(), l.display()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const KINDS: [ObjectKind; 4] = [
    ObjectKind::Prog,
    ObjectKind::Map,
    ObjectKind::Btf,
    ObjectKind::Link,
];

/// How long the kernel may take to free what a closed fd released (RCU grace periods, the
/// map-free worker).
const DEFERRED_FREE: Duration = Duration::from_secs(20);

/// Every kernel BPF object, by kind and id.
fn kernel_objects() -> Result<BTreeSet<(String, u32)>, Failed> {
    let mut all = BTreeSet::new();
    for kind in KINDS {
        let ids = bpf::object_ids(kind)
            .map_err(|e| Failed::from(format!("walking {kind:?} ids: {}", e.name())))?;
        all.extend(ids.into_iter().map(|id| (format!("{kind:?}"), id)));
    }
    Ok(all)
}

/// Objects that other processes hold an fd of (fdinfo's `prog_id:`, `map_id:`, `btf_id:`,
/// `link_id:` lines): theirs, not ours, when something else on the machine uses BPF meanwhile.
fn held_elsewhere() -> BTreeSet<(String, u32)> {
    let me = std::process::id().to_string();
    let mut held = BTreeSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for f in std::fs::read_dir(p.path().join("fdinfo"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            for line in text.lines() {
                let kind = match line.split_once(':') {
                    Some(("prog_id", _)) => "Prog",
                    Some(("map_id", _)) => "Map",
                    Some(("btf_id", _)) => "Btf",
                    Some(("link_id", _)) => "Link",
                    _ => continue,
                };
                if let Some(Ok(id)) = line.split_once(':').map(|(_, v)| v.trim().parse::<u32>()) {
                    held.insert((kind.to_string(), id));
                }
            }
        }
    }
    held
}

/// The kernel objects that appeared since `before` and are still there after `DEFERRED_FREE`.
fn left_in_the_kernel(before: &BTreeSet<(String, u32)>) -> Result<Vec<(String, u32)>, Failed> {
    let start = Instant::now();
    loop {
        let now = kernel_objects()?;
        let elsewhere = held_elsewhere();
        let new: Vec<(String, u32)> = now
            .difference(before)
            .filter(|o| !elsewhere.contains(*o))
            .cloned()
            .collect();
        if new.is_empty() || start.elapsed() > DEFERRED_FREE {
            return Ok(new);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nothing_leaks() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let files = case::discover(&[cases]).map_err(|e| Failed::from(e.to_string()))?;
    let before = open_fds();
    let objects_before = kernel_objects()?;
    let mut env = Env::new();
    let start = Instant::now();
    let mut ran = 0;
    let mut cases = Vec::new();
    for f in files {
        cases.push(case::load(&f).map_err(|e| Failed::from(e.to_string()))?);
    }
    let refs: Vec<&case::Case> = cases.iter().collect();
    let mut errors = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..2 {
        bpfcase::pipeline::run_instances(&mut env, &refs, &mut |_, i, obs| {
            if let Outcome::Error { message } = &obs.outcome {
                errors.push(format!("{}: {message}", i.id));
            }
            ran += 1;
        });
        kept.push(open_fds().len());
    }
    if let Some(e) = errors.first() {
        return Err(e.clone().into());
    }
    if kept[1] > kept[0] {
        return Err(format!(
            "the executor holds {} fds after the first pass and {} after the second",
            kept[0], kept[1]
        )
        .into());
    }
    drop(env);
    let after = open_fds();
    if before != after {
        return Err(format!("fds before {before:?}\nfds after {after:?}").into());
    }
    // SAFETY: a non-blocking wait for any child; this test binary starts no other processes.
    let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if r != -1 || errno != Some(libc::ECHILD) {
        return Err(
            format!("a child process is left after {ran} instances (waitpid gave {r})").into(),
        );
    }
    if ran < 100 {
        return Err(format!("only {ran} instances ran").into());
    }
    let ran_for = start.elapsed();
    let left = left_in_the_kernel(&objects_before)?;
    if !left.is_empty() {
        return Err(format!(
            "after {ran} instances the kernel still holds {} BPF objects it did not hold before: {left:?}",
            left.len()
        )
        .into());
    }
    eprintln!(
        "{ran} instances in {:.1} s; fds, children and the kernel's {} BPF objects as before {:.1} s later",
        ran_for.as_secs_f64(),
        objects_before.len(),
        (start.elapsed() - ran_for).as_secs_f64()
    );
    Ok(Completion::Completed)
}

fn main() {
    let mut args = Arguments::from_args();
    // On the main thread, where the executor keeps objects between instances.
    args.test_threads = Some(1);
    libtest_mimic::run(
        &args,
        vec![Trial::ignorable_test("nothing_leaks", nothing_leaks)],
    )
    .exit();
}
