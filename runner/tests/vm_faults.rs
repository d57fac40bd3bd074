//! Guests that go wrong, and what `bpfcase vm` makes of them: each fault becomes data for its
//! kernel, with an explanation a person understands, the observations completed before the
//! fault are kept, and the healthy kernel next to it in the same run reports every instance.
//!
//! Without a guest kernel (always run):
//! - `--memory`, `--cpus` and `--timeout` outside what QEMU and the guests take exit 2 naming
//!   the range, and start nothing; so does a `--append` that cannot be a command line.
//! - `--append` reaches the kernel command line after bpfcase's own parameters (`vm` and
//!   `bench --kernel`), as a stand-in QEMU records.
//! - A guest that ends at once with an empty console is reported under its spec, with what
//!   QEMU did and the likely causes.
//!
//! With real guests, when `BPFCASE_KERNELS` names kernels (as `scripts/test` does; otherwise
//! they report themselves ignored), the first of them is the healthy kernel and a symlink to
//! its image is the faulty one, both in one `bpfcase vm` run:
//! - a kernel that panics mid-run (`--append bpfcase.crash_after=2`: the guest's test knob,
//!   SysRq `c` after two instances), then the same with `panic=0`: a kernel that stays down,
//!   which the watchdog (`--timeout`) ends;
//! - too little memory (`--memory 68`, the least bpfcase accepts);
//! - no BTF (`--append initcall_blacklist=btf_vmlinux_init`: the kernel never publishes
//!   `/sys/kernel/btf/vmlinux`);
//! - images that are no kernel: a text file, a truncated copy, a copy whose kernel is garbage.
//!
//! bpfcase gives every kernel of a run the same flags, so the faulty kernel gets its fault
//! through them while a shield in front of QEMU (`BPFCASE_QEMU`, a script that execs the real
//! QEMU) takes it away from the others: it cuts the test's `--append` off their command line
//! and gives them 512 MiB. The faulty guest runs with exactly what bpfcase reports.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bpfcase::vm::kernels::boot_header;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;
use support::*;

/// Four map creations: cheap on every kernel, and each reports.
const FILTER: &str = "map_create/flags=no_prealloc/*btf=true/value_size=0x8";
const INSTANCES: usize = 4;

/// Scripts and files made once, before the test threads start.
struct Fixture {
    dir: tempfile::TempDir,
    /// A QEMU that appends its arguments, one per line, to `$BPFCASE_TEST_ARGS` and exits 0.
    recording_qemu: PathBuf,
    /// The shield in front of the real QEMU (see the module doc).
    shield_qemu: PathBuf,
    /// A file with a bzImage header and nothing else.
    fake_image: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let recording_qemu = dir.path().join("recording-qemu");
    script(
        &recording_qemu,
        "#!/bin/sh\n# Stands in for qemu-system-x86_64: records its arguments, then exits.\n\
         for a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$BPFCASE_TEST_ARGS\"\necho --- >> \"$BPFCASE_TEST_ARGS\"\n",
    );
    let shield_qemu = dir.path().join("shield-qemu");
    script(
        &shield_qemu,
        "#!/bin/sh\n# The guest of $BPFCASE_TEST_FAULTY boots as bpfcase asks; every other one without\n\
         # the fault: \" $BPFCASE_TEST_FAULT\" cut off its command line, 512 MiB of memory.\n\
         prev=\nfor a in \"$@\"; do\n  [ \"$prev\" = -kernel ] && [ \"$a\" = \"$BPFCASE_TEST_FAULTY\" ] && exec \"$BPFCASE_TEST_QEMU\" \"$@\"\n  prev=$a\ndone\n\
         n=$#\nprev=\nfor a in \"$@\"; do\n  case $prev in\n    -append) a=${a%\" $BPFCASE_TEST_FAULT\"} ;;\n    -m) a=512M ;;\n  esac\n  set -- \"$@\" \"$a\"\n  prev=$a\ndone\nshift $n\nexec \"$BPFCASE_TEST_QEMU\" \"$@\"\n",
    );
    let fake_image = dir.path().join("bzImage");
    let mut b = vec![0u8; 8192];
    b[..2].copy_from_slice(b"MZ");
    b[0x202..0x206].copy_from_slice(b"HdrS");
    fs::write(&fake_image, b).expect("writing a fake image");
    Fixture {
        dir,
        recording_qemu,
        shield_qemu,
        fake_image,
    }
}

