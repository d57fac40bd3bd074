//! What went wrong with a guest, in words: from how QEMU ended (its exit status and stderr, or
//! the watchdog), how far the guest got (the runner's first frame, its last), the kernel console
//! and the sizes involved (guest memory, initramfs, what the kernel's boot header says it needs),
//! each problem becomes a sentence that says what happened and what to try.
//!
//! Owns: those sentences. Pure: no I/O, no QEMU; every input is a fact already collected.

use std::process::ExitStatus;
use std::time::Duration;

use super::kernels::BootHeader;

/// How a guest's QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// QEMU exited by itself: the guest powered off, rebooted (`-no-reboot` turns a reset, a
    /// triple fault included, into an exit) or QEMU failed.
    Exited(ExitStatus),
    /// Every result was in: bpfcase stopped QEMU rather than wait for the power-off.
    Finished,
    /// The watchdog killed QEMU after this long.
    Watchdog(Duration),
    /// A KVM attempt gave no hello in time and was stopped (not a problem of the kernel).
    Probe,
}

/// What is known about one guest once QEMU has ended.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub end: End,
    /// QEMU's stderr.
    pub stderr: &'a str,
    /// The kernel console (ttyS0).
    pub console: &'a str,
    /// From QEMU's start to its end.
    pub elapsed: Duration,
    /// Whether the runner's first frame (hello) came.
    pub hello: bool,
    /// Whether its last frame (done) came.
    pub done: bool,
    pub memory_mb: u32,
    pub initramfs_bytes: u64,
    /// The kernel image's boot header, when it has one.
    pub kernel: Option<BootHeader>,
    /// The kernel command line the guest booted with.
    pub cmdline: &'a str,
}

/// The problems these facts show, each a sentence or two; empty for a guest that finished.
pub fn problems(f: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    match f.end {
        End::Probe | End::Finished => {}
        End::Watchdog(after) => out.push(hang(f, after)),
        End::Exited(st) if !st.success() => out.push(qemu_failed(f, st)),
        End::Exited(_) if !f.hello => out.push(never_started(f)),
        End::Exited(_) if !f.done => out.push(stopped_early(f)),
        End::Exited(_) => {}
    }
    out
}

const MIB: f64 = 1024.0 * 1024.0;
const MORE_MEMORY: &str = "give the guest more --memory (the default, 512 MiB, fits every \
                           kernel of the default set)";

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `ExitStatus` as a person says it: "status 1", "signal 9".
fn status(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => st.to_string(),
    }
}

/// The first console line that says the kernel panicked, without its timestamp.
fn panic_line(console: &str) -> Option<&str> {
    console
        .lines()
        .map(|l| super::strip_timestamp(l.trim_end_matches('\r')))
        .find(|l| l.contains("Kernel panic - not syncing"))
}

/// Console lines of a kernel that could not unpack bpfcase's initramfs (always a valid one):
/// the initramfs did not fit next to the kernel and was overwritten, or unpacking it ran out of
/// memory.
const UNPACKING: &[&str] = &[
    "Initramfs unpacking failed",
    "Unable to mount root fs",
    "No working init found",
];

/// The console line that best says the kernel had too little memory to start user space: the
/// markers in order of how plainly they say it.
fn memory_trouble(console: &str) -> Option<&str> {
    const MARKERS: &[&str] = &[
        "Initramfs unpacking failed",
        "deadlocked on memory",
        "Out of memory",
        "oom-kill",
        "Unable to mount root fs",
        "No working init found",
    ];
    MARKERS.iter().find_map(|m| {
        console
            .lines()
            .map(|l| super::strip_timestamp(l.trim_end_matches('\r')))
            .find(|l| l.contains(m))
    })
}

/// What the kernel needs before anything runs: the least memory for it and the initramfs side
/// by side, in bytes, and the sentence that says what the kernel alone needs; None without a
/// boot header that tells.
fn kernel_floor(f: &Facts) -> Option<(u64, String)> {
    let h = f.kernel?;
    let (load, init) = (h.pref_address?, h.init_size?);
    Some((
        load + init + f.initramfs_bytes,
        format!(
            "this kernel loads at {} and needs {} from there to decompress and start (its boot \
             header's init_size)",
            mib(load),
            mib(init)
        ),
    ))
}

/// The floor sentence with the initramfs: "…, next to the 5.9 MiB initramfs: at least …".
fn with_initramfs(f: &Facts, (floor, kernel): (u64, String)) -> (u64, String) {
    let why = format!(
        "{kernel}, next to the {} initramfs: at least {} before it unpacks the initramfs",
        mib(f.initramfs_bytes),
        mib(floor)
    );
    (floor, why)
}

