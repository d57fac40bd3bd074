//! Host results depend on the kernel, not on the host's mounts: the whole host suite runs once
//! with tracefs and debugfs unmounted and once with tracefs mounted (each in a mount namespace
//! of its own, so the machine's mounts stay as they are), and the observations must be
//! identical. Needs root, like the kernel tests; without it the test says so.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS: &str = "/sys/kernel/debug";

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

#[derive(Clone, Copy)]
enum Tracefs {
    Unmounted,
    Mounted,
    /// As the machine has it, in the machine's own mount namespace.
    AsIs,
}

/// Every observation line of `bpfcase run --format json` over the shipped cases, run in a
/// mount namespace of its own where tracefs is as asked.
fn run(tracefs: Tracefs) -> Result<Vec<String>, Failed> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpfcase"));
    cmd.args(["run", "--format", "json"]).arg(cases());
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // (unshare, mount, umount2), which are async-signal-safe; it allocates nothing.
    if !matches!(tracefs, Tracefs::AsIs) {
        unsafe {
            cmd.pre_exec(move || {
                let io = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
                unshare(CloneFlags::CLONE_NEWNS).map_err(io)?;
                let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
                mount(None::<&str>, "/", None::<&str>, private, None::<&str>).map_err(io)?;
                match tracefs {
                    Tracefs::Unmounted => {
                        // Possibly mounted several times over, and under debugfs too.
                        for _ in 0..4 {
                            let _ = umount2(TRACEFS, MntFlags::MNT_DETACH);
                            let _ = umount2(DEBUGFS, MntFlags::MNT_DETACH);
                        }
                    }
                    Tracefs::Mounted => {
                        let _ = mount(
                            Some("tracefs"),
                            TRACEFS,
                            Some("tracefs"),
                            MsFlags::empty(),
                            None::<&str>,
                        );
                    }
                    Tracefs::AsIs => {}
                }
                Ok(())
            });
        }
    }
    let out = cmd
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains("\"observation\""))
        .map(str::to_string)
        .collect();
    if lines.len() < 100 {
        return Err(format!(
            "bpfcase run printed {} observations (exit {:?}): {}",
            lines.len(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(lines)
}

fn same_with_and_without_tracefs() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let before = mounts();
    let as_is = run(Tracefs::AsIs)?;
    if mounts() != before {
        return Err(format!(
            "bpfcase run changed the machine's mounts:\nbefore:\n{before}\nafter:\n{}",
            mounts()
        )
        .into());
    }
    let without = run(Tracefs::Unmounted)?;
    let with = run(Tracefs::Mounted)?;
    let differ: Vec<String> = without
        .iter()
        .zip(&with)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("without tracefs: {a}\nwith tracefs:    {b}"))
        .collect();
    if without.len() != with.len() || !differ.is_empty() {
        return Err(format!(
            "{} observations without tracefs, {} with; these differ:\n{}",
            without.len(),
            with.len(),
            differ.join("\n")
        )
        .into());
    }
    if as_is != with {
        return Err("the machine's own mounts gave other observations than tracefs mounted".into());
    }
    // The suite needs tracefs (tracepoint programs): it really ran them.
    if !with.iter().any(|l| l.contains("prog=tracepoint")) {
        return Err("no tracepoint instance ran: the test proves nothing".into());
    }
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(
        &args,
        vec![Trial::ignorable_test(
            "same_with_and_without_tracefs",
            same_with_and_without_tracefs,
        )],
    )
    .exit();
}
