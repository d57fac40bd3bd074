//! The guest side: the `bpfcase` binary as PID 1 of a QEMU guest. It mounts what cases need,
//! runs the cases packed into its initramfs, streams observations as frames over the second
//! serial port (the first is the kernel's console), and powers the guest off.
//!
//! Owns: everything that happens inside the guest. Must not: return (PID 1 exiting panics the
//! kernel) — every path ends in a power-off.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::frame;
use crate::case;
use crate::exec::Env;
use crate::report::{self, Summary};

/// Where the host puts the guest's configuration in the initramfs.
pub const CONFIG: &str = "bpfcase/config.json";
/// The results port: QEMU's second `-serial`.
const RESULTS_TTY: &str = "/dev/ttyS1";

/// What the host asks the guest to run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Config {
    /// Case files inside the initramfs, in the host's order.
    pub cases: Vec<String>,
    pub filters: Vec<String>,
}

/// The first frame: what kernel this is and whether it can serve.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub release: String,
    pub version: String,
    /// Errno name when `bpf(2)` itself fails (no CONFIG_BPF_SYSCALL), else None.
    pub bpf_error: Option<String>,
    /// Whether the kernel exposes its BTF (`/sys/kernel/btf/vmlinux`).
    pub btf: bool,
}

/// One observation frame: the index of the case file in `Config::cases`, and the same object
/// `bpfcase run --format json` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObsFrame {
    pub file: usize,
    pub line: serde_json::Value,
}

/// Whether this process is a guest's init.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Runs as PID 1 and powers off.
pub fn main() -> ! {
    mount_all();
    let mut out = open_results();
    std::panic::set_hook(Box::new(|info| {
        // The host sees the error frame, then a truncated stream.
        if let Ok(mut f) = OpenOptions::new().write(true).open(RESULTS_TTY) {
            let _ = f.write_all(&frame::encode("error", info.to_string().as_bytes()));
        }
        eprintln!("bpfcase guest: {info}");
    }));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut out)));
    if let Ok(Err(e)) = r {
        send(&mut out, "error", e.as_bytes());
    }
    let _ = out.flush();
    power_off()
}

fn run(out: &mut dyn Write) -> Result<(), String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {e}"))?;
    let bpf_error = crate::bpf::probe_bpf().err().map(|e| e.name());
    let hello = Hello {
        release: uts.release().to_string_lossy().into_owned(),
        version: uts.version().to_string_lossy().into_owned(),
        bpf_error,
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
    };
    send(
        out,
        "hello",
        &serde_json::to_vec(&hello).map_err(|e| e.to_string())?,
    );
    let cfg: Config = std::fs::read(Path::new("/").join(CONFIG))
        .map_err(|e| format!("reading {CONFIG}: {e}"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("parsing {CONFIG}: {e}")))?;
    let pats: Vec<glob::Pattern> = cfg
        .filters
        .iter()
        .filter_map(|f| glob::Pattern::new(f).ok())
        .collect();
    let mut env = Env::new();
    let mut summary = Summary::default();
    for (file, path) in cfg.cases.iter().enumerate() {
        let c = case::load(&PathBuf::from("/").join(path)).map_err(|e| e.to_string())?;
        for inst in &c.instances {
            if !pats.is_empty() && !pats.iter().any(|p| p.matches(&inst.id)) {
                continue;
            }
            let obs = env.run(inst);
            let v = report::verdict(inst, &obs);
            summary.add(&obs, &v);
            let line = report::json_line(inst, &obs, &v);
            let frame = ObsFrame { file, line };
            send(
                out,
                "obs",
                &serde_json::to_vec(&frame).map_err(|e| e.to_string())?,
            );
        }
    }
    send(
        out,
        "done",
        &serde_json::to_vec(&summary).map_err(|e| e.to_string())?,
    );
    Ok(())
}

fn send(out: &mut dyn Write, kind: &str, payload: &[u8]) {
    let _ = out.write_all(&frame::encode(kind, payload));
    let _ = out.flush();
}

fn mount_all() {
    use nix::mount::{mount, MsFlags};
    let base: &[(&str, &str, &str)] = &[
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ];
    for (src, target, fstype) in base {
        let _ = std::fs::create_dir_all(target);
        let _ = mount(
            Some(*src),
            *target,
            Some(*fstype),
            MsFlags::empty(),
            None::<&str>,
        );
    }
    // A filesystem the kernel lacks stays unmounted; cases that need it report so.
    for fs in crate::exec::fs::KERNEL_FS {
        let _ = crate::exec::fs::mount_one(fs);
    }
}

/// The results port in raw mode: no `\n` → `\r\n`, no echo, no flow control.
fn open_results() -> Box<dyn Write> {
    match OpenOptions::new().read(true).write(true).open(RESULTS_TTY) {
        Ok(f) => {
            use nix::sys::termios;
            if let Ok(mut t) = termios::tcgetattr(f.as_fd()) {
                termios::cfmakeraw(&mut t);
                let _ = termios::tcsetattr(f.as_fd(), termios::SetArg::TCSANOW, &t);
            }
            Box::new(f)
        }
        Err(e) => {
            eprintln!(
                "bpfcase guest: cannot open {RESULTS_TTY}: {e}; writing results to the console"
            );
            Box::new(std::io::stdout())
        }
    }
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Only reached if the kernel refused: PID 1 must not exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
