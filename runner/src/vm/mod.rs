//! VM layer: run the suite inside any kernel. A kernel image (a path, or a Debian kernel from the
//! machine's own mirror, see `kernels`) boots under QEMU with an initramfs built in memory whose
//! `/init` is this very (static) binary plus the case files; the guest streams observations back
//! over a dedicated serial port; a watchdog bounds every guest. A panic, oops, WARN splat, hang
//! or early death becomes data for that kernel.
//!
//! Owns: initramfs contents, starting and watching QEMU, collecting frames and console
//! problems. Must not: need root on the host, or interpret observations (that is `report`).
//!
//! Submodules: `kernels` (kernel supply), `options` (what a guest is started with, and the
//! limits of each value), `qemu` (the command line), `accel` (whether KVM boots guests here,
//! measured once and kept in the cache), `procs` (children and work directories that never
//! outlive bpfcase, signal handling), `cpio`, `frame` (the result wire format), `diagnose`
//! (what went wrong, in words), `guest` (the PID 1 side).

pub mod accel;
pub mod cpio;
pub mod diagnose;
pub mod frame;
pub mod guest;
pub mod kernels;
pub mod options;
pub mod procs;
pub mod qemu;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diagnose::End;
use guest::{Config, Hello, ObsFrame};
use kernels::Kernel;
pub use options::Options;
use qemu::Accel;

use crate::report::Summary;

/// How long a KVM guest may take to say hello before KVM is judged unable to boot kernels
/// here (a KVM boot takes about a second; some hosts accept KVM but never run a guest).
const KVM_PROBE: Duration = Duration::from_secs(10);

/// How often a running guest's observations are counted for [`Progress`].
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What one guest did.
#[derive(Debug)]
pub struct GuestRun {
    /// Which kernel, exactly.
    pub origin: String,
    pub accel: Accel,
    pub hello: Option<Hello>,
    /// (index of the case file, the `run --format json` record).
    pub records: Vec<(usize, serde_json::Value)>,
    pub summary: Option<Summary>,
    /// Kernel panics, oopses, WARN splats, hangs, early deaths, guest errors.
    pub problems: Vec<String>,
    /// Things the user should know that are not problems (e.g. the KVM verdict, once measured).
    pub notes: Vec<String>,
    /// Why this kernel cannot serve (no BPF, no BTF), if so.
    pub unusable: Option<String>,
    /// The last lines of the kernel console.
    pub console_tail: String,
    pub initramfs: Duration,
    pub boot_to_hello: Option<Duration>,
    pub total: Duration,
}

impl GuestRun {
    /// `<major>.<minor>` of the guest kernel, the snapshot label.
    pub fn label(&self) -> Option<String> {
        self.hello.as_ref().map(|h| label(&h.release))
    }
}

/// `<major>.<minor>` from a kernel release such as `6.1.0-56-cloud-amd64`.
pub fn label(release: &str) -> String {
    let mut parts = release.split(['.', '-']);
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    format!("{major}.{minor}")
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("no qemu-system-x86_64 on PATH (install qemu-system-x86, or set BPFCASE_QEMU)")]
    NoQemu,
    /// An option outside what QEMU and the guests take ([`Options::check`]).
    #[error("{0}")]
    BadOptions(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// The initramfs: `/init` (this binary), device nodes for the consoles, the case files and
/// the guest's configuration. Deterministic for the same inputs.
pub fn initramfs(init: &[u8], cases: &[PathBuf], filters: &[String]) -> Result<Vec<u8>, VmError> {
    let mut a = cpio::Archive::new();
    for d in ["dev", "proc", "sys", "tmp", "bpfcase", "bpfcase/cases"] {
        a.dir(d, 0o755);
    }
    a.char_dev("dev/console", 0o600, 5, 1);
    a.char_dev("dev/null", 0o666, 1, 3);
    a.char_dev("dev/ttyS0", 0o600, 4, 64);
    a.char_dev("dev/ttyS1", 0o600, 4, 65);
    a.file("init", 0o755, init);
    let mut cfg = Config {
        cases: Vec::new(),
        filters: filters.to_vec(),
    };
    for (i, c) in cases.iter().enumerate() {
        let name = c
            .file_name()
            .map_or("case.json".into(), |n| n.to_string_lossy().into_owned());
        let dir = format!("bpfcase/cases/{i}");
        a.dir(&dir, 0o755);
        let path = format!("{dir}/{name}");
        a.file(
            &path,
            0o644,
            &std::fs::read(c).map_err(io(format!("reading {}", c.display())))?,
        );
        cfg.cases.push(path);
    }
    let cfg = serde_json::to_vec(&cfg).expect("the guest config serializes");
    a.file(guest::CONFIG, 0o644, &cfg);
    Ok(a.finish())
}

/// Boots `kernel` with the cases and collects what the guest reported.
pub fn boot(
    kernel: &Kernel,
    cases: &[PathBuf],
    filters: &[String],
    opts: &Options,
) -> Result<GuestRun, VmError> {
    boot_watched(kernel, cases, filters, opts, &|_| {})
}

/// What a running guest has done so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The runner inside said hello.
    Booted,
    /// This many observations have arrived.
    Observed(usize),
}