fn qemu_failed(f: &Facts, st: ExitStatus) -> String {
    let said = f
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let mut s = format!(
        "{} with {} after {}{}",
        if f.hello {
            "QEMU exited while the guest ran"
        } else {
            "QEMU could not run the guest: it exited"
        },
        status(st),
        secs(f.elapsed),
        if said.is_empty() {
            " and printed nothing".to_string()
        } else {
            format!(", saying `{said}`")
        }
    );
    if said.contains("initrd is too large") {
        s += &format!(
            ". The {} initramfs does not fit in the guest's {} MiB: {MORE_MEMORY}",
            mib(f.initramfs_bytes),
            f.memory_mb
        );
    } else if said.contains("cannot set up guest memory") {
        s += &format!(
            ". This machine cannot back {} MiB of guest memory: give less --memory",
            f.memory_mb
        );
    }
    s
}

fn never_started(f: &Facts) -> String {
    let ran = secs(f.elapsed);
    let qemu_said = match f.stderr.trim() {
        "" => String::new(),
        e => format!(
            " QEMU said: `{}`.",
            e.lines().collect::<Vec<_>>().join(" / ")
        ),
    };
    if f.console.trim().is_empty() {
        let memory = u64::from(f.memory_mb) << 20;
        let cause = match kernel_floor(f).map(|k| with_initramfs(f, k)) {
            Some((floor, why)) if memory < floor => format!(
                "The cause is too little memory: the guest had {} MiB, and {why}. {}.",
                f.memory_mb,
                capitalized(MORE_MEMORY)
            ),
            // Unpacking the initramfs takes about its size again, and the kernel some more.
            Some((floor, why)) if memory < floor + f.initramfs_bytes + (32 << 20) => format!(
                "Likely causes: too little memory (the guest had {} MiB, and {why}: try a larger \
                 --memory); a truncated or corrupt kernel image; or a kernel without a serial \
                 console on ttyS0 (CONFIG_SERIAL_8250_CONSOLE).",
                f.memory_mb
            ),
            floor => format!(
                "Likely causes: a truncated or corrupt kernel image; a kernel without a serial \
                 console on ttyS0 (CONFIG_SERIAL_8250_CONSOLE); or, less likely, too little \
                 memory (the guest had {} MiB{}).",
                f.memory_mb,
                floor.map_or(String::new(), |(_, why)| format!("; {why}"))
            ),
        };
        return format!(
            "the guest never started the runner: QEMU exited by itself with status 0 after \
             {ran}, and the kernel console is empty — the machine reset or powered off before \
             the kernel printed its first line.{qemu_said} {cause}"
        );
    }
    let panic = panic_line(f.console);
    let panicked = panic.map_or(String::new(), |p| format!(" (`{p}`)"));
    if let Some(line) = memory_trouble(f.console) {
        let how = match panic {
            Some(p) if p == line => format!("and panicked after {ran} (`{p}`)"),
            Some(p) => format!("(`{line}`) and panicked after {ran} (`{p}`)"),
            None => format!("(`{line}`) and stopped after {ran}"),
        };
        let what = if UNPACKING.iter().any(|m| line.contains(m)) {
            "could not unpack the initramfs, so found no /init"
        } else {
            "ran out of memory before it could run /init"
        };
        let floor = kernel_floor(f).map_or(String::new(), |(floor, kernel)| {
            format!("; {kernel}: with the initramfs at least {}", mib(floor))
        });
        return format!(
            "the guest never started the runner: the kernel {what} {how}. That is too little \
             memory: the guest had {} MiB for the kernel and the {} initramfs, which the kernel \
             holds twice while unpacking it{floor}. {}.{qemu_said}",
            f.memory_mb,
            mib(f.initramfs_bytes),
            capitalized(MORE_MEMORY)
        );
    }
    if !panicked.is_empty() {
        // A kernel short of memory while it unpacks the initramfs (which it holds twice) also
        // dies in ways that do not say so (a NULL dereference in early boot).
        let memory = u64::from(f.memory_mb) << 20;
        let tight =
            kernel_floor(f).filter(|(floor, _)| memory < floor + f.initramfs_bytes + (32 << 20));
        let cause = tight.map_or(String::new(), |(floor, kernel)| {
            format!(
                " Likely cause: too little memory: the guest had {} MiB for the kernel and the {} \
                 initramfs, which the kernel holds twice while unpacking it; {kernel}: with the \
                 initramfs at least {}. {}.",
                f.memory_mb,
                mib(f.initramfs_bytes),
                mib(floor),
                capitalized(MORE_MEMORY)
            )
        });
        return format!(
            "the guest never started the runner: the kernel panicked after {ran}, before it \
             ran /init{panicked}; see the console.{cause}{qemu_said}"
        );
    }
    format!(
        "the guest never started the runner: the kernel started, but QEMU exited (status 0) \
         after {ran} before the runner's first message; see the console.{qemu_said}"
    )
}

