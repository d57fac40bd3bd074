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
//! (what went wrong, in words), `guest` (the PID 1 side), `watch` (one QEMU process, start to
//! end), and for warm starts (a guest saved once booted, restored for later runs): `warm` (the
//! save and restore handshakes), `snapshot` (the saved guests in the cache), `qmp` (talking to
//! QEMU) and `delivery` (the cases sent to a guest that has booted).

pub mod accel;
pub mod cpio;
pub mod delivery;
pub mod diagnose;
pub mod frame;
pub mod guest;
pub mod kernels;
pub mod options;
pub mod procs;
pub mod qemu;
pub mod qmp;
pub mod snapshot;
pub mod squeeze;
pub mod warm;
mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use delivery::Delivery;
use guest::{Config, Hello};
use kernels::Kernel;
pub use options::Options;
use qemu::Accel;
use watch::Sizes;

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
    /// Booted, booted and saved, or restored (see `warm`).
    pub start: warm::Start,
    pub hello: Option<Hello>,
    /// (index of the case file, the `run --format json` record).
    pub records: Vec<(usize, serde_json::Value)>,
    pub summary: Option<Summary>,
    /// Where the runner's time went inside the guest (from its `timing` frame).
    pub breakdown: Option<crate::results::Breakdown>,
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
    Ok(initramfs_with(init, &case_files(cases, filters)?))
}

/// The initramfs of a cold boot with these cases.
fn initramfs_with(init: &[u8], d: &Delivery) -> Vec<u8> {
    let mut a = base_initramfs(init);
    for (path, bytes) in &d.files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            a.dir(dir, 0o755);
        }
        a.file(path, 0o644, bytes);
    }
    let cfg = serde_json::to_vec(&d.config).expect("the guest config serializes");
    a.file(guest::CONFIG, 0o644, &cfg);
    a.finish()
}

/// Everything but the cases: a guest booted from it waits for them (see `warm`).
fn base_initramfs(init: &[u8]) -> cpio::Archive {
    let mut a = cpio::Archive::new();
    for d in ["dev", "proc", "sys", "tmp", "bpfcase", "bpfcase/cases"] {
        a.dir(d, 0o755);
    }
    a.char_dev("dev/console", 0o600, 5, 1);
    a.char_dev("dev/null", 0o666, 1, 3);
    a.char_dev("dev/ttyS0", 0o600, 4, 64);
    a.char_dev("dev/ttyS1", 0o600, 4, 65);
    a.char_dev("dev/ttyS2", 0o600, 4, 66);
    a.file("init", 0o755, init);
    a
}

/// The case files as the guest finds them: `bpfcase/cases/<i>/<file name>`, in order.
fn case_files(cases: &[PathBuf], filters: &[String]) -> Result<Delivery, VmError> {
    let mut d = Delivery {
        config: Config {
            cases: Vec::new(),
            filters: filters.to_vec(),
        },
        files: Vec::new(),
    };
    for (i, c) in cases.iter().enumerate() {
        let name = c
            .file_name()
            .map_or("case.json".into(), |n| n.to_string_lossy().into_owned());
        let path = format!("{}{i}/{name}", delivery::CASES_DIR);
        let bytes = std::fs::read(c).map_err(io(format!("reading {}", c.display())))?;
        d.files.push((path.clone(), bytes));
        d.config.cases.push(path);
    }
    Ok(d)
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
    let files = case_files(cases, filters)?;

    let work = procs::work_dir("bpfcase-vm-", None).map_err(io("creating a work directory"))?;
    let work = work.path();
    let initrd = work.join("initrd.cpio");
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
        control: None,
    };
    let sizes = |initramfs_bytes| Sizes {
        memory_mb: opts.memory_mb,
        initramfs_bytes,
        kernel: kernels::boot_header(&kernel.image),
    };
    let cache = opts.cache.as_deref();
    let mut notes = Vec::new();
    let plan = || accel::plan(&qemu_bin, cache);
    let known = opts
        .accel
        .or_else(|| (plan() == accel::Plan::Tcg).then_some(Accel::Tcg));
    if let (Some(a), Some(c), true) = (known, cache, opts.warm) {
        let ask = warm::Ask {
            guest: guest(a),
            kernel_sha256: &kernel.image_sha256,
            init: &init,
            delivery: delivery::encode(&files),
            cache: c,
            work,
            timeout: opts.timeout,
            sizes: sizes(init.len() as u64),
            progress,
            who: who(&kernel.origin),
        };
        let prepared = t0.elapsed();
        if let Some(o) = warm::boot(ask, &mut notes)? {
            let times = (prepared, t0);
            return Ok(guest_run(kernel, a, o.run, o.start, notes, times));
        }
    }
    let image = initramfs_with(&init, &files);
    let initramfs_time = t0.elapsed();
    std::fs::write(&initrd, &image).map_err(io("writing the initramfs"))?;
    let sizes = sizes(image.len() as u64);
    let watch =
        |g: &qemu::Guest, probe| watch::watch(g, opts.timeout, probe, &sizes, progress, None);
    let (accel, run) = match known {
        Some(a) => (a, watch(&guest(a), None)?),
        None => {
            let r = watch(&guest(Accel::Kvm), Some(KVM_PROBE))?;
            if r.hello.is_some() {
                notes.extend(accel::learned(cache, true));
                (Accel::Kvm, r)
            } else {
                // KVM accepted the guest but did not boot it: emulate. Only a kernel that
                // boots under TCG says that KVM is the problem.
                let r = watch(&guest(Accel::Tcg), None)?;
                if r.hello.is_some() {
                    notes.extend(accel::learned(cache, false));
                }
                (Accel::Tcg, r)
            }
        }
    };
    let times = (initramfs_time, t0);
    Ok(guest_run(
        kernel,
        accel,
        run,
        warm::Start::Cold,
        notes,
        times,
    ))
}

/// The kernel as notes name it: the spec of a Debian kernel, the path of an image.
fn who(origin: &str) -> String {
    let end = [" = ", " ("].iter().filter_map(|s| origin.find(s)).min();
    origin[..end.unwrap_or(origin.len())].to_string()
}

/// What one guest did, from what was watched; `times`: preparing (the initramfs) and the start.
fn guest_run(
    kernel: &Kernel,
    accel: Accel,
    run: watch::Watched,
    start: warm::Start,
    notes: Vec<String>,
    (initramfs, t0): (Duration, Instant),
) -> GuestRun {
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
    GuestRun {
        origin: kernel.origin.clone(),
        accel,
        start,
        hello: run.hello,
        records: run.records,
        summary: run.summary,
        breakdown: run.breakdown,
        problems,
        notes,
        unusable,
        console_tail: tail(&run.console, 30),
        initramfs,
        boot_to_hello: run.boot_to_hello,
        total: t0.elapsed(),
    }
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
