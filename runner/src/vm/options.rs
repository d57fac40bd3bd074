//! How guests are started ([`Options`]) and the values each knob accepts: guest memory, vCPUs,
//! the watchdog and additions to the kernel command line. The limits are facts about QEMU and
//! the guests, measured, not taste; the command line checks its flags against them, and
//! [`Options::check`] refuses the same values for library callers.
//!
//! Owns: the option values and their limits. Must not: start anything.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::kernels;
use super::qemu::Accel;

/// Guest memory in MiB.
///
/// At least 68: below it no kernel of the default set reaches the runner. Measured with
/// `bpfcase vm --memory N` (TCG, one case file, a release build: a 6 MB initramfs) on the
/// manifest's default kernels: 5.10 needs 68 MiB, 6.12 78, 6.1 79, 7.3 85 (a debug build's
/// 56 MB initramfs: 136, 126, 147, 153). What a kernel needs at the least is its load address
/// (16 MiB for Debian's), its `init_size` (45–60 MiB) and the initramfs, side by side; QEMU
/// itself takes `-m 0` for its default of 128 MiB, so 0 cannot mean "none".
///
/// At most 1 TiB: a TCG guest's CPU (`-cpu max`) addresses 40 bits of physical memory. QEMU
/// also needs the host to back the memory (it says so when it cannot: that is reported).
pub const MEMORY_MB: RangeInclusive<u32> = 68..=1 << 20;

/// vCPUs: at least one; QEMU's `pc` machine takes at most 255 (`-smp 0` silently means its
/// default, 1). Under TCG more than one made observations differ between runs.
pub const CPUS: RangeInclusive<u32> = 1..=255;

/// The watchdog in seconds: a guest needs about 1 s (KVM) to 5 s (TCG) to reach the runner, and
/// 0 would kill every guest at once. A day bounds a guest that forgot to stop.
pub const TIMEOUT_S: RangeInclusive<u64> = 1..=86_400;

/// The longest command line x86 kernels take (`COMMAND_LINE_SIZE`, the `cmdline_size` of the
/// boot protocol), terminating NUL included.
pub const CMDLINE_MAX: usize = 2048;

/// How guests are started.
#[derive(Clone, Debug)]
pub struct Options {
    /// MiB, in [`MEMORY_MB`].
    pub memory_mb: u32,
    /// In [`CPUS`].
    pub cpus: u32,
    /// The watchdog: a guest still running after this is killed and reported as hung. Whole
    /// seconds in [`TIMEOUT_S`].
    pub timeout: Duration,
    /// None: KVM when it actually boots a kernel here (see `accel`), else TCG.
    pub accel: Option<Accel>,
    /// Where the KVM verdict is kept (`<cache>/kvm.json`); None: measured in each process.
    pub cache: Option<PathBuf>,
    /// Added to the guest kernel's command line, after bpfcase's own parameters (so that a
    /// parameter given twice takes this value, as the kernel reads the last one).
    pub append: Vec<String>,
    /// Whether guests may start from a guest saved after its boot, and save one (see
    /// `warm`; needs `cache`). Default: [`warm_by_default`].
    pub warm: bool,
}

/// Warm starts unless `BPFCASE_WARM=0`; with a QEMU named by `BPFCASE_QEMU` (a wrapper may
/// change the guest behind bpfcase's back, which a saved guest would not follow) only with
/// `BPFCASE_WARM=1`.
pub fn warm_by_default() -> bool {
    match std::env::var("BPFCASE_WARM").ok().as_deref().map(str::trim) {
        Some("0") => false,
        Some("1") => true,
        _ => std::env::var_os("BPFCASE_QEMU").is_none(),
    }
}

impl Default for Options {
    /// 512 MiB (every default kernel with a debug build's initramfs fits), 1 vCPU, a 300 s
    /// watchdog, the accelerator that works here, the cache's KVM verdict, nothing appended,
    /// warm starts as [`warm_by_default`] says.
    fn default() -> Self {
        Options {
            memory_mb: 512,
            cpus: 1,
            timeout: Duration::from_secs(300),
            accel: None,
            cache: Some(kernels::cache_dir()),
            append: Vec::new(),
            warm: warm_by_default(),
        }
    }
}

