//! The guest side: the `bpfcase` binary as PID 1 of a QEMU guest. It mounts what cases need,
//! runs the cases packed into its initramfs, streams observations as frames over the second
//! serial port (the first is the kernel's console; observations as one deflate stream, see
//! `squeeze`), and powers the guest off.
//!
//! An initramfs without cases (a guest to be saved for warm starts, see `warm`) makes the
//! guest say `ready` once it has booted and wait for its cases on the third serial port (the
//! host may save the guest meanwhile, and restore it any number of times): they come as one
//! `delivery`, written where a cold boot's initramfs has them, and the run goes on as from the
//! initramfs. No cases within [`DELIVERY_WAIT`] is an error frame.
//!
//! Owns: everything that happens inside the guest. Must not: return (PID 1 exiting panics the
//! kernel) — every path ends in a power-off.
//!
//! One knob exists for testing how bpfcase reports a kernel that dies mid-run: with
//! `bpfcase.crash_after=N` on the kernel command line (`bpfcase vm --append
//! bpfcase.crash_after=N`), the guest crashes its kernel through `/proc/sysrq-trigger` once N
//! instances have reported (their frames drained to the host first), as if the next instance
//! had crashed it. A case file cannot do this. Another is for comparing: `bpfcase.anchors=0`
//! or `=1` makes the executor never or always anchor trampolines (see `exec::Env::anchors`).
//! Nothing else reads the command line.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::delivery::{self, Delivery};
use super::{frame, squeeze};
use crate::case;
use crate::exec::Env;
use crate::report::{self, Summary};

/// Where the host puts the guest's configuration in the initramfs.
pub const CONFIG: &str = "bpfcase/config.json";
/// The results port: QEMU's second `-serial`.
const RESULTS_TTY: &str = "/dev/ttyS1";
/// The input port of a guest started for warm starts: QEMU's third serial port.
const INPUT_TTY: &str = "/dev/ttyS2";
/// How long a ready guest waits for its cases (the host sends them at once, after saving the
/// guest or restoring it; the guest's clock stands still while it is saved).
pub const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
/// How a guest error begins when the input port cannot be opened (a kernel with fewer serial
/// ports): the host then boots that kernel cold.
pub const NO_INPUT: &str = "no input port";

/// What the host asks the guest to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

