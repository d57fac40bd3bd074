//! Making a loaded program run once, for every way a program type runs: a test run (with a
//! context or a packet), attach-then-test-run for tracing programs, attach-and-trigger for the
//! types the kernel only runs on events, or load only.
//!
//! Tracepoint and kprobe perf events stay open between attachments (see `Events`): the program
//! is attached through a BPF link and detached by closing it, which the program cannot tell
//! from an event of its own, while closing such an event waits for the kernel to unregister
//! its probe (≈ 70 ms for a syscall tracepoint).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::fs::Mounts;
use super::{privileges, Res, Stop, EPERM};
use crate::bpf::{self, Errno};
use crate::tables::{Attach, ProgType, RunMode, Trigger};

/// A minimal Ethernet + IPv4 + UDP frame for the packet program types.
pub(super) const PACKET: [u8; 64] = {
    let mut p = [0u8; 64];
    p[12] = 0x08; // EtherType IPv4
    p[14] = 0x45; // IPv4, IHL 5
    p[17] = 50; // total length
    p[22] = 64; // TTL
    p[23] = 17; // UDP
    p
};

/// How long a triggered program may take to run.
const TRIGGER_WAIT: Duration = Duration::from_secs(1);
/// How long to spin for a program that writes no result (one given as text): fifty periods
/// of the cpu-clock event it is attached to (`bpf::perf_software`), so it has run, and
/// nothing can tell how often.
const SILENT_SPIN: Duration = Duration::from_millis(5);

/// Perf events kept open for attaching programs through links, by what they watch.
#[derive(Default)]
pub(super) struct Events {
    kept: BTreeMap<String, OwnedFd>,
    /// Whether perf links work here (5.15+); None until the first attempt.
    links: Option<bool>,
}

impl Events {
    /// Events that are never kept: every attachment opens and closes its own.
    pub(super) fn never() -> Events {
        Events {
            kept: BTreeMap::new(),
            links: Some(false),
        }
    }

    /// Attaches `prog` to the event `key` names: through a link to the kept event (opened
    /// with `open` the first time), or, where that fails, to a new event of its own, as
    /// before links (whose failure is then the answer).
    fn attach(
        &mut self,
        key: String,
        open: &dyn Fn() -> Result<OwnedFd, Errno>,
        prog: BorrowedFd<'_>,
    ) -> Result<OwnedFd, (Phase, Errno)> {
        if self.links != Some(false) {
            let kept = match self.kept.remove(&key) {
                Some(p) => Ok(p),
                None => open(),
            };
            if let Ok(perf) = kept {
                match bpf::perf_link(&perf, prog) {
                    Ok(link) => {
                        self.links = Some(true);
                        self.kept.insert(key, perf);
                        return Ok(link);
                    }
                    // Before 5.15, or an event that still holds a program: not kept.
                    Err(_) => drop(perf),
                }
            }
        }
        let perf = open().map_err(|e| (Phase::Open, e))?;
        bpf::perf_attach(&perf, prog).map_err(|e| (Phase::Attach, e))?;
        if self.links.is_none() {
            // Links fail where the ioctl works: this kernel has none.
            self.links = Some(false);
        }
        Ok(perf)
    }
}

/// Which call of an attachment failed.
enum Phase {
    Open,
    Attach,
}

/// Makes a loaded program of type `pt` run once, as `mode` says (the type's own, or with a
/// step's trigger); `fire` does a trigger's action. With the test run's return value, when a
/// test run ran it: the program's own, or for an attached type the kernel's test function's
/// (which an fmod_ret program modifies). `results`: the result map and its value size, to
/// tell when the program ran; None for a program that writes none. `attaching` gets the time
/// attaching and detaching took, without the run in between.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    pt: &ProgType,
    mode: RunMode,
    prog: BorrowedFd<'_>,
    attach_to: Option<&str>,
    results: Option<(&OwnedFd, usize)>,
    kernel: (&Mounts, &mut Events),
    fire: &mut dyn FnMut(Trigger) -> Result<(), Errno>,
    attaching: &mut Duration,
) -> Result<(Res, Option<u32>), Stop> {
    let test_run = !matches!(mode, RunMode::AttachTrigger(..));
    let attached = |a: Attach, go: &mut dyn FnMut() -> Result<u32, Errno>| {
        let t = Instant::now();
        let link = attach(pt, a, prog, attach_to, kernel)?;
        *attaching = t.elapsed();
        let ran = go();
        let t = Instant::now();
        drop(link);
        *attaching += t.elapsed();
        Ok::<_, Stop>(ran)
    };
    let ran = match mode {
        RunMode::LoadOnly => return Ok((Res::LoadOnly, None)),
        RunMode::TestRun => bpf::test_run(prog, Some(&mut [0u8; 8]), None),
        RunMode::TestRunPacket => bpf::test_run(prog, None, Some(&PACKET)),
        RunMode::AttachTestRun(a) => attached(a, &mut || bpf::test_run(prog, None, None))?,
        RunMode::AttachTrigger(a, t) => attached(a, &mut || {
            if t == Trigger::Spin {
                match results {
                    Some((map, size)) => spin(map, size),
                    None => spin_for(SILENT_SPIN),
                }
                Ok(0)
            } else {
                fire(t).map(|()| 0)
            }
        })?,
    };
    Ok(match ran {
        Ok(retval) => (Res::Loaded, test_run.then_some(retval)),
        Err(e) => (Res::RunFailed { errno: e.name() }, None),
    })
}