fn stopped_early(f: &Facts) -> String {
    match panic_line(f.console) {
        Some(p) => format!(
            "the kernel panicked while the runner was working through the cases (`{p}`), and \
             the guest rebooted, which ended QEMU after {}; the observations it sent before are \
             kept, see the console for the panic",
            secs(f.elapsed)
        ),
        None => format!(
            "the guest stopped before finishing the cases: QEMU exited by itself (status 0) \
             after {}, without a kernel panic on the console (a reboot or power-off from \
             inside the guest?); the observations it sent before are kept",
            secs(f.elapsed)
        ),
    }
}

fn hang(f: &Facts, after: Duration) -> String {
    let head = format!(
        "hang: the guest was still running after {} s (the --timeout watchdog) and was killed",
        after.as_secs()
    );
    if !f.hello {
        if f.console.trim().is_empty() {
            return format!(
                "{head}; the runner never started and the kernel console stayed empty: the \
                 kernel never printed its first line (a corrupt kernel image, one without a \
                 serial console on ttyS0 (CONFIG_SERIAL_8250_CONSOLE), or one that needs longer \
                 to start under emulation: a larger --timeout)"
            );
        }
        return format!(
            "{head}; the runner never started: the console's last lines show where the kernel \
             stopped"
        );
    }
    match panic_line(f.console) {
        Some(p) => format!(
            "{head}; the kernel had panicked (`{p}`) and stayed down instead of rebooting ({}); \
             the observations sent before are kept",
            match last_param(f.cmdline, "panic") {
                Some("0") => "as `panic=0` on its command line asks",
                _ => "although its command line asks for `panic=-1`",
            }
        ),
        None => {
            format!("{head} before it finished the cases; the observations sent before are kept")
        }
    }
}