fn run(out: &mut Results) -> Result<(), String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {e}"))?;
    let bpf_error = crate::bpf::probe_bpf().err().map(|e| e.name());
    let hello = Hello {
        release: uts.release().to_string_lossy().into_owned(),
        version: uts.version().to_string_lossy().into_owned(),
        bpf_error,
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
    };
    let hello_json = serde_json::to_vec(&hello).map_err(|e| e.to_string())?;
    let mut delivery_s = None;
    let cfg: Config = if Path::new("/").join(CONFIG).exists() {
        send(out, "hello", &hello_json);
        std::fs::read(Path::new("/").join(CONFIG))
            .map_err(|e| format!("reading {CONFIG}: {e}"))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| format!("parsing {CONFIG}: {e}"))
            })?
    } else {
        let input = open_input()?;
        send(out, "ready", &hello_json);
        let (d, took) = receive(&input, DELIVERY_WAIT)?;
        delivery_s = Some(crate::pipeline::secs(took));
        for (path, bytes) in &d.files {
            let p = Path::new("/").join(path);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        send(out, "hello", &hello_json);
        d.config
    };
    let pats: Vec<glob::Pattern> = cfg
        .filters
        .iter()
        .filter_map(|f| glob::Pattern::new(f).ok())
        .collect();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let crash_after = crash_after(&cmdline);
    let mut reported = 0;
    let kernel = case::KernelSeries::from_release(&hello.release);
    let mut env = Env::new();
    if let Some(a) = anchoring(&cmdline) {
        env.anchors = a;
    }
    let mut summary = Summary::default();
    if crash_after == Some(0) {
        crash();
    }
    let mut cases = Vec::new();
    for path in &cfg.cases {
        let mut c = case::load(&PathBuf::from("/").join(path)).map_err(|e| e.to_string())?;
        c.instances
            .retain(|i| pats.is_empty() || pats.iter().any(|p| p.matches(&i.id)));
        cases.push(c);
    }
    let refs: Vec<&case::Case> = cases.iter().collect();
    let mut transport = std::time::Duration::ZERO;
    let mut deflater = squeeze::Deflater::default();
    let times = crate::pipeline::run_instances(&mut env, &refs, &mut |c, inst, obs| {
        let file = refs.iter().position(|x| std::ptr::eq(*x, c)).unwrap_or(0);
        let v = report::verdict(inst, &obs, kernel);
        summary.add(&obs, &v);
        let line = report::json_line(inst, &obs, &v);
        let frame = ObsFrame { file, line };
        // A frame of JSON values always serializes.
        let t = std::time::Instant::now();
        let json = serde_json::to_vec(&frame).unwrap_or_default();
        send(out, squeeze::KIND, &deflater.chunk(&json));
        transport += t.elapsed();
        reported += 1;
        if crash_after == Some(reported) {
            crash();
        }
    });
    let mut breakdown = crate::pipeline::breakdown(&env, times);
    breakdown.delivery_s = delivery_s;
    breakdown.transport_s = Some(crate::pipeline::secs(transport));
    send(
        out,
        "timing",
        &serde_json::to_vec(&breakdown).map_err(|e| e.to_string())?,
    );
    send(
        out,
        "done",
        &serde_json::to_vec(&summary).map_err(|e| e.to_string())?,
    );
    Ok(())
}

/// Sends one frame and waits until the serial port has put it on the wire: a kernel that dies
/// during the next instance then still leaves this one's frame with the host (the port's
/// buffer does not survive a panic).
fn send(out: &mut Results, kind: &str, payload: &[u8]) {
    let _ = out.write_all(&frame::encode(kind, payload));
    let _ = out.flush();
    out.drain();
}

/// Where frames go: the results port, or the console when it cannot be opened.
enum Results {
    Tty(std::fs::File),
    Console(std::io::Stdout),
}

impl Results {
    /// Waits until everything written has left the port.
    fn drain(&self) {
        if let Results::Tty(f) = self {
            let _ = nix::sys::termios::tcdrain(f.as_fd());
        }
    }
}

impl Write for Results {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Results::Tty(f) => f.write(b),
            Results::Console(o) => o.write(b),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Results::Tty(f) => f.flush(),
            Results::Console(o) => o.flush(),
        }
    }
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
fn open_results() -> Results {
    match OpenOptions::new().read(true).write(true).open(RESULTS_TTY) {
        Ok(f) => {
            use nix::sys::termios;
            if let Ok(mut t) = termios::tcgetattr(f.as_fd()) {
                termios::cfmakeraw(&mut t);
                let _ = termios::tcsetattr(f.as_fd(), termios::SetArg::TCSANOW, &t);
            }
            Results::Tty(f)
        }
        Err(e) => {
            eprintln!(
                "bpfcase guest: cannot open {RESULTS_TTY}: {e}; writing results to the console"
            );
            Results::Console(std::io::stdout())
        }
    }
}

/// The input port in raw mode (no echo, no line editing, no flow control, modem lines
/// ignored), reads returning after at most half a second.
fn open_input() -> Result<std::fs::File, String> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::termios::{self, ControlFlags, SpecialCharacterIndices as Cc};
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(INPUT_TTY)
        .map_err(|e| format!("{NO_INPUT}: opening {INPUT_TTY}: {e}"))?;
    let mut t = termios::tcgetattr(f.as_fd()).map_err(|e| format!("{INPUT_TTY}: {e}"))?;
    termios::cfmakeraw(&mut t);
    t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
    t.control_chars[Cc::VMIN as usize] = 0;
    t.control_chars[Cc::VTIME as usize] = 5;
    termios::tcsetattr(f.as_fd(), termios::SetArg::TCSANOW, &t)
        .map_err(|e| format!("{INPUT_TTY}: {e}"))?;
    fcntl(&f, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| format!("{INPUT_TTY}: {e}"))?;
    Ok(f)
}

