//! `bpfcase fetch` and `bpfcase vm` against the Debian archive and real guests. These run when
//! `BPFCASE_KERNELS` names guest kernels (as `scripts/test` does: the suite then downloads
//! kernels and boots guests anyway); otherwise they report themselves ignored.
//!
//! - From a directory that is not the repository, the manifest's `default` kernels resolve in
//!   the suite's own cache (`$XDG_CACHE_HOME`, as the binary finds it) to their pins, or to
//!   another version with a warning naming both.
//! - Two `bpfcase fetch` of one pinned kernel at once into an empty cache both succeed, with no
//!   warning (the private apt state is locked; before, both updated the same lists).
//! - SIGINT during apt work leaves no apt process (nor any other child) behind.
//! - SIGINT to `bpfcase vm` after its guest started stops QEMU and removes the work directory.

mod support;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use bpfcase::vm::kernels::Manifest;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use support::*;

/// Why the archive tests do not run, if they do not.
fn skip() -> Option<&'static str> {
    guest_kernels().is_empty().then_some(
        "needs the Debian archive and guest kernels: set BPFCASE_KERNELS (scripts/test does)",
    )
}

/// The pinned kernel cheapest to download: an image-only `linux-binary-*` package if the
/// manifest pins one (≈13 MB), else the first default.
fn small_pin(m: &Manifest) -> Option<(String, String)> {
    pins(m)
        .into_iter()
        .find(|(_, p, _)| p.starts_with("linux-binary-"))
        .map(|(s, _, v)| (s, v))
        .or_else(|| {
            let s = series(m.default.first()?)?;
            let v = m.debian.get(&s)?.version.clone();
            Some((s, v))
        })
}

fn pins_in_the_suite_cache() -> Result<(), Failed> {
    let m = Manifest::builtin().map_err(|e| e.to_string())?;
    let elsewhere = tempfile::tempdir()?;
    let out = bpfcase(&new_mark("suite-pins"))
        .args(["fetch", "default"])
        .current_dir(elsewhere.path())
        .output()?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), m.default.len(), "{stdout}");
    for (spec, line) in m.default.iter().zip(&lines) {
        let Some(pin) = series(spec).and_then(|s| m.debian.get(&s)) else {
            continue;
        };
        let pinned = format!("({spec} = {} {})", pin.package, pin.version);
        if line.ends_with(&pinned) {
            continue;
        }
        // A pin the archive dropped: a warning names the pinned and the used version.
        let used = line.rsplit(' ').next().unwrap_or("").trim_end_matches(')');
        assert!(
            stderr
                .lines()
                .any(|w| w.starts_with(&format!("warning: {spec}: pinned"))
                    && w.contains(&pin.version)
                    && w.contains(used)),
            "{spec} resolved to {line} without a warning naming {} and {used}:\n{stderr}",
            pin.version
        );
    }
    Ok(())
}

fn concurrent_fetches() -> Result<(), Failed> {
    let m = Manifest::builtin().map_err(|e| e.to_string())?;
    let (series, version) = small_pin(&m).ok_or("the manifest pins no kernel")?;
    let cache = tempfile::tempdir()?;
    let start = Instant::now();
    let spawn = || {
        bpfcase(&new_mark("concurrent"))
            .args(["fetch", &format!("debian:{series}")])
            .current_dir(cache.path())
            .env("XDG_CACHE_HOME", cache.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    let (a, b) = (spawn()?, spawn()?);
    let outs: Vec<Output> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output())
        .collect::<Result<_, _>>()?;
    let took = start.elapsed();
    eprintln!(
        "two concurrent fetches of debian:{series} into an empty cache: {:.1} s",
        took.as_secs_f64()
    );
    for o in &outs {
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{:?}\n{}{}",
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        );
        assert!(
            text(&o.stdout).contains(&format!(" {version})")),
            "{}",
            text(&o.stdout)
        );
    }
    assert_eq!(outs[0].stdout, outs[1].stdout);
    // One apt-get update and one download, not two updates fighting: well under the watchdog
    // of a patient user.
    assert!(took < Duration::from_secs(300), "took {took:?}");
    Ok(())
}

fn interrupted_fetch() -> Result<(), Failed> {
    let m = Manifest::builtin().map_err(|e| e.to_string())?;
    let (series, _) = small_pin(&m).ok_or("the manifest pins no kernel")?;
    let cache = tempfile::tempdir()?;
    let mark = new_mark("fetch-int");
    let child = bpfcase(&mark)
        .args(["fetch", &format!("debian:{series}")])
        .current_dir(cache.path())
        .env("XDG_CACHE_HOME", cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // An empty cache starts with apt-get update: wait for apt (or its download methods).
    let apt = poll(Duration::from_secs(60), || {
        alive(&mark).into_iter().find(|p| p.comm != "bpfcase")
    });
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output()?;
    let apt = apt.ok_or("no apt process appeared")?;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let left = survivors(&mark, Duration::from_secs(5));
    assert!(left.is_empty(), "still running: {left:?} (saw {apt:?})");
    let tmp = entries(&cache.path().join("bpfcase/tmp"));
    assert!(tmp.is_empty(), "left in the cache's tmp: {tmp:?}");
    Ok(())
}

fn interrupted_vm(spec: &str) -> Result<(), Failed> {
    let tmpdir = tempfile::tempdir()?;
    let mark = new_mark("vm-int");
    let child = bpfcase(&mark)
        .args(["vm", "--accel", "tcg", "--kernel", spec])
        .arg(workspace().join("cases"))
        .env("TMPDIR", tmpdir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // The kernel may have to be downloaded first.
    let started = poll(Duration::from_secs(600), || {
        let qemu = alive(&mark)
            .into_iter()
            .find(|p| p.comm.starts_with("qemu"))?;
        let work = entries(tmpdir.path())
            .into_iter()
            .find(|e| e.starts_with("bpfcase-vm-"))?;
        Some((qemu, work))
    });
    // Let the guest boot a little.
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output()?;
    let (qemu, work) = started.ok_or_else(|| {
        format!(
            "QEMU never started (exit {:?}): {}",
            out.status,
            text(&out.stderr)
        )
    })?;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let left = survivors(&mark, Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "still running: {left:?} (QEMU was {qemu:?})"
    );
    assert!(!tmpdir.path().join(&work).exists(), "{work} is left");
    assert_eq!(entries(tmpdir.path()), Vec::<String>::new());
    Ok(())
}

fn gated(name: &str, f: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    Trial::ignorable_test(name, move || match skip() {
        Some(why) => Ok(Completion::ignored_with(why)),
        None => f().map(|()| Completion::Completed),
    })
}

fn main() {
    let args = Arguments::from_args();
    let first = guest_kernels().into_iter().next().unwrap_or_default();
    let trials = vec![
        gated(
            "default_kernels_resolve_to_their_pins_in_the_suite_cache",
            pins_in_the_suite_cache,
        ),
        gated(
            "two_fetches_at_once_into_an_empty_cache",
            concurrent_fetches,
        ),
        gated(
            "an_interrupted_fetch_leaves_no_apt_behind",
            interrupted_fetch,
        ),
        gated(
            "an_interrupted_vm_stops_qemu_and_removes_its_work_dir",
            move || interrupted_vm(&first),
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
