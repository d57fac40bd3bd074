//! Loading one compiled program and making it run, for every way a program type runs: a test
//! run (with a context or a packet), attach-then-test-run for tracing programs, attach-and-trigger
//! for the types the kernel only runs on events, or load only. Then the result slots are decoded.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::fs::Mounts;
use super::{privileges, Env, Live, Res, Stop, EPERM};
use crate::bpf::{self, Errno, LoadParams, VmlinuxBtf};
use crate::case::value::ValueArg;
use crate::case::OpSpec;
use crate::compile::asm::{Resolver, Unresolved};
use crate::compile::{self, state, Param, ProgramSpec};
use crate::tables::{Attach, ProgType, RunMode, Trigger};

/// A minimal Ethernet + IPv4 + UDP frame for the packet program types.
const PACKET: [u8; 64] = {
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

impl Env {
    /// Loads and runs one `prog` step. A missing prerequisite (kfunc, helper, program type,
    /// attach point) is that step's result, `unsupported(reason)`, and so is the
    /// environment's refusal, `refused(errno: what)`; the later steps still run.
    pub(super) fn prog<'i>(
        &mut self,
        live: &mut Live<'i>,
        name: &'i str,
        ops: &'i [OpSpec],
        spec: &Result<ProgramSpec, compile::CompileError>,
        attach_to: Option<&str>,
        stay: bool,
    ) -> Result<(), Stop> {
        match self.prog_step(live, name, ops, spec, attach_to, stay) {
            Err(Stop::Unsupported(reason)) => {
                live.results
                    .push((name.to_string(), Res::Unsupported { reason }));
                live.results
                    .extend(ops.iter().map(|o| (o.name().to_string(), Res::Unavailable)));
                Ok(())
            }
            Err(Stop::Refused(e, what)) => {
                let errno = e.name();
                live.results
                    .push((name.to_string(), Res::Refused { errno, what }));
                live.results
                    .extend(ops.iter().map(|o| (o.name().to_string(), Res::Unavailable)));
                Ok(())
            }
            other => other,
        }
    }

    fn prog_step<'i>(
        &mut self,
        live: &mut Live<'i>,
        name: &'i str,
        ops: &'i [OpSpec],
        spec: &Result<ProgramSpec, compile::CompileError>,
        attach_to: Option<&str>,
        stay: bool,
    ) -> Result<(), Stop> {
        let spec = match spec {
            Ok(s) => s,
            Err(e) => {
                live.results.push((
                    name.to_string(),
                    Res::NotCompiled {
                        reason: e.to_string(),
                    },
                ));
                return Ok(());
            }
        };
        // A map this kernel lacks makes the program unsupported (the map's result says why).
        for op in ops {
            if let OpSpec::Get { map, .. } | OpSpec::Delete { map, .. } = op {
                if live.maps[*map].is_none() {
                    let m = &live.inst.maps[*map];
                    return Err(Stop::Unsupported(format!("map type {}", m.map_type.name)));
                }
            }
        }
        let pt = spec.prog_type;
        // A program that stays attached writes a result map of its own.
        let own_results = if stay {
            Some(super::result_map(spec.result_size)?)
        } else {
            None
        };
        let loaded = match &live.inst.object {
            Some(object) => self.load_object(live, name, object, ops, spec)?,
            None => self.load_compiled(live, name, spec, attach_to, own_results.as_ref())?,
        };
        let prog = match loaded {
            Ok(p) => p,
            Err(res) => {
                live.results.push((name.to_string(), res));
                return Ok(());
            }
        };
        if pt.run == RunMode::LoadOnly {
            live.results.push((name.to_string(), Res::LoadOnly));
            return Ok(());
        }
        if let Some(results) = own_results {
            let mut buf = vec![0u8; spec.result_size as usize];
            write_params(live, spec, &results, &mut buf)?;
            let attach_mode = match pt.run {
                RunMode::AttachTestRun(a) | RunMode::AttachTrigger(a, _) => a,
                _ => {
                    return Err(Stop::Error(format!(
                        "{} programs cannot stay attached",
                        pt.name
                    )))
                }
            };
            let link = attach(pt, attach_mode, prog.fd(), attach_to, &self.mounts)?;
            live.attached.push(Attached {
                name,
                ops,
                spec: spec.clone(),
                prog,
                link,
                results,
            });
            return Ok(());
        }
        let result_map = live
            .result_map
            .as_ref()
            .ok_or_else(|| Stop::Error("no result map".into()))?;
        let key = 0u32.to_ne_bytes();
        let mut buf = vec![0u8; live.result_size];
        write_params(live, spec, result_map, &mut buf)?;
        let ran = run(
            pt,
            prog.fd(),
            attach_to,
            result_map,
            live.result_size,
            &self.mounts,
        )?;
        let run_failed = matches!(ran, Res::RunFailed { .. });
        live.results.push((name.to_string(), ran));
        drop(prog);
        if run_failed {
            // The program did not run: its slots say nothing.
            return Ok(());
        }
        bpf::map_lookup(result_map, &key, &mut buf)
            .map_err(|e| Stop::Error(format!("reading the result map: {}", e.name())))?;
        for (op, slot) in ops.iter().zip(&spec.slots) {
            let mut res = decode(op, slot, &buf, &live.value_sizes);
            // Storage created from an uninitialised buffer holds stack garbage: never record
            // it (it may be a kernel address, and it differs between runs).
            let map = match op {
                OpSpec::Get { map, .. } => Some(*map),
                OpSpec::Read { from, .. } => match &ops[*from] {
                    OpSpec::Get { map, .. } => Some(*map),
                    _ => None,
                },
                _ => None,
            };
            if let (
                OpSpec::Get {
                    value: ValueArg::Uninit,
                    map,
                    ..
                },
                Res::Ptr { .. },
            ) = (op, &res)
            {
                live.tainted[*map] = true;
            }
            if map.is_some_and(|m| live.tainted[m]) {
                res = match res {
                    Res::Ptr { total, .. } => Res::PtrUninit { total },
                    Res::Value { .. } => Res::Uninit,
                    other => other,
                };
            }
            live.results.push((op.name().to_string(), res));
        }
        Ok(())
    }

    /// Loads the compiler's program. `Ok(Err(res))`: the verifier's refusal, to record.
    fn load_compiled(
        &mut self,
        live: &Live<'_>,
        name: &str,
        spec: &ProgramSpec,
        attach_to: Option<&str>,
        results: Option<&OwnedFd>,
    ) -> Result<Result<Loaded, Res>, Stop> {
        let pt = spec.prog_type;
        let (insns, attach_btf_id) = self.link(live, pt, spec, attach_to, results)?;
        // `show` wants the full trace (level 2) and statistics (4); a run wants speed: libbpf
        // reloads a refused program with level 1 to fetch the reason.
        let params = LoadParams {
            prog_type: pt.id,
            expected_attach_type: pt.expected_attach_type,
            attach_btf_id,
            sleepable: pt.sleepable,
            insns: &insns,
        };
        let level = self.log_level();
        let loaded = bpf::prog_load(&params, &mut self.log, level);
        self.keep_log(name, &loaded.as_ref().map(|_| ()));
        match loaded {
            Ok(fd) => Ok(Ok(Loaded::Own(fd))),
            Err(e) => self.refusal(pt, spec, e).map(Err),
        }
    }

    /// Loads the C program named by the case instead (see `cprog`).
    fn load_object(
        &mut self,
        live: &Live<'_>,
        name: &str,
        object: &str,
        ops: &[OpSpec],
        spec: &ProgramSpec,
    ) -> Result<Result<Loaded, Res>, Stop> {
        let pt = spec.prog_type;
        let (config, map) = match super::cprog::config(pt, ops, &live.value_sizes, spec) {
            Ok(c) => c,
            Err(reason) => return Ok(Err(Res::NotCompiled { reason })),
        };
        let bytes = crate::progs::object(object).ok_or_else(|| {
            Stop::Unsupported(format!(
                "progs/{object}.bpf.c was not built (no clang when bpfcase was built)"
            ))
        })?;
        let setup = |e: Errno| Stop::Error(format!("preparing progs/{object}.bpf.c: {}", e.name()));
        let mut obj = bpf::object::Object::open(bytes).map_err(setup)?;
        if let Some(m) = map {
            let fd = live.maps[m]
                .as_ref()
                .ok_or_else(|| Stop::Error("the map of a C program step is missing".into()))?;
            obj.reuse_map("st", fd).map_err(setup)?;
        }
        let results = live
            .result_map
            .as_ref()
            .ok_or_else(|| Stop::Error("no result map".into()))?;
        obj.reuse_map("results", results).map_err(setup)?;
        obj.set_rodata(&config).map_err(setup)?;
        let level = self.log_level();
        let loaded = obj.load(super::cprog::PROGRAM, &mut self.log, level);
        self.keep_log(name, &loaded.as_ref().map(|_| ()));
        match loaded {
            Ok(fd) => Ok(Ok(Loaded::Object { _object: obj, fd })),
            Err(e) => self.refusal(pt, spec, e).map(Err),
        }
    }

    fn log_level(&self) -> u32 {
        if self.keep_logs {
            2 | 4
        } else {
            0
        }
    }

    /// With `keep_logs`, keeps the verifier log of the last load.
    fn keep_log(&mut self, name: &str, loaded: &Result<(), &bpf::LoadError>) {
        if self.keep_logs {
            let log = match loaded {
                Ok(()) => bpf::log_text(&self.log),
                Err(e) => e.log.clone(),
            };
            self.logs.push((name.to_string(), log));
        }
    }

    /// A refused load: the environment's refusal (EPERM, or a verifier answer that a missing
    /// capability explains), a missing prerequisite, or the verifier's answer.
    fn refusal(
        &mut self,
        pt: &ProgType,
        spec: &ProgramSpec,
        e: bpf::LoadError,
    ) -> Result<Res, Stop> {
        if e.errno.0 == EPERM {
            let without = self.privileges.without(self.privileges.prog_needs(pt.id));
            return Err(Stop::Refused(
                e.errno,
                format!("loading a {} program{without}", pt.name),
            ));
        }
        let line = super::verifier::key_line(&e.log);
        if let Some(without) = privileges::privileged_rejection(&self.privileges, &line) {
            return Err(Stop::Refused(
                e.errno,
                format!("loading a {} program{without}: {line}", pt.name),
            ));
        }
        self.explain_rejection(pt, spec, &e.log)?;
        Ok(Res::Rejected {
            errno: e.errno.name(),
            line,
        })
    }

    /// Patches map fds, kfunc ids and per-CPU variables into the program; finds the attach
    /// target's BTF id.
    fn link(
        &mut self,
        live: &Live<'_>,
        pt: &ProgType,
        spec: &ProgramSpec,
        attach_to: Option<&str>,
        results: Option<&OwnedFd>,
    ) -> Result<(Vec<compile::asm::Insn>, Option<u32>), Stop> {
        let mut links = Links {
            maps: &live.maps,
            result_fd: results
                .or(live.result_map.as_ref())
                .map_or(-1, |f| f.as_raw_fd()),
            kfuncs: HashMap::new(),
            percpu: HashMap::new(),
        };
        let mut attach_btf_id = None;
        let target = attach_to.or(pt.attach_btf);
        if !spec.kfuncs.is_empty() || !spec.percpu.is_empty() || target.is_some() {
            let btf = match self.vmlinux.get_or_insert_with(VmlinuxBtf::load) {
                Ok(b) => b,
                Err(e) => {
                    return Err(Stop::Unsupported(format!(
                        "kernel BTF (vmlinux): {}",
                        e.name()
                    )))
                }
            };
            for k in &spec.kfuncs {
                match btf.func_id(k) {
                    Some(id) => {
                        links.kfuncs.insert(k.to_string(), id);
                    }
                    None => return Err(Stop::Unsupported(format!("kfunc {k}"))),
                }
            }
            for v in &spec.percpu {
                match btf.percpu(v) {
                    Some(found) => {
                        links.percpu.insert(v.name.to_string(), found);
                    }
                    None => return Err(Stop::Unsupported(unresolved_percpu(v.name))),
                }
            }
            if let Some(target) = target {
                let id = if target.starts_with("btf_trace_") {
                    btf.typedef_id(target)
                } else {
                    btf.func_id(target)
                };
                match id {
                    Some(id) => attach_btf_id = Some(id as u32),
                    None => {
                        return Err(Stop::Unsupported(format!(
                            "attach target {target} is not in the kernel's BTF"
                        )))
                    }
                }
            }
        }
        let insns = spec.program.patched(&links).map_err(|u| {
            Stop::Unsupported(match u {
                Unresolved::Kfunc(k) => format!("kfunc {k}"),
                Unresolved::PerCpu(v) => unresolved_percpu(&v),
            })
        })?;
        Ok((insns, attach_btf_id))
    }

    /// A refused load is "unsupported" when the kernel lacks the program type (probed, cached)
    /// or does not know a helper the program calls (the verifier names it `unknown#<id>`);
    /// otherwise the verifier's answer is the observation.
    fn explain_rejection(
        &mut self,
        pt: &ProgType,
        spec: &ProgramSpec,
        log: &str,
    ) -> Result<(), Stop> {
        let probe = *self
            .prog_types
            .entry(pt.id)
            .or_insert_with(|| bpf::probe_prog_type(pt.id));
        match probe {
            Ok(true) => {}
            Err(e) if privileges::is_permission(e) => {
                let without = self.privileges.without(self.privileges.prog_needs(pt.id));
                return Err(Stop::Refused(
                    e,
                    format!("probing program type {}{without}", pt.name),
                ));
            }
            _ => return Err(Stop::Unsupported(format!("program type {}", pt.name))),
        }
        if !spec.percpu.is_empty() && log.contains("failed to find the address for kernel symbol") {
            // The variable is in the BTF, but kallsyms has no address for it (a kernel built
            // without CONFIG_KALLSYMS_ALL lists no data symbols).
            let names: Vec<&str> = spec.percpu.iter().map(|v| v.name).collect();
            return Err(Stop::Unsupported(format!(
                "kallsyms has no address for per-CPU {} (CONFIG_KALLSYMS_ALL?): an attached program cannot tell the runner's task context from interrupts",
                names.join(", ")
            )));
        }
        for h in &spec.helpers {
            let needle = format!("unknown#{}", h.id);
            let unknown = log
                .match_indices(&needle)
                .any(|(i, _)| !log[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()));
            if unknown {
                return Err(Stop::Unsupported(format!(
                    "helper {} (#{}) is unknown to this kernel",
                    h.name, h.id
                )));
            }
        }
        Ok(())
    }
}