/// [`boot`], telling `progress` what the guest has done while it runs (from this thread).
pub fn boot_watched(
    kernel: &Kernel,
    cases: &[PathBuf],
    filters: &[String],
    opts: &Options,
    progress: &dyn Fn(Progress),
) -> Result<GuestRun, VmError> {
    opts.check().map_err(VmError::BadOptions)?;
    let qemu_bin = qemu::find_qemu().ok_or(VmError::NoQemu)?;
    let t0 = Instant::now();
    let exe = std::env::current_exe().map_err(io("finding this binary"))?;
    let init = std::fs::read(&exe).map_err(io(format!("reading {}", exe.display())))?;
    let image = initramfs(&init, cases, filters)?;
    let initramfs_time = t0.elapsed();

    let work = procs::work_dir("bpfcase-vm-", None).map_err(io("creating a work directory"))?;
    let work = work.path();
    let initrd = work.join("initrd.cpio");
    std::fs::write(&initrd, &image).map_err(io("writing the initramfs"))?;
    let guest = |accel| qemu::Guest {
        qemu: qemu_bin.clone(),
        accel,
        kernel: kernel.image.clone(),
        initrd: initrd.clone(),
        memory_mb: opts.memory_mb,
        cpus: opts.cpus,
        console: work.join("console.log"),
        results: work.join("results.bin"),
        append: opts.append.clone(),
    };
    let sizes = Sizes {
        memory_mb: opts.memory_mb,
        initramfs_bytes: image.len() as u64,
        kernel: kernels::boot_header(&kernel.image),
    };
    let cache = opts.cache.as_deref();
    let mut notes = Vec::new();
    let (accel, run) = match opts.accel {
        Some(a) => (a, watch(&guest(a), opts.timeout, None, &sizes, progress)?),
        None => match accel::plan(&qemu_bin, cache) {
            accel::Plan::Tcg => (
                Accel::Tcg,
                watch(&guest(Accel::Tcg), opts.timeout, None, &sizes, progress)?,
            ),
            accel::Plan::TryKvm => {
                let r = watch(
                    &guest(Accel::Kvm),
                    opts.timeout,
                    Some(KVM_PROBE),
                    &sizes,
                    progress,
                )?;
                if r.hello.is_some() {
                    notes.extend(accel::learned(cache, true));
                    (Accel::Kvm, r)
                } else {
                    // KVM accepted the guest but did not boot it: emulate. Only a kernel that
                    // boots under TCG says that KVM is the problem.
                    let r = watch(&guest(Accel::Tcg), opts.timeout, None, &sizes, progress)?;
                    if r.hello.is_some() {
                        notes.extend(accel::learned(cache, false));
                    }
                    (Accel::Tcg, r)
                }
            }
        },
    };
    let mut problems = console_problems(&run.console);
    problems.extend(run.problems);
    let unusable = run.hello.as_ref().and_then(|h| {
        if let Some(e) = &h.bpf_error {
            Some(format!(
                "no BPF: bpf(BPF_MAP_CREATE) fails with {e} (CONFIG_BPF_SYSCALL?)"
            ))
        } else if !h.btf {
            Some(
                "no kernel BTF: /sys/kernel/btf/vmlinux is missing (a kernel built without \
                 CONFIG_DEBUG_INFO_BTF?)"
                    .into(),
            )
        } else {
            None
        }
    });
    Ok(GuestRun {
        origin: kernel.origin.clone(),
        accel,
        hello: run.hello,
        records: run.records,
        summary: run.summary,
        problems,
        notes,
        unusable,
        console_tail: tail(&run.console, 30),
        initramfs: initramfs_time,
        boot_to_hello: run.boot_to_hello,
        total: t0.elapsed(),
    })
}

/// What the diagnosis needs to know about memory: the guest's, the initramfs's and the
/// kernel's.
struct Sizes {
    memory_mb: u32,
    initramfs_bytes: u64,
    kernel: Option<kernels::BootHeader>,
}

struct Watched {
    hello: Option<Hello>,
    records: Vec<(usize, serde_json::Value)>,
    summary: Option<Summary>,
    problems: Vec<String>,
    console: String,
    boot_to_hello: Option<Duration>,
}