/// Reads the delivery from the input port, for at most `wait`; with the time from its first
/// byte to its last (a restored guest's clock jumps at the restore, before the first byte).
fn receive(
    mut input: &std::fs::File,
    wait: std::time::Duration,
) -> Result<(Delivery, std::time::Duration), String> {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut first = None;
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    loop {
        // Decoding only once the delivery is whole keeps this linear in its size.
        if delivery::expected_len(&buf).is_some_and(|n| buf.len() >= n) {
            if let Some(d) = delivery::decode(&buf)? {
                let took = first.map_or(std::time::Duration::ZERO, |t: std::time::Instant| {
                    t.elapsed()
                });
                return Ok((d, took));
            }
        }
        if start.elapsed() > wait {
            return Err(format!(
                "no cases arrived on {INPUT_TTY} within {} s ({} bytes came)",
                wait.as_secs(),
                buf.len()
            ));
        }
        match input.read(&mut chunk) {
            Ok(n) => {
                if n > 0 {
                    first.get_or_insert_with(std::time::Instant::now);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading {INPUT_TTY}: {e}")),
        }
    }
}

/// What `bpfcase.anchors=0|1` on a kernel command line says (the last one given wins): the
/// executor then never or always keeps programs on trampolines (see `exec::Env::anchors`),
/// for comparing.
fn anchoring(cmdline: &str) -> Option<crate::exec::Anchoring> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|p| p.strip_prefix("bpfcase.anchors="))
        .and_then(crate::exec::Anchoring::from_word)
}

/// The value of `bpfcase.crash_after=N` on a kernel command line (the last one given).
fn crash_after(cmdline: &str) -> Option<usize> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|p| p.strip_prefix("bpfcase.crash_after="))?
        .parse()
        .ok()
}

/// Crashes the kernel (SysRq `c`: a NULL dereference in the kernel, then a panic). Every frame
/// sent is already on the wire (`send` drains). Writing to `/proc/sysrq-trigger` works whatever
/// the `kernel.sysrq` mask says; a kernel without SysRq goes on.
fn crash() {
    nix::unistd::sync();
    let _ = std::fs::write("/proc/sysrq-trigger", b"c");
}

fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Only reached if the kernel refused: PID 1 must not exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_knob_is_read_from_the_command_line() {
        use crate::exec::Anchoring::{Always, Never};
        assert_eq!(anchoring("console=ttyS0 panic=-1"), None);
        assert_eq!(anchoring("console=ttyS0 bpfcase.anchors=0\n"), Some(Never));
        assert_eq!(
            anchoring("bpfcase.anchors=0 bpfcase.anchors=1"),
            Some(Always)
        );
        assert_eq!(
            anchoring("bpfcase.anchors=1 bpfcase.anchors=0"),
            Some(Never)
        );
        assert_eq!(anchoring("xbpfcase.anchors=0"), None);
        assert_eq!(anchoring("bpfcase.anchors=yes"), None);
    }

    #[test]
    fn the_crash_knob_is_read_from_the_command_line() {
        let base = "console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off";
        assert_eq!(crash_after(base), None);
        assert_eq!(
            crash_after(&format!("{base} bpfcase.crash_after=3")),
            Some(3)
        );
        assert_eq!(crash_after("bpfcase.crash_after=0\n"), Some(0));
        assert_eq!(
            crash_after("bpfcase.crash_after=1 bpfcase.crash_after=4"),
            Some(4)
        );
        assert_eq!(crash_after("bpfcase.crash_after=x"), None);
        assert_eq!(crash_after("xbpfcase.crash_after=2"), None);
    }
}