fn case_file() -> PathBuf {
    workspace().join("cases/task_storage/map_create.json")
}

/// `bpfcase WORDS… --kernel <fake image> <case file>` with the recording stand-in QEMU.
fn stand_in(fx: &Fixture, args: &Path, words: &[&str]) -> std::io::Result<Output> {
    bpfcase(&new_mark("stand-in"))
        .args(words)
        .arg("--kernel")
        .arg(&fx.fake_image)
        .arg(case_file())
        .env("BPFCASE_QEMU", &fx.recording_qemu)
        .env("BPFCASE_TEST_ARGS", args)
        .env("XDG_CACHE_HOME", fx.dir.path())
        .output()
}

fn bad_options_are_refused(fx: &Fixture) -> Result<(), Failed> {
    let args = fx.dir.path().join("bad-options.args");
    let long = "x".repeat(2000);
    let range = "from 68 to 1048576";
    for (flags, name, want) in [
        (&["--memory", "0"][..], "--memory", range),
        (&["--memory", "67"], "--memory", range),
        (&["--memory", "2000000"], "--memory", range),
        (&["--cpus", "0"], "--cpus", "1 to 255 vCPUs"),
        (&["--timeout", "0"], "--timeout", "1 to 86400 seconds"),
        (&["--timeout=-1"], "--timeout", "not a whole number"),
        (&["--append", "a\nb"], "--append", "on one line"),
        (&["--append", &long], "--append", "at most 2047"),
    ] {
        let out = stand_in(fx, &args, &[&["vm", "--accel", "tcg"][..], flags].concat())?;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(name) && err.contains(want), "{flags:?}: {err}");
    }
    let out = bpfcase(&new_mark("bad-options"))
        .args(["bench", "--append", "quiet"])
        .arg(case_file())
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("give --kernel too"));
    assert!(!args.exists(), "a guest was started: {:?}", fs::read(&args));
    Ok(())
}

/// The `-append` values of every QEMU the recording stand-in saw.
fn recorded_cmdlines(args: &Path) -> Result<Vec<String>, Failed> {
    let all = fs::read_to_string(args)?;
    let lines: Vec<&str> = all.lines().collect();
    Ok(lines
        .windows(2)
        .filter(|w| w[0] == "-append")
        .map(|w| w[1].to_string())
        .collect())
}

