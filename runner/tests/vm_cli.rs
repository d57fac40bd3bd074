//! `bpfcase vm` and `bpfcase fetch` as a user runs them, with nothing but the binary: no guest
//! kernel, no network, no root (see `vm_archive.rs` for the tests that need those).
//!
//! - Kernels resolve from a directory that is not the repository: `default` expands and a
//!   pinned series resolves to its pin through the manifest built into the binary; `--manifest`
//!   overrides it. The cache is a fake one holding every pin, so no apt runs.
//! - A guest whose instance ends in `error(…)` makes `bpfcase vm` exit 1, as `bpfcase run` does
//!   (a stand-in QEMU replays prepared result frames).
//! - A hung guest (a stand-in QEMU that never exits) dies with bpfcase: SIGTERM stops it and
//!   removes the work directory; SIGKILL of bpfcase kills it too (PR_SET_PDEATHSIG).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bpfcase::case;
use bpfcase::exec::{Observation, Outcome};
use bpfcase::report::{self, Summary};
use bpfcase::vm::frame;
use bpfcase::vm::guest::{Hello, ObsFrame};
use bpfcase::vm::kernels::Manifest;
use libtest_mimic::{Arguments, Failed, Trial};
use sha2::{Digest, Sha256};
use support::*;

/// Scripts and files made once, before the test threads start.
struct Fixture {
    _dir: tempfile::TempDir,
    /// A file with a bzImage header: enough for `--kernel PATH`.
    bzimage: PathBuf,
    /// A QEMU that writes `$BPFCASE_TEST_FRAMES` to its second serial file and exits.
    replay_qemu: PathBuf,
    /// A QEMU that never exits.
    hung_qemu: PathBuf,
    /// A one-instance case file.
    case: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let bzimage = dir.path().join("bzImage");
    fs::write(&bzimage, fake_image(8192)).expect("writing a fake image");
    let replay_qemu = dir.path().join("replay-qemu");
    script(
        &replay_qemu,
        "#!/bin/sh\n# Stands in for qemu-system-x86_64: the second -serial file gets the frames.\n\
         n=0; out=\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = -serial ]; then n=$((n+1)); \
         [ $n = 2 ] && out=${2#file:}; fi\n  shift\ndone\ncat \"$BPFCASE_TEST_FRAMES\" > \"$out\"\n",
    );
    let hung_qemu = dir.path().join("hung-qemu");
    script(&hung_qemu, "#!/bin/sh\nexec sleep 600\n");
    let case = dir.path().join("lookup.json");
    fs::write(
        &case,
        r#"{ "about": "one user-space lookup",
             "maps": { "st": { "type": "task_storage", "value_size": 8 } },
             "steps": [ { "lookup": { "map": "st", "task": "self", "as": "l" } } ] }"#,
    )
    .expect("writing a case");
    Fixture {
        _dir: dir,
        bzimage,
        replay_qemu,
        hung_qemu,
        case,
    }
}

fn fake_image(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[..2].copy_from_slice(b"MZ");
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b
}

