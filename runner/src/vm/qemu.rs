//! The QEMU command line, assembled from small pure functions that each return one argument
//! group, and the accelerator choice.
//!
//! Owns: how a guest is started. Must not: wait for or interpret the guest (that is `vm`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// How instructions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation: slower, works everywhere (and where KVM cannot boot stock kernels).
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything a guest is started with.
#[derive(Clone, Debug)]
pub struct Guest {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Where the kernel console (ttyS0) goes.
    pub console: PathBuf,
    /// Where the results port (ttyS1) goes.
    pub results: PathBuf,
    /// Kernel parameters after bpfcase's own (see [`cmdline`]).
    pub append: Vec<String>,
    /// For a guest that is saved or restored (warm starts): its control sockets.
    pub control: Option<Control>,
}

/// What a guest that is saved or restored needs besides (see `warm`).
#[derive(Clone, Debug)]
pub struct Control {
    /// QMP, for saving the guest (`migrate`) and restoring it (`migrate-incoming`).
    pub qmp: PathBuf,
    /// The guest's input port (ttyS2): a socket QEMU listens on, for the cases.
    pub input: PathBuf,
    /// Whether QEMU starts by waiting for a saved guest (`-incoming defer`) instead of booting.
    pub incoming: bool,
}

/// A path inside a QEMU option value: a comma is written twice.
fn opt_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The control sockets: QMP, and the input port as a third serial port on IRQ 5 (the third
/// port's usual IRQ 4 is the console's, and an ISA line shared by two ports can lose an
/// interrupt); with `incoming`, QEMU waits for the state to restore (given over QMP).
pub fn control_args(c: &Control) -> Vec<String> {
    let mut v = vec![
        "-chardev".into(),
        format!(
            "socket,id=bpfcase-in,path={},server=on,wait=off",
            opt_path(&c.input)
        ),
        "-device".into(),
        "isa-serial,chardev=bpfcase-in,index=2,irq=5".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", opt_path(&c.qmp)),
    ];
    if c.incoming {
        v.extend(args(&["-incoming", "defer"]));
    }
    v
}

/// KVM uses the host CPU; TCG emulates the most capable CPU it knows (`max`), which Debian
/// kernels from 5.10 on boot with.
pub fn accel_args(a: Accel) -> Vec<String> {
    match a {
        Accel::Kvm => args(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => args(&["-accel", "tcg", "-cpu", "max"]),
    }
}

/// No default devices, no display, no user config: nothing but what the guest needs.
/// `-no-reboot` turns the guest's reboot (and `panic=-1`) into QEMU exiting.
pub fn machine_args(memory_mb: u32, cpus: u32) -> Vec<String> {
    let mut v = args(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    v.extend([
        "-m".into(),
        format!("{memory_mb}M"),
        "-smp".into(),
        cpus.to_string(),
    ]);
    v
}

/// bpfcase's own kernel parameters (see `cmdline`).
pub const BASE_CMDLINE: &str = "console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off \
                                cryptomgr.notests rcupdate.rcu_expedited=1";

/// The kernel command line: console on ttyS0; a panic reboots at once (and so ends QEMU);
/// loglevel 5 keeps warnings (WARN splats are KERN_WARNING) but drops the chatter that slows
/// an emulated serial port; `mitigations=off` spares TCG a page-table switch per syscall
/// (about a third of a guest's time). It changes nothing the cases observe: as root the
/// verifier already skips its Spectre hardening (bpf_bypass_spec_v1/v4 hold with CAP_PERFMON).
/// `cryptomgr.notests` skips the crypto self-tests at boot, and `rcupdate.rcu_expedited=1`
/// makes the RCU grace periods that map and program frees and trampoline updates wait for
/// short under TCG (6.1's suite: 0.76–0.85× its case time): neither is seen by a case, whose
/// observations are the same with and without them.
/// The user's `append` comes last: the kernel takes the last value of a parameter given twice.
pub fn cmdline(append: &[String]) -> String {
    let mut line = BASE_CMDLINE.to_string();
    for a in append.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        line.push(' ');
        line.push_str(a);
    }
    line
}

pub fn kernel_args(kernel: &Path, initrd: &Path, append: &[String]) -> Vec<String> {
    vec![
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline(append),
    ]
}

/// Two serial ports, each a file: ttyS0 for the console, ttyS1 for results, so that kernel
/// messages never mix with the framed results.
pub fn serial_args(console: &Path, results: &Path) -> Vec<String> {
    vec![
        "-serial".into(),
        format!("file:{}", console.display()),
        "-serial".into(),
        format!("file:{}", results.display()),
    ]
}

pub fn command(g: &Guest) -> Command {
    let mut c = Command::new(&g.qemu);
    c.args(accel_args(g.accel))
        .args(machine_args(g.memory_mb, g.cpus))
        .args(kernel_args(&g.kernel, &g.initrd, &g.append))
        .args(serial_args(&g.console, &g.results));
    if let Some(ctl) = &g.control {
        c.args(control_args(ctl));
    }
    c
}

/// Whether KVM is worth trying: `/dev/kvm` opens read-write. Whether it can boot a stock
/// kernel is only known by trying (see `vm`).
pub fn kvm_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The QEMU binary: `$BPFCASE_QEMU`, else `qemu-system-x86_64` from PATH.
pub fn find_qemu() -> Option<PathBuf> {
    if let Some(q) = std::env::var_os("BPFCASE_QEMU") {
        return Some(PathBuf::from(q));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_groups() {
        let g = Guest {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            kernel: "k/vmlinuz".into(),
            initrd: "w/initrd".into(),
            memory_mb: 512,
            cpus: 1,
            console: "w/console".into(),
            results: "w/results".into(),
            append: vec!["  ".into(), "panic=0 bpfcase.crash_after=2".into()],
            control: None,
        };
        let c = command(&g);
        let a: Vec<String> = c
            .get_args()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            a.join(" "),
            "-accel tcg -cpu max -nodefaults -no-user-config -display none -no-reboot -m 512M -smp 1 \
             -kernel k/vmlinuz -initrd w/initrd -append console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off cryptomgr.notests rcupdate.rcu_expedited=1 panic=0 bpfcase.crash_after=2 \
             -serial file:w/console -serial file:w/results"
        );
        assert_eq!(accel_args(Accel::Kvm), ["-accel", "kvm", "-cpu", "host"]);
        let ctl = Control {
            qmp: "w/q,mp".into(),
            input: "w/in".into(),
            incoming: true,
        };
        assert_eq!(
            control_args(&ctl).join(" "),
            "-chardev socket,id=bpfcase-in,path=w/in,server=on,wait=off \
             -device isa-serial,chardev=bpfcase-in,index=2,irq=5 \
             -qmp unix:w/q,,mp,server=on,wait=off -incoming defer"
        );
    }
}