/// The value of the last `name=value` on a kernel command line (the one the kernel uses).
fn last_param<'a>(cmdline: &'a str, name: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    /// 6.1's boot header: loads at 16 MiB, init_size 51.5 MiB.
    fn k61() -> BootHeader {
        BootHeader {
            version: 0x20f,
            setup_sects: 0x27,
            syssize: 0xd8220,
            pref_address: Some(0x100_0000),
            init_size: Some(0x337_8000),
        }
    }

    fn facts(end: End) -> Facts<'static> {
        Facts {
            end,
            stderr: "",
            console: "",
            elapsed: Duration::from_millis(500),
            hello: false,
            done: false,
            memory_mb: 64,
            initramfs_bytes: 6 << 20,
            kernel: Some(k61()),
            cmdline: "console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off panic=0",
        }
    }

    fn exited(code: i32) -> End {
        End::Exited(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn an_empty_console_and_too_little_memory_say_so_with_the_numbers() {
        let p = problems(&facts(exited(0)));
        assert_eq!(p.len(), 1, "{p:?}");
        let p = &p[0];
        for want in [
            "the guest never started the runner",
            "status 0 after 0.5 s",
            "console is empty",
            "The cause is too little memory: the guest had 64 MiB",
            "loads at 16.0 MiB and needs 51.5 MiB",
            "6.0 MiB initramfs: at least 73.5 MiB",
            "more --memory",
        ] {
            assert!(p.contains(want), "{want:?} not in {p}");
        }
    }

    #[test]
    fn an_empty_console_with_enough_memory_lists_the_likely_causes() {
        let mut f = facts(exited(0));
        f.memory_mb = 100;
        f.stderr = "qemu: warning: something\n";
        let p = &problems(&f)[0];
        for want in [
            "Likely causes: too little memory (the guest had 100 MiB, and this kernel loads",
            "truncated or corrupt kernel image",
            "CONFIG_SERIAL_8250_CONSOLE",
            "QEMU said: `qemu: warning: something`",
        ] {
            assert!(p.contains(want), "{want:?} not in {p}");
        }
        f.memory_mb = 512;
        let p = &problems(&f)[0];
        assert!(
            p.contains("Likely causes: a truncated or corrupt kernel image;")
                && p.contains("less likely, too little memory (the guest had 512 MiB; this kernel"),
            "{p}"
        );
        f.kernel = None;
        assert!(problems(&f)[0].contains("too little memory (the guest had 512 MiB)."));
    }

    #[test]
    fn qemu_failures_quote_qemu_and_explain_what_they_know() {
        let mut f = facts(exited(1));
        f.memory_mb = 48;
        f.initramfs_bytes = 56_567_296;
        f.stderr = "qemu: initrd is too large, cannot support.(max: 50167807, need 56567296)\n";
        let p = problems(&f);
        assert_eq!(
            p,
            [
                "QEMU could not run the guest: it exited with status 1 after 0.5 s, saying \
              `qemu: initrd is too large, cannot support.(max: 50167807, need 56567296)`. The \
              53.9 MiB initramfs does not fit in the guest's 48 MiB: give the guest more \
              --memory (the default, 512 MiB, fits every kernel of the default set)"
            ]
        );
        f.stderr =
            "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory";
        assert!(problems(&f)[0].ends_with("cannot back 48 MiB of guest memory: give less --memory"));
        f.stderr = "";
        f.end = End::Exited(ExitStatus::from_raw(9));
        assert!(problems(&f)[0].contains("exited with signal 9 after 0.5 s and printed nothing"));
    }

    #[test]
    fn a_kernel_out_of_memory_before_init_is_named() {
        let mut f = facts(exited(0));
        f.memory_mb = 100;
        f.console = "[    0.9] Linux version 6.1\n[    1.6] Kernel panic - not syncing: System is \
                     deadlocked on memory\n[ 1.7] CPU: 0\n";
        let p = &problems(&f)[0];
        assert!(
            p.contains("the kernel ran out of memory before it could run /init and panicked after 0.5 s (`Kernel panic - not syncing: System is deadlocked on memory`). That is too little memory: the guest had 100 MiB for the kernel and the 6.0 MiB initramfs")
                && p.contains("; this kernel loads at 16.0 MiB and needs 51.5 MiB from there to decompress and start (its boot header's init_size): with the initramfs at least 73.5 MiB. Give"),
            "{p}"
        );
        f.console = "[ 1.1] Initramfs unpacking failed: invalid magic at start of compressed archive\n\
                     [ 2.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        let p = &problems(&f)[0];
        assert!(
            p.contains("the kernel could not unpack the initramfs, so found no /init (`Initramfs unpacking failed: invalid magic at start of compressed archive`) and panicked after 0.5 s (`Kernel panic - not syncing: VFS: Unable"),
            "{p}"
        );
        f.console = "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n";
        let p = &problems(&f)[0];
        assert!(
            p.contains("the kernel panicked after 0.5 s, before it ran /init (`Kernel panic - not syncing: Attempted to kill init!`); see the console. Likely cause: too little memory: the guest had 100 MiB"),
            "{p}"
        );
        // With room for the kernel and the initramfs twice over, a panic is only a panic.
        f.memory_mb = 512;
        let p = &problems(&f)[0];
        assert!(p.ends_with("see the console."), "{p}");
    }

    #[test]
    fn a_panic_mid_run_and_a_hang_keep_what_came_before() {
        let mut f = facts(exited(0));
        f.hello = true;
        f.console = "[ 9.0] sysrq: Trigger a crash\n[ 9.0] Kernel panic - not syncing: sysrq triggered crash\n";
        let p = &problems(&f)[0];
        assert!(
            p.starts_with("the kernel panicked while the runner was working through the cases (`Kernel panic - not syncing: sysrq triggered crash`)")
                && p.contains("observations it sent before are kept"),
            "{p}"
        );
        f.end = End::Watchdog(Duration::from_secs(20));
        let p = &problems(&f)[0];
        assert!(
            p.starts_with("hang: the guest was still running after 20 s (the --timeout watchdog) and was killed; the kernel had panicked")
                && p.contains("(as `panic=0` on its command line asks)"),
            "{p}"
        );
        f.cmdline = "panic=0 panic=-1";
        assert!(problems(&f)[0].contains("(although its command line asks for `panic=-1`)"));
        f.console = "";
        assert!(problems(&f)[0]
            .ends_with("before it finished the cases; the observations sent before are kept"));
        f.hello = false;
        assert!(problems(&f)[0].contains("console stayed empty"));
        f.done = true;
        f.hello = true;
        for end in [End::Finished, End::Probe, exited(0)] {
            f.end = end;
            assert_eq!(problems(&f), Vec::<String>::new());
        }
    }
}