impl Options {
    /// Why these options cannot start a guest, if they cannot: each value against its limit.
    pub fn check(&self) -> Result<(), String> {
        check_memory(self.memory_mb)?;
        check_cpus(self.cpus)?;
        if self.timeout.subsec_nanos() != 0 {
            return Err("the watchdog takes whole seconds".into());
        }
        check_timeout(self.timeout.as_secs())?;
        for a in &self.append {
            check_append(a)?;
        }
        let line = super::qemu::cmdline(&self.append);
        if line.len() >= CMDLINE_MAX {
            return Err(format!(
                "the kernel command line would be {} bytes (bpfcase's own {} and the rest \
                 appended); x86 kernels take at most {}",
                line.len(),
                super::qemu::cmdline(&[]).len(),
                CMDLINE_MAX - 1
            ));
        }
        Ok(())
    }
}

fn out_of<T: std::fmt::Display>(r: &RangeInclusive<T>) -> String {
    format!("{} to {}", r.start(), r.end())
}

/// `--memory`: MiB in [`MEMORY_MB`].
pub fn check_memory(mb: u32) -> Result<(), String> {
    if MEMORY_MB.contains(&mb) {
        return Ok(());
    }
    Err(format!(
        "guest memory is given in MiB, from {}: below {} MiB no kernel of the default set \
         reaches the runner (newer kernels and a bigger initramfs need more: the default is 512), \
         and a TCG guest addresses at most 1 TiB",
        out_of(&MEMORY_MB),
        MEMORY_MB.start()
    ))
}

/// `--cpus`: in [`CPUS`].
pub fn check_cpus(n: u32) -> Result<(), String> {
    if CPUS.contains(&n) {
        return Ok(());
    }
    Err(format!(
        "a guest has {} vCPUs (QEMU's pc machine takes at most {}); 1, the default, keeps \
         TCG guests deterministic",
        out_of(&CPUS),
        CPUS.end()
    ))
}

/// `--timeout`: seconds in [`TIMEOUT_S`].
pub fn check_timeout(s: u64) -> Result<(), String> {
    if TIMEOUT_S.contains(&s) {
        return Ok(());
    }
    Err(format!(
        "the watchdog takes {} seconds (a day); a guest needs about 1 s (KVM) to 5 s (TCG) \
         just to reach the runner, and the default is 300",
        out_of(&TIMEOUT_S)
    ))
}

/// One `--append` value: kernel parameters on one line.
pub fn check_append(a: &str) -> Result<(), String> {
    if a.contains(['\n', '\r', '\0']) {
        return Err("kernel parameters go on one line: no newline or NUL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_their_own_checks() {
        Options::default().check().unwrap();
    }

    #[test]
    fn zero_and_too_much_are_refused_with_the_range() {
        for (o, want) in [
            (
                Options {
                    memory_mb: 0,
                    ..Options::default()
                },
                "from 68 to 1048576",
            ),
            (
                Options {
                    memory_mb: 48,
                    ..Options::default()
                },
                "from 68 to 1048576",
            ),
            (
                Options {
                    cpus: 0,
                    ..Options::default()
                },
                "1 to 255 vCPUs",
            ),
            (
                Options {
                    cpus: 256,
                    ..Options::default()
                },
                "1 to 255 vCPUs",
            ),
            (
                Options {
                    timeout: Duration::ZERO,
                    ..Options::default()
                },
                "1 to 86400 seconds",
            ),
            (
                Options {
                    timeout: Duration::from_millis(1500),
                    ..Options::default()
                },
                "whole seconds",
            ),
            (
                Options {
                    append: vec!["a\nb".into()],
                    ..Options::default()
                },
                "one line",
            ),
            (
                Options {
                    append: vec!["x".repeat(2000)],
                    ..Options::default()
                },
                "at most 2047",
            ),
        ] {
            let e = o.check().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        for ok in [68, 512, 1 << 20] {
            check_memory(ok).unwrap();
        }
        check_cpus(255).unwrap();
        check_timeout(1).unwrap();
        check_timeout(86_400).unwrap();
        assert!(check_timeout(86_401).is_err());
    }
}