/// Attaches; what keeps the attachment alive is returned (dropping it detaches).
pub(super) fn attach(
    pt: &ProgType,
    a: Attach,
    prog: BorrowedFd<'_>,
    attach_to: Option<&str>,
    (mounts, events): (&Mounts, &mut Events),
) -> Result<OwnedFd, Stop> {
    let fail = |what: String, e: Errno| {
        if privileges::is_permission(e) {
            Stop::Refused(e, what)
        } else {
            Stop::Unsupported(format!("{what}: {}", e.name()))
        }
    };
    match a {
        Attach::BtfTarget => bpf::attach_btf_target(prog).map_err(|e| {
            fail(
                format!(
                    "attaching the {} program to {}",
                    pt.name,
                    attach_to.or(pt.attach_btf).unwrap_or("?")
                ),
                e,
            )
        }),
        Attach::PerfTracepoint(tp) => {
            let id = tracepoint_id(tp).ok_or_else(|| match mounts.missing("tracefs") {
                Some(e) if e.0 == EPERM || e.0 == libc::EACCES => {
                    Stop::Refused(e, format!("mounting tracefs for tracepoint {tp}"))
                }
                Some(e) => Stop::Unsupported(format!("tracefs, for tracepoint {tp}: {}", e.name())),
                None => Stop::Unsupported(format!(
                    "tracepoint {tp} is not in tracefs (CONFIG_FTRACE_SYSCALLS?)"
                )),
            })?;
            events
                .attach(
                    format!("tracepoint {id}"),
                    &|| bpf::perf_tracepoint(id),
                    prog,
                )
                .map_err(|(p, e)| match p {
                    Phase::Open => fail(format!("perf event for tracepoint {tp}"), e),
                    Phase::Attach => fail(format!("attaching to tracepoint {tp}"), e),
                })
        }
        Attach::PerfKprobe(func) => {
            let pmu = std::fs::read_to_string("/sys/bus/event_source/devices/kprobe/type")
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    Stop::Unsupported("kprobes: no kprobe PMU in sysfs (CONFIG_KPROBES?)".into())
                })?;
            let name =
                CString::new(func).map_err(|_| Stop::Error(format!("bad function name {func}")))?;
            events
                .attach(
                    format!("kprobe {pmu} {func}"),
                    &|| bpf::perf_kprobe(pmu, &name),
                    prog,
                )
                .map_err(|(p, e)| match p {
                    Phase::Open => fail(format!("kprobe on {func}"), e),
                    Phase::Attach => fail(format!("attaching to the kprobe on {func}"), e),
                })
        }
        Attach::PerfSoftware => {
            let perf =
                bpf::perf_software().map_err(|e| fail("a cpu-clock perf event".into(), e))?;
            bpf::perf_attach(&perf, prog)
                .map_err(|e| fail("attaching to a cpu-clock perf event".into(), e))?;
            Ok(perf)
        }
    }
}

fn tracepoint_id(tp: &str) -> Option<u64> {
    [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .iter()
    .find_map(|root| std::fs::read_to_string(format!("{root}/{tp}/id")).ok())
    .and_then(|s| s.trim().parse().ok())
}

/// Spins on the CPU for `d`.
fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Spins on the CPU until the program ran (its "finished" word, leading the result map's
/// value, is set) or a second passed.
pub(super) fn spin(results: &OwnedFd, size: usize) {
    let start = Instant::now();
    let key = 0u32.to_ne_bytes();
    let mut v = vec![0u8; size];
    while start.elapsed() < TRIGGER_WAIT {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        if bpf::map_lookup(results, &key, &mut v).is_ok() && v[..8].iter().any(|b| *b != 0) {
            break;
        }
    }
}