/// A cache entry as `bpfcase fetch` stores it: `kernels/<package>_<version>/{vmlinuz,meta.json}`.
fn fake_entry(cache: &Path, package: &str, version: &str, marker: u8) {
    let dir = cache.join("kernels").join(format!("{package}_{version}"));
    fs::create_dir_all(&dir).expect("creating a cache entry");
    let mut image = fake_image(8192);
    image[4096] = marker;
    let sha: String = Sha256::digest(&image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(dir.join("vmlinuz"), image).expect("writing an image");
    let meta = serde_json::json!({ "package": package, "version": version, "sha256": sha });
    fs::write(dir.join("meta.json"), meta.to_string()).expect("writing meta.json");
}

fn pins_from_elsewhere() -> Result<(), Failed> {
    let m = Manifest::builtin().map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir()?;
    let xdg = tmp.path().join("xdg");
    let cache = xdg.join("bpfcase");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(&elsewhere)?;
    for (_, package, version) in pins(&m) {
        fake_entry(&cache, &package, &version, 1);
        // A newer build of the same package next to it: the pin still wins.
        fake_entry(&cache, &package, &format!("{version}+b1"), 2);
    }
    let fetch = |args: &[&str]| {
        bpfcase(&new_mark("pins"))
            .arg("fetch")
            .args(args)
            .current_dir(&elsewhere)
            .env("XDG_CACHE_HOME", &xdg)
            .output()
    };
    let expected = |spec: &str| -> Result<String, Failed> {
        let s = series(spec).ok_or(format!("{spec}: not a debian spec"))?;
        let pin = &m.debian.get(&s).ok_or(format!("{spec}: not pinned"))?;
        let entry = cache.join(format!("kernels/{}_{}/vmlinuz", pin.package, pin.version));
        Ok(format!(
            "{spec}: {} ({spec} = {} {})",
            entry.display(),
            pin.package,
            pin.version
        ))
    };

    let out = fetch(&["default"])?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!("fetch default: {:?}\n{}", out.status, text(&out.stderr)).into());
    }
    let want: Vec<String> = m
        .default
        .iter()
        .map(|d| expected(d))
        .collect::<Result<_, _>>()?;
    assert_eq!(text(&out.stdout).lines().collect::<Vec<_>>(), want);

    let first = m
        .default
        .first()
        .ok_or("the manifest has no default kernel")?;
    let out = fetch(&[first])?;
    assert_eq!(text(&out.stdout).trim_end(), expected(first)?);
    assert!(!cache.join("apt").exists(), "cached pins need no apt state");

    // --manifest replaces the built-in manifest.
    let s = series(first).ok_or("not a debian spec")?;
    let other = tmp.path().join("other.json");
    let pin = &m.debian[&s];
    fs::write(
        &other,
        serde_json::json!({ "default": [first],
            "debian": { s.clone(): { "package": pin.package, "version": pin.version } } })
        .to_string(),
    )?;
    let out = fetch(&["--manifest", &other.display().to_string(), "default"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim_end(), expected(first)?);
    let absent = tmp.path().join("absent.json");
    let out = fetch(&["--manifest", &absent.display().to_string(), "default"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("absent.json"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// Frames a guest would send for `case`'s only instance ending in `outcome`.
fn frames(case_file: &Path, outcome: Outcome) -> Result<Vec<u8>, Failed> {
    let c = case::load(case_file).map_err(|e| e.to_string())?;
    let inst = c.instances.first().ok_or("the case has no instance")?;
    let obs = Observation {
        id: inst.id.clone(),
        outcome,
        results: Vec::new(),
        logs: Vec::new(),
    };
    let hello = Hello {
        release: "6.1.0-0-test".into(),
        version: "#1".into(),
        bpf_error: None,
        btf: true,
    };
    let v = report::verdict(inst, &obs, case::KernelSeries::from_release(&hello.release));
    let mut summary = Summary::default();
    summary.add(&obs, &v);
    let obs = ObsFrame {
        file: 0,
        line: report::json_line(inst, &obs, &v),
    };
    Ok([
        frame::encode("hello", &serde_json::to_vec(&hello)?),
        frame::encode("obs", &serde_json::to_vec(&obs)?),
        frame::encode("done", &serde_json::to_vec(&summary)?),
    ]
    .concat())
}

fn error_exits_1(fx: &Fixture) -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let run = |outcome: Outcome| -> Result<(Option<i32>, String), Failed> {
        let f = tmp.path().join("frames");
        fs::write(&f, frames(&fx.case, outcome)?)?;
        let out = bpfcase(&new_mark("error"))
            .args(["vm", "--accel", "tcg", "--kernel"])
            .arg(&fx.bzimage)
            .arg(&fx.case)
            .env("BPFCASE_QEMU", &fx.replay_qemu)
            .env("BPFCASE_TEST_FRAMES", &f)
            .env("XDG_CACHE_HOME", tmp.path())
            .env("TMPDIR", tmp.path())
            .output()?;
        Ok((out.status.code(), text(&out.stdout) + &text(&out.stderr)))
    };
    let (code, out) = run(Outcome::Error {
        message: "reading the result map: EIO".into(),
    })?;
    assert!(out.contains("error(reading the result map: EIO)"), "{out}");
    assert!(out.contains("1 errors"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    // The same guest without the error passes.
    let (code, out) = run(Outcome::Unsupported {
        reason: "map type task_storage".into(),
    })?;
    assert_eq!(code, Some(0), "{out}");
    Ok(())
}

fn hung_guest_dies_with_bpfcase(fx: &Fixture) -> Result<(), Failed> {
    for (sig, code) in [
        (libc::SIGTERM, Some(143)),
        (libc::SIGINT, Some(130)),
        (libc::SIGKILL, None),
    ] {
        let tmp = tempfile::tempdir()?;
        let mark = new_mark("hung");
        let mut child = bpfcase(&mark)
            .args(["vm", "--accel", "tcg", "--kernel"])
            .arg(&fx.bzimage)
            .arg(&fx.case)
            .env("BPFCASE_QEMU", &fx.hung_qemu)
            .env("XDG_CACHE_HOME", tmp.path())
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let started = poll(Duration::from_secs(30), || {
            let qemu = alive(&mark).into_iter().find(|p| p.comm == "sleep")?;
            let work = entries(tmp.path())
                .into_iter()
                .find(|e| e.starts_with("bpfcase-vm-"))?;
            Some((qemu, work))
        });
        let Some((qemu, work)) = started else {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
            return Err("the stand-in QEMU never started".into());
        };
        signal(&child, sig);
        let out = child.wait_with_output()?;
        assert_eq!(
            out.status.code(),
            code,
            "signal {sig}: {}",
            text(&out.stderr)
        );
        let left = survivors(&mark, Duration::from_secs(5));
        assert!(
            left.is_empty(),
            "signal {sig}: still running: {left:?} (QEMU was {qemu:?})"
        );
        if sig != libc::SIGKILL {
            // SIGKILL leaves no chance to clean up; the other signals do.
            assert!(
                !tmp.path().join(&work).exists(),
                "signal {sig}: {work} is left"
            );
            assert!(
                text(&out.stderr).contains("stopped by"),
                "{}",
                text(&out.stderr)
            );
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let fx = std::sync::Arc::new(fixture());
    let (a, b) = (fx.clone(), fx.clone());
    let trials = vec![
        Trial::test(
            "kernels_resolve_the_same_from_anywhere",
            pins_from_elsewhere,
        ),
        Trial::test("vm_exits_1_when_an_instance_ends_in_error", move || {
            error_exits_1(&a)
        }),
        Trial::test("a_hung_guest_dies_with_bpfcase", move || {
            hung_guest_dies_with_bpfcase(&b)
        }),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // The last owner of the fixture: its directory goes before the exit (which runs no drops).
    drop(fx);
    conclusion.exit();
}