fn append_reaches_the_command_line(fx: &Fixture) -> Result<(), Failed> {
    const OURS: &str = "console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off cryptomgr.notests rcupdate.rcu_expedited=1";
    let args = fx.dir.path().join("append.args");
    let out = stand_in(
        fx,
        &args,
        &["vm", "--accel", "tcg", "--append", "lockdown=integrity"],
    )?;
    let stdout = text(&out.stdout);
    assert_eq!(
        recorded_cmdlines(&args)?,
        [format!("{OURS} lockdown=integrity")],
        "{stdout}"
    );
    // The stand-in ends at once, before any console line: reported under its spec.
    let spec = fx.fake_image.display().to_string();
    assert!(stdout.starts_with(&format!("## {spec} (")), "{stdout}");
    assert!(!stdout.contains("unknown"), "{stdout}");
    for want in [
        "the guest never started the runner: QEMU exited by itself with status 0 after",
        "the kernel console is empty",
        "Likely causes: a truncated or corrupt kernel image",
        "-- the console is empty",
        &format!("\n{spec}: 0 instances"),
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");

    // Repeated, with a leading hyphen, on bench --kernel (every boot of it).
    fs::remove_file(&args)?;
    let words = [
        "bench",
        "--rounds",
        "1",
        "--append",
        "quiet",
        "--append=-x y=1",
    ];
    let out = stand_in(fx, &args, &words)?;
    let lines = recorded_cmdlines(&args)?;
    assert!(
        !lines.is_empty() && lines.iter().all(|l| *l == format!("{OURS} quiet -x y=1")),
        "{lines:?}: {}",
        text(&out.stderr)
    );
    Ok(())
}

/// One kernel of a `vm --format json` run: its kernel record, observations and summary.
#[derive(Debug, Default)]
struct Reported {
    kernel: Value,
    observations: Vec<Value>,
    summary: Option<Value>,
}

impl Reported {
    fn problems(&self) -> Vec<String> {
        self.kernel["problems"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ids(&self) -> Vec<String> {
        self.observations
            .iter()
            .filter_map(|o| o["observation"]["id"].as_str().map(String::from))
            .collect()
    }
}

fn parse(out: &Output) -> Result<Vec<Reported>, Failed> {
    let mut kernels: Vec<Reported> = Vec::new();
    for line in text(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{line}: {e}"))?;
        if v.get("summary").is_some() {
            kernels.last_mut().ok_or("a summary first")?.summary = Some(v);
        } else if v.get("observation").is_some() {
            kernels
                .last_mut()
                .ok_or("an observation first")?
                .observations
                .push(v);
        } else {
            kernels.push(Reported {
                kernel: v["kernel"].clone(),
                ..Reported::default()
            });
        }
    }
    Ok(kernels)
}

/// The healthy kernel: the first of `BPFCASE_KERNELS`, and its image (`bpfcase fetch`).
fn healthy() -> Result<(String, PathBuf), Failed> {
    let spec = guest_kernels()
        .into_iter()
        .next()
        .ok_or("no guest kernel")?;
    let out = bpfcase(&new_mark("fetch"))
        .args(["fetch", &spec])
        .output()?;
    let stdout = text(&out.stdout);
    let path = stdout
        .trim_end()
        .strip_prefix(&format!("{spec}: "))
        .and_then(|rest| rest.rsplit_once(" (").map(|(p, _)| p))
        .ok_or_else(|| format!("bpfcase fetch {spec}: {stdout}{}", text(&out.stderr)))?;
    Ok((spec, PathBuf::from(path)))
}

/// `bpfcase vm` on the healthy kernel and `faulty`, the fault given by `flags` (whose
/// `--append` the shield keeps from the healthy one); the two kernels' reports.
fn run(fx: &Fixture, faulty: &Path, flags: &[&str]) -> Result<(Reported, Reported), Failed> {
    let (spec, _) = healthy()?;
    let real = bpfcase::vm::qemu::find_qemu().ok_or("no QEMU")?;
    let fault = flags
        .windows(2)
        .filter(|w| w[0] == "--append")
        .map(|w| w[1])
        .collect::<Vec<_>>()
        .join(" ");
    let out = bpfcase(&new_mark("fault"))
        .args(["vm", "--accel", "tcg", "--format", "json", "--jobs", "2"])
        .args(["--kernel", &spec, "--kernel"])
        .arg(faulty)
        .args(flags)
        .args(["--filter", FILTER])
        .arg(case_file())
        .env("BPFCASE_QEMU", &fx.shield_qemu)
        .env("BPFCASE_TEST_QEMU", real)
        .env("BPFCASE_TEST_FAULTY", faulty)
        .env("BPFCASE_TEST_FAULT", fault)
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let mut kernels = parse(&out)?.into_iter();
    let (Some(h), Some(f), None) = (kernels.next(), kernels.next(), kernels.next()) else {
        return Err(format!("not two kernels: {}", text(&out.stdout)).into());
    };
    assert_eq!(h.kernel["spec"], spec);
    assert_eq!(f.kernel["spec"], faulty.display().to_string());
    // The healthy kernel is untouched by its neighbour's fault.
    assert_eq!(h.problems(), Vec::<String>::new(), "{:?}", h.kernel);
    assert_eq!(h.kernel["unusable"], Value::Null, "{:?}", h.kernel);
    assert_eq!(h.ids().len(), INSTANCES, "{:?}", h.ids());
    let hs = h
        .summary
        .as_ref()
        .ok_or("no summary for the healthy kernel")?;
    assert_eq!(hs["did_not_report"], 0);
    assert_eq!(hs["summary"]["instances"], INSTANCES);
    Ok((h, f))
}

/// A symlink to the healthy kernel's image: the same kernel under another spec.
fn faulty_link(fx: &Fixture, name: &str) -> Result<PathBuf, Failed> {
    let (_, image) = healthy()?;
    let link = fx.dir.path().join(name);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(image, &link)?;
    Ok(link)
}

/// The faulty kernel stopped after `kept` instances: those equal the healthy kernel's first
/// ones (the same kernel), and the summary names the next.
fn kept(h: &Reported, f: &Reported, kept: usize) {
    assert_eq!(f.observations.len(), kept, "{:?}", f.ids());
    for (a, b) in f.observations.iter().zip(&h.observations) {
        assert_eq!(a["observation"], b["observation"]);
    }
    let s = f.summary.as_ref().expect("a summary for the faulty kernel");
    assert_eq!(s["did_not_report"], INSTANCES - kept);
    assert_eq!(s["stopped_at"], h.ids()[kept]);
}

fn panics_mid_run(fx: &Fixture) -> Result<Completion, Failed> {
    let link = faulty_link(fx, "panicking-vmlinuz")?;
    let (h, f) = run(fx, &link, &["--append", "bpfcase.crash_after=2"])?;
    let p = f.problems();
    assert!(
        p.iter().any(|p| p.starts_with(
            "the kernel panicked while the runner was working through the cases (`Kernel panic - not syncing: sysrq triggered crash`)"
        ) && p.contains("observations it sent before are kept")),
        "{p:?}"
    );
    assert_eq!(f.kernel["label"], h.kernel["label"]);
    kept(&h, &f, 2);
    Ok(Completion::Completed)
}

fn hangs(fx: &Fixture) -> Result<Completion, Failed> {
    let link = faulty_link(fx, "hanging-vmlinuz")?;
    let flags = [
        "--timeout",
        "30",
        "--append",
        "bpfcase.crash_after=1 panic=0",
    ];
    let (h, f) = run(fx, &link, &flags)?;
    let p = f.problems();
    assert!(
        p.iter().any(|p| p.starts_with(
            "hang: the guest was still running after 30 s (the --timeout watchdog) and was killed; the kernel had panicked"
        ) && p.contains("as `panic=0` on its command line asks")),
        "{p:?}"
    );
    kept(&h, &f, 1);
    Ok(Completion::Completed)
}

/// The least memory bpfcase accepts.
const LEAST: u64 = 68;

fn too_little_memory(fx: &Fixture) -> Result<Completion, Failed> {
    let link = faulty_link(fx, "starved-vmlinuz")?;
    // The initramfs holds this binary: when the kernel cannot even decompress itself next to
    // it in 68 MiB, the guest certainly cannot start (a release build's is small enough for
    // 5.10 to start).
    let binary = fs::metadata(env!("CARGO_BIN_EXE_bpfcase"))?.len();
    let floor = boot_header(&link)
        .and_then(|h| h.memory_floor())
        .ok_or("the kernel's boot header gives no init_size")?;
    if floor + binary <= LEAST << 20 {
        return Ok(Completion::ignored_with(
            "this build's initramfs is small enough for the kernel to start in 68 MiB (a debug build's is not)",
        ));
    }
    let (_, f) = run(fx, &link, &["--memory", &LEAST.to_string()])?;
    let p = f.problems();
    assert!(
        p.iter()
            .any(|p| (p.starts_with("the guest never started the runner: ")
                // An initramfs (a debug build's) larger than the guest: QEMU refuses first.
                || p.starts_with("QEMU could not run the guest: "))
                && p.contains(&format!("{LEAST} MiB"))
                && p.contains("more --memory")),
        "{p:?}"
    );
    // Never started: no release, so the kernel goes by its spec.
    assert_eq!(f.kernel["label"], link.display().to_string());
    assert_eq!(f.observations.len(), 0);
    let s = f.summary.as_ref().ok_or("no summary")?;
    assert_eq!(s["did_not_report"], INSTANCES);
    assert_eq!(s["stopped_at"], Value::Null);
    Ok(Completion::Completed)
}

fn without_btf(fx: &Fixture) -> Result<Completion, Failed> {
    let link = faulty_link(fx, "btf-less-vmlinuz")?;
    let (h, f) = run(
        fx,
        &link,
        &["--append", "initcall_blacklist=btf_vmlinux_init"],
    )?;
    let u = f.kernel["unusable"].as_str().unwrap_or_default();
    assert!(
        u.starts_with("no kernel BTF: /sys/kernel/btf/vmlinux is missing"),
        "{:?}",
        f.kernel
    );
    assert_eq!(f.problems(), Vec::<String>::new());
    // The runner went on: every instance reported.
    assert_eq!(f.ids(), h.ids());
    Ok(Completion::Completed)
}

fn not_kernels(fx: &Fixture) -> Result<Completion, Failed> {
    let (spec, image) = healthy()?;
    let bytes = fs::read(&image)?;
    let truncated = fx.dir.path().join("truncated-vmlinuz");
    fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    // The boot sector and setup code intact, the kernel after them garbage (0xff bytes: the
    // first instruction is undefined, and with no interrupt table yet the CPU resets).
    let corrupt = fx.dir.path().join("corrupt-vmlinuz");
    let setup_sects = match bytes.get(0x1f1) {
        Some(0) | None => 4,
        Some(&n) => usize::from(n),
    };
    let setup = (setup_sects + 1) * 512;
    let mut garbage = bytes.clone();
    garbage[setup..].fill(0xff);
    fs::write(&corrupt, garbage)?;
    let real = bpfcase::vm::qemu::find_qemu().ok_or("no QEMU")?;
    let text_file = case_file();
    let out = bpfcase(&new_mark("not-kernels"))
        .args([
            "vm",
            "--accel",
            "tcg",
            "--format",
            "json",
            "--timeout",
            "60",
        ])
        .args(["--kernel", &spec])
        .arg("--kernel")
        .arg(&text_file)
        .arg("--kernel")
        .arg(&truncated)
        .arg("--kernel")
        .arg(&corrupt)
        .args(["--filter", FILTER])
        .arg(case_file())
        .env("BPFCASE_QEMU", real)
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let k = parse(&out)?;
    assert_eq!(k.len(), 4, "{}", text(&out.stdout));
    assert_eq!(k[0].problems(), Vec::<String>::new());
    assert_eq!(k[0].ids().len(), INSTANCES);
    let error = |r: &Reported| r.kernel["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error(&k[1]).starts_with("not a bootable x86 kernel image: no bzImage header magic"),
        "{:?}",
        k[1].kernel
    );
    let whole = boot_header(&image)
        .and_then(|h| h.image_len())
        .ok_or("the kernel's boot header gives no size")?;
    assert!(
        error(&k[2]).starts_with(&format!(
            "not a bootable x86 kernel image: truncated: its boot header says the image is \
             {whole} bytes, the file has {}",
            bytes.len() / 2
        )),
        "{:?}",
        k[2].kernel
    );
    let p = k[3].problems();
    assert!(
        p.iter()
            .any(|p| p.starts_with("the guest never started the runner: ")
                && p.contains("truncated or corrupt kernel image")),
        "{p:?}"
    );
    assert_eq!(k[3].kernel["label"], corrupt.display().to_string());
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let fx = std::sync::Arc::new(fixture());
    let skip = guest_kernels()
        .is_empty()
        .then_some("needs guest kernels: set BPFCASE_KERNELS (scripts/test does)");
    // Guests run one test at a time: each test's run already keeps both cores busy.
    let one_at_a_time = std::sync::Arc::new(std::sync::Mutex::new(()));
    let plain = |name: &str, f: fn(&Fixture) -> Result<(), Failed>| {
        let fx = fx.clone();
        Trial::test(name, move || f(&fx))
    };
    let guest = |name: &str, f: fn(&Fixture) -> Result<Completion, Failed>| {
        let (fx, gate) = (fx.clone(), one_at_a_time.clone());
        Trial::ignorable_test(name, move || match skip {
            Some(why) => Ok(Completion::ignored_with(why)),
            None => {
                let _one = gate.lock().unwrap_or_else(|p| p.into_inner());
                f(&fx)
            }
        })
    };
    let trials = vec![
        plain(
            "bad_guest_options_exit_2_with_the_range",
            bad_options_are_refused,
        ),
        plain(
            "append_reaches_the_kernel_command_line",
            append_reaches_the_command_line,
        ),
        guest(
            "a_kernel_that_panics_mid_run_keeps_what_came_before",
            panics_mid_run,
        ),
        guest("a_kernel_that_stays_down_is_ended_by_the_watchdog", hangs),
        guest("too_little_memory_is_explained", too_little_memory),
        guest("a_kernel_without_btf_cannot_serve", without_btf),
        guest("paths_that_are_no_kernel_are_explained", not_kernels),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // The last owner of the fixture: its directory goes before the exit (which runs no drops).
    drop(fx);
    conclusion.exit();
}