/// Runs QEMU until it exits, the watchdog fires, or (with `probe`) no hello came in time.
fn watch(
    g: &qemu::Guest,
    timeout: Duration,
    probe: Option<Duration>,
    sizes: &Sizes,
    progress: &dyn Fn(Progress),
) -> Result<Watched, VmError> {
    let _ = std::fs::remove_file(&g.console);
    let _ = std::fs::remove_file(&g.results);
    let start = Instant::now();
    // A registered child: it dies with this process, and a signal to this process stops it.
    let mut child = procs::spawn(
        qemu::command(g)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    )
    .map_err(io(format!("starting {}", g.qemu.display())))?;
    let mut boot_to_hello = None;
    let (mut observed, mut counted_at) = (0, start);
    let end = loop {
        if let Some(st) = child.try_wait().map_err(io("waiting for QEMU"))? {
            break End::Exited(st);
        }
        let elapsed = start.elapsed();
        if boot_to_hello.is_none() {
            let bytes = std::fs::read(&g.results).unwrap_or_default();
            if frame::decode(&bytes).0.iter().any(|f| f.kind == "hello") {
                boot_to_hello = Some(elapsed);
                progress(Progress::Booted);
            } else if probe.is_some_and(|p| elapsed > p) {
                child.kill();
                break End::Probe;
            }
        } else if counted_at.elapsed() > PROGRESS_EVERY {
            counted_at = Instant::now();
            let bytes = std::fs::read(&g.results).unwrap_or_default();
            let n = frame::decode(&bytes)
                .0
                .iter()
                .filter(|f| f.kind == "obs")
                .count();
            if n != observed {
                observed = n;
                progress(Progress::Observed(n));
            }
        }
        if boot_to_hello.is_some() && finished(&g.results) {
            // Every result is in: the guest's power-off adds nothing but time.
            child.kill();
            break End::Finished;
        }
        if elapsed > timeout {
            child.kill();
            break End::Watchdog(timeout);
        }
        std::thread::sleep(Duration::from_millis(if boot_to_hello.is_some() {
            20
        } else {
            5
        }));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.child().stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let bytes = std::fs::read(&g.results).unwrap_or_default();
    let console =
        String::from_utf8_lossy(&std::fs::read(&g.console).unwrap_or_default()).into_owned();
    let (frames, truncated) = frame::decode(&bytes);
    let mut w = Watched {
        hello: None,
        records: Vec::new(),
        summary: None,
        problems: Vec::new(),
        console,
        boot_to_hello,
    };
    for f in frames {
        match f.kind.as_str() {
            "hello" => w.hello = serde_json::from_slice(&f.payload).ok(),
            "obs" => match serde_json::from_slice::<ObsFrame>(&f.payload) {
                Ok(o) => w.records.push((o.file, o.line)),
                Err(e) => w
                    .problems
                    .push(format!("unreadable observation frame: {e}")),
            },
            "done" => w.summary = serde_json::from_slice(&f.payload).ok(),
            "error" => w.problems.push(format!(
                "guest error: {}",
                String::from_utf8_lossy(&f.payload)
            )),
            other => w.problems.push(format!("unknown frame kind `{other}`")),
        }
    }
    if truncated {
        w.problems
            .push("the result stream ends inside a frame: the guest died while writing".into());
    }
    let facts = diagnose::Facts {
        end,
        stderr: &stderr,
        console: &w.console,
        elapsed,
        hello: w.hello.is_some(),
        done: w.summary.is_some(),
        memory_mb: sizes.memory_mb,
        initramfs_bytes: sizes.initramfs_bytes,
        kernel: sizes.kernel,
        cmdline: &qemu::cmdline(&g.append),
    };
    let mut problems = diagnose::problems(&facts);
    problems.append(&mut w.problems);
    w.problems = problems;
    Ok(w)
}

/// Whether the results file holds the final `done` frame (checked cheaply on its tail first).
fn finished(results: &Path) -> bool {
    let bytes = std::fs::read(results).unwrap_or_default();
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(14).any(|w| w == b"@@bpfcase done")
        && frame::decode(&bytes).0.iter().any(|f| f.kind == "done")
}

/// Lines of the kernel console that say something went wrong in the kernel.
pub fn console_problems(console: &str) -> Vec<String> {
    const MARKERS: &[&str] = &[
        "Kernel panic - not syncing",
        "BUG: ",
        "kernel BUG at",
        "Oops: ",
        "WARNING: ",
        "general protection fault",
        "Unable to handle kernel",
        "INFO: task ",
        "watchdog: BUG: soft lockup",
        "RCU stall",
    ];
    console
        .lines()
        .map(|l| strip_timestamp(l.trim_end_matches('\r')))
        .filter(|l| MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| format!("kernel: {l}"))
        .collect()
}

/// `[    1.234567] msg` → `msg`: timestamps differ between boots.
fn strip_timestamp(l: &str) -> &str {
    if l.starts_with('[') {
        if let Some(i) = l.find("] ") {
            return &l[i + 2..];
        }
    }
    l
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_releases() {
        assert_eq!(label("6.1.0-56-cloud-amd64"), "6.1");
        assert_eq!(label("7.3.4+deb13-cloud-amd64"), "7.3");
        assert_eq!(label("5.10.0-46-cloud-amd64"), "5.10");
        assert_eq!(label("7.3.0-rc7"), "7.3");
    }

    #[test]
    fn console_problems_are_found_without_timestamps() {
        let c = "[    0.000000] Linux version 6.1\n[    2.5] WARNING: CPU: 0 PID: 1 at kernel/bpf/x.c:10 f+0x1/0x2\r\nok\n[ 3.1] Kernel panic - not syncing: Attempted to kill init!\n";
        assert_eq!(
            console_problems(c),
            vec![
                "kernel: WARNING: CPU: 0 PID: 1 at kernel/bpf/x.c:10 f+0x1/0x2",
                "kernel: Kernel panic - not syncing: Attempted to kill init!"
            ]
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