/// What a missing per-CPU variable means for the program.
fn unresolved_percpu(name: &str) -> String {
    let places = crate::tables::percpu_value(name)
        .map(|v| {
            v.places
                .iter()
                .map(|(var, m)| m.map_or(var.to_string(), |m| format!("{var}.{m}")))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .unwrap_or_default();
    format!("per-CPU {name} ({places}) is not in the kernel's BTF: an attached program cannot tell the runner's task context from interrupts")
}

/// The loader's answers to a program's relocations.
struct Links<'a> {
    maps: &'a [Option<OwnedFd>],
    /// The result map, which map relocations index after the instance's maps.
    result_fd: RawFd,
    kfuncs: HashMap<String, i32>,
    percpu: HashMap<String, (i32, i16)>,
}

impl Resolver for Links<'_> {
    fn map_fd(&self, map: usize) -> i32 {
        match self.maps.get(map) {
            Some(Some(f)) => f.as_raw_fd(),
            Some(None) => -1,
            None => self.result_fd,
        }
    }
    fn kfunc_id(&self, name: &str) -> Option<i32> {
        self.kfuncs.get(name).copied()
    }
    fn percpu(&self, name: &str) -> Option<(i32, i16)> {
        self.percpu.get(name).copied()
    }
}

/// A program that stays attached while the instance's later steps run.
pub(super) struct Attached<'i> {
    name: &'i str,
    ops: &'i [OpSpec],
    spec: ProgramSpec,
    prog: Loaded,
    link: OwnedFd,
    results: OwnedFd,
}

