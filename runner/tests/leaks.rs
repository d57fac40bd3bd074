//! Nothing leaks: after every shipped instance has run, the process holds the same fds as
//! before (every map, program, BTF object and pidfd is closed) and has no child left (every
//! child is reaped). Needs root, like the kernel tests; without it the test says so.

use std::path::Path;

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

fn nothing_leaks() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let files = case::discover(&[cases]).map_err(|e| Failed::from(e.to_string()))?;
    let mut env = Env::new();
    let before = open_fds();
    let mut ran = 0;
    for f in files {
        let c = case::load(&f).map_err(|e| Failed::from(e.to_string()))?;
        for i in &c.instances {
            let obs = env.run(i);
            if let Outcome::Error { message } = &obs.outcome {
                return Err(format!("{}: {message}", i.id).into());
            }
            ran += 1;
        }
    }
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
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(
        &args,
        vec![Trial::ignorable_test("nothing_leaks", nothing_leaks)],
    )
    .exit();
}