impl Env {
    /// Detaches the programs that stayed attached and records what they counted.
    pub(super) fn collect_attached(&mut self, live: &mut Live<'_>) -> Result<(), Stop> {
        for a in std::mem::take(&mut live.attached) {
            drop(a.link);
            let recursion_misses = bpf::recursion_misses(a.prog.fd()).unwrap_or(0);
            let mut buf = vec![0u8; a.spec.result_size as usize];
            bpf::map_lookup(&a.results, &0u32.to_ne_bytes(), &mut buf)
                .map_err(|e| Stop::Error(format!("reading a result map: {}", e.name())))?;
            let word = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
            live.results.push((
                a.name.to_string(),
                Res::Attached {
                    runs: word(0),
                    recursion_misses,
                },
            ));
            for (op, slot) in a.ops.iter().zip(&a.spec.slots) {
                let at = slot.offset as usize;
                let failure = match op {
                    OpSpec::Delete { .. } => "ebusy",
                    OpSpec::Get { .. } | OpSpec::CurrentTask { .. } => "null",
                    OpSpec::Read { .. } | OpSpec::Write { .. } => "skipped",
                };
                let (calls, failures) = (word(at), word(at + 8));
                let failures = if failure == "skipped" { 0 } else { failures };
                live.results.push((
                    op.name().to_string(),
                    Res::Count {
                        calls,
                        failures,
                        failure: failure.into(),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Writes a program's run-time parameters (after zeroing its slots) into its result map.
fn write_params(
    live: &Live<'_>,
    spec: &ProgramSpec,
    map: &OwnedFd,
    buf: &mut [u8],
) -> Result<(), Stop> {
    buf.fill(0);
    for (i, p) in spec.params.iter().enumerate() {
        let v = match p {
            Param::Flags(v) => *v,
            Param::ChildPid(c) => live
                .children
                .iter()
                .find(|x| &x.name == c)
                .map_or(0, |x| x.pid as u64),
            Param::RunnerThread => runner_thread(),
        };
        let at = spec.params_offset as usize + i * 8;
        buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    bpf::map_update(map, &0u32.to_ne_bytes(), buf, 0)
        .map_err(|e| Stop::Error(format!("writing a result map: {}", e.name())))
}

/// This thread as `bpf_get_current_pid_tgid` sees it: tgid << 32 | tid.
fn runner_thread() -> u64 {
    let tid = nix::unistd::gettid().as_raw() as u32 as u64;
    ((std::process::id() as u64) << 32) | tid
}

/// A loaded program: the runner's own, or one inside a libbpf object (closed with it).
enum Loaded {
    Own(OwnedFd),
    /// The object owns the program fd; dropping it closes the program.
    Object {
        _object: bpf::object::Object,
        fd: RawFd,
    },
}

impl Loaded {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Loaded::Own(fd) => fd.as_fd(),
            // SAFETY: the object owns this fd and lives as long as the borrow.
            Loaded::Object { fd, .. } => unsafe { BorrowedFd::borrow_raw(*fd) },
        }
    }
}

/// Makes a loaded program run once, as its type allows.
fn run(
    pt: &ProgType,
    prog: BorrowedFd<'_>,
    attach_to: Option<&str>,
    results: &OwnedFd,
    size: usize,
    mounts: &Mounts,
) -> Result<Res, Stop> {
    let ran = match pt.run {
        RunMode::LoadOnly => return Ok(Res::LoadOnly),
        RunMode::TestRun => bpf::test_run(prog, Some(&mut [0u8; 8]), None),
        RunMode::TestRunPacket => bpf::test_run(prog, None, Some(&PACKET)),
        RunMode::AttachTestRun(a) => {
            let _link = attach(pt, a, prog, attach_to, mounts)?;
            bpf::test_run(prog, None, None)
        }
        RunMode::AttachTrigger(a, t) => {
            let _link = attach(pt, a, prog, attach_to, mounts)?;
            trigger(t, results, size);
            Ok(0)
        }
    };
    Ok(match ran {
        Ok(_) => Res::Loaded,
        Err(e) => Res::RunFailed { errno: e.name() },
    })
}

/// Attaches; what keeps the attachment alive is returned (dropping it detaches).
fn attach(
    pt: &ProgType,
    a: Attach,
    prog: BorrowedFd<'_>,
    attach_to: Option<&str>,
    mounts: &Mounts,
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
            let perf = bpf::perf_tracepoint(id)
                .map_err(|e| fail(format!("perf event for tracepoint {tp}"), e))?;
            bpf::perf_attach(&perf, prog)
                .map_err(|e| fail(format!("attaching to tracepoint {tp}"), e))?;
            Ok(perf)
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
            let perf =
                bpf::perf_kprobe(pmu, &name).map_err(|e| fail(format!("kprobe on {func}"), e))?;
            bpf::perf_attach(&perf, prog)
                .map_err(|e| fail(format!("attaching to the kprobe on {func}"), e))?;
            Ok(perf)
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

/// Makes the kernel run the attached program for the runner.
fn trigger(t: Trigger, results: &OwnedFd, size: usize) {
    match t {
        Trigger::Getpid => {
            // SAFETY: getpid has no preconditions; the raw syscall avoids libc caching.
            unsafe { libc::syscall(libc::SYS_getpid) };
        }
        Trigger::OpenFile => {
            let _ = std::fs::File::open("/dev/null");
        }
        Trigger::Spin => {
            let start = Instant::now();
            let key = 0u32.to_ne_bytes();
            let mut v = vec![0u8; size];
            while start.elapsed() < TRIGGER_WAIT {
                let spin = Instant::now();
                while spin.elapsed() < Duration::from_millis(1) {
                    std::hint::spin_loop();
                }
                // The "finished" word leads the result map's value.
                if bpf::map_lookup(results, &key, &mut v).is_ok() && v[..8].iter().any(|b| *b != 0)
                {
                    break;
                }
            }
        }
    }
}

fn decode(op: &OpSpec, slot: &compile::Slot, buf: &[u8], value_sizes: &[u32]) -> Res {
    let at = slot.offset as usize;
    let word = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().expect("8-byte slice"));
    let st = word(at);
    let ret = word(at + 8);
    match st {
        state::NOT_REACHED => return Res::NotReached,
        state::NO_TASK => return Res::NoTask,
        state::SKIPPED_NULL => return Res::SkippedNull,
        _ => {}
    }
    match op {
        OpSpec::Get { map, .. } => {
            if ret == 0 {
                Res::Null
            } else {
                let vs = value_sizes[*map];
                let n = vs.min(compile::MAX_PAYLOAD) as usize;
                Res::Ptr {
                    bytes: buf[at + 16..at + 16 + n].to_vec(),
                    total: vs,
                }
            }
        }
        OpSpec::CurrentTask { .. } => {
            if ret == 0 {
                Res::Null
            } else {
                Res::TaskPtr
            }
        }
        OpSpec::Delete { .. } => Res::Ret { value: ret as i64 },
        OpSpec::Read { width, .. } => Res::Value {
            bytes: ret.to_le_bytes()[..width.bytes() as usize].to_vec(),
        },
        OpSpec::Write { .. } => Res::Ok,
    }
}
