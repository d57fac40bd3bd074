//! A `prog` step that runs a C program of `progs/` as written: its chosen programs loaded
//! together (globals set first), attached by their `SEC` for attached types and triggered, or
//! test-run, then its globals read back. Results: `load`, one per program, `retval` (test-run
//! types), and each observed global.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;

use super::super::attach::{spin, PACKET};
use super::super::timing::Phase;
use super::super::trigger::Doer;
use super::super::{privileges, Env, Live, Res, Stop};
use crate::bpf::object::Object;
use crate::bpf::object_progs::Link;
use crate::bpf::{self, Errno};
use crate::case::{GlobalValue, MapSpec, ObjectStep, Observe};
use crate::compile::{self, ProgramSpec};
use crate::tables::{ProgType, RunMode, Trigger};

impl Env {
    /// Runs the C program of an `object` step; what the kernel lacks or the environment refuses
    /// is the step's result, and the instance goes on.
    pub(in crate::exec) fn object_step(
        &mut self,
        live: &mut Live<'_>,
        name: &str,
        pt: &'static ProgType,
        o: &ObjectStep,
    ) -> Result<(), Stop> {
        let before = live.results.len();
        match self.object_run(live, name, pt, o) {
            Err(Stop::Unsupported(reason)) => {
                live.results.truncate(before);
                live.results
                    .push((name.into(), Res::Unsupported { reason }));
                Ok(())
            }
            Err(Stop::Refused(e, what)) => {
                live.results.truncate(before);
                let errno = e.name();
                live.results
                    .push((name.into(), Res::Refused { errno, what }));
                Ok(())
            }
            other => other,
        }
    }

    fn object_run(
        &mut self,
        live: &mut Live<'_>,
        name: &str,
        pt: &'static ProgType,
        o: &ObjectStep,
    ) -> Result<(), Stop> {
        self.clock.switch(Phase::Load);
        let src = format!("progs/{}.bpf.c", o.object);
        let Some(bytes) = crate::progs::object(&o.object) else {
            return Err(Stop::Unsupported(format!("{src} was not built (no clang)")));
        };
        let (maps, fds) = (&live.inst.maps, live.maps.clone());
        let open = |programs: &[String]| -> Result<Result<Object, String>, Stop> {
            let obj = Object::open(bytes)
                .map_err(|e| Stop::Error(format!("opening {src}: {}", e.name())))?;
            Ok(prepare((maps, &fds), &obj, o, programs).map(|()| obj))
        };
        let mut obj = match open(&o.programs)? {
            Ok(obj) => obj,
            Err(reason) => {
                live.results
                    .push((name.into(), Res::NotCompiled { reason }));
                return Ok(());
            }
        };
        // A map type this kernel lacks fails the load before any verifier speaks.
        for t in obj.map_types() {
            let probe = *self
                .map_types
                .entry(t)
                .or_insert_with(|| bpf::probe_map_type(t));
            if probe == Ok(false) {
                let name = crate::tables::MAP_TYPES.iter().find(|m| m.id == t);
                let name = name.map_or(format!("#{t}"), |m| m.name.to_string());
                return Err(Stop::Unsupported(format!("map type {name}")));
            }
        }
        // An attach target missing from the kernel's BTF fails the load in libbpf (ESRCH).
        for p in &o.programs {
            let Some(target) = obj.section(p).as_deref().and_then(btf_target) else {
                continue;
            };
            let btf = match self.vmlinux.get_or_insert_with(bpf::VmlinuxBtf::load) {
                Ok(b) => b,
                Err(e) => {
                    return Err(Stop::Unsupported(format!(
                        "kernel BTF (vmlinux): {}",
                        e.name()
                    )))
                }
            };
            let found = match target.strip_prefix("btf_trace_") {
                Some(_) => btf.typedef_id(&target),
                None => btf.func_id(&target),
            };
            if found.is_none() {
                return Err(Stop::Unsupported(format!(
                    "attach target {target} of {p} is not in the kernel's BTF"
                )));
            }
        }
        let level = self.log_level();
        // Verdicts name the program type; helpers are the object's own business.
        let spec = no_program(pt);
        if let Err(e) = obj.load_all(&mut self.log, level) {
            self.clock.t.counts.progs_loaded += 1;
            let joint = match self.object_refusal(name, pt, &spec, e) {
                Err(Stop::Refused(errno, what)) if o.programs.len() > 1 => {
                    // Which of the programs the environment refuses, by their SEC.
                    let mut refused = Vec::new();
                    for p in &o.programs {
                        if let Ok(mut one) = open(std::slice::from_ref(p))? {
                            if one
                                .load_all(&mut self.log, 0)
                                .is_err_and(|e| e.errno.0 == errno.0)
                            {
                                let sec = one.section(p).unwrap_or_default();
                                refused.push(format!("{p} ({sec})"));
                            }
                        }
                    }
                    if refused.is_empty() {
                        return Err(Stop::Refused(errno, what));
                    }
                    let without = what.find(" without ").map_or("", |i| &what[i..]);
                    let what = format!("loading {}{without}", refused.join(", "));
                    return Err(Stop::Refused(errno, what));
                }
                other => other?,
            };
            live.results.push((name.into(), joint.clone()));
            // Each program alone, to say which one the kernel refuses.
            for p in &o.programs {
                let alone = match (o.programs.len(), open(std::slice::from_ref(p))?) {
                    (1, _) => joint.clone(),
                    (_, Err(reason)) => Res::NotCompiled { reason },
                    (_, Ok(mut one)) => match one.load_all(&mut self.log, 0) {
                        Ok(()) => Res::LoadOnly,
                        Err(e) => self.object_refusal(p, pt, &spec, e)?,
                    },
                };
                live.results.push((p.clone(), alone));
            }
            return Ok(());
        }
        self.clock.t.counts.progs_loaded += 1;
        let fds = o
            .programs
            .iter()
            .map(|p| obj.prog_fd(p))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Stop::Error(format!("a loaded program of {src} has no fd")))?;
        self.clock.switch(Phase::Run);
        // SAFETY (for each borrow below): the object owns these fds and outlives the run.
        let fd = |i: usize| unsafe { BorrowedFd::borrow_raw(fds[i]) };
        let mut retval = None;
        let mut ran = Res::Loaded;
        let mut globals_read = None;
        match pt.run {
            RunMode::LoadOnly => ran = Res::LoadOnly,
            RunMode::TestRun | RunMode::TestRunPacket => {
                let packet = (pt.run == RunMode::TestRunPacket).then_some(&PACKET[..]);
                for _ in 0..o.runs {
                    let mut ctx = packet.is_none().then_some([0u8; 8]);
                    match bpf::test_run(fd(0), ctx.as_mut().map(|c| &mut c[..]), packet) {
                        Ok(r) => retval = Some(r),
                        Err(e) => ran = Res::RunFailed { errno: e.name() },
                    }
                }
            }
            RunMode::AttachTestRun(_) | RunMode::AttachTrigger(..) => {
                // Made before attaching: the programs see every system call in between (the
                // selftests count them).
                let results = match &live.result_map {
                    Some(r) => r.clone(),
                    None => self.result_map(8, false)?,
                };
                let mut links: Vec<Link> = Vec::new();
                for p in &o.programs {
                    links.push(obj.attach(p).map_err(|e| attach_stop(pt, p, e))?);
                }
                let mut reset_failed = None;
                match pt.run {
                    RunMode::AttachTrigger(_, t) => {
                        for _ in 0..o.runs {
                            if t == Trigger::Spin {
                                spin(&results, 8);
                            } else if let Err(e) = Doer::Runner.fire(t) {
                                ran = Res::RunFailed { errno: e.name() };
                            }
                        }
                    }
                    _ => {
                        for _ in 0..o.runs {
                            if let Err(e) = bpf::test_run(fd(0), None, None) {
                                ran = Res::RunFailed { errno: e.name() };
                            }
                        }
                    }
                }
                // Read while attached, without a system call the programs would see.
                globals_read = Some(read_globals(&obj, o));
                for (g, v) in &o.reset {
                    if let Err(reason) = obj.set_global_live(g, value_of(*v)) {
                        reset_failed.get_or_insert(reason);
                    }
                }
                // Detached in the order attached, before anything is read.
                for l in links {
                    drop(l);
                }
                if let Some(reason) = reset_failed {
                    ran = Res::NotCompiled { reason };
                }
            }
        }
        self.clock.switch(Phase::Observe);
        let each = if ran == Res::LoadOnly {
            Res::LoadOnly
        } else {
            Res::Loaded
        };
        live.results.push((name.into(), ran));
        live.results
            .extend(o.programs.iter().map(|p| (p.clone(), each.clone())));
        if let Some(v) = retval {
            live.results
                .push((o.retval.clone(), Res::Ret { value: v.into() }));
        }
        let mut globals_read = globals_read
            .unwrap_or_else(|| read_globals(&obj, o))
            .into_iter();
        for ob in &o.observe {
            let res = match ob {
                Observe::Global(_) => globals_read.next().unwrap_or(Res::NotReached),
                Observe::RecursionMisses(p) => {
                    let i = o.programs.iter().position(|x| x == p).unwrap_or(0);
                    match bpf::recursion_misses(fd(i)) {
                        Ok(n) => Res::Ret { value: n as i64 },
                        Err(e) => Res::Err { errno: e.name() },
                    }
                }
            };
            live.results.push((ob.name(), res));
        }
        Ok(())
    }

    /// A refused load of the object as a result (the verifier's answer), or the instance's
    /// stop (the environment's refusal, a missing program type).
    fn object_refusal(
        &mut self,
        name: &str,
        pt: &ProgType,
        spec: &ProgramSpec,
        e: bpf::LoadError,
    ) -> Result<Res, Stop> {
        match self.rejection(name, pt, spec, e)? {
            Ok(_) => Err(Stop::Error("a refused load loaded".into())),
            Err(res) => Ok(res),
        }
    }
}

/// Before load: only the programs named load, the case's maps of the same names replace the
/// object's, and the globals are set. Err: what the case asks that the object does not have.
fn prepare(
    (maps, fds): (&[MapSpec], &[Option<Rc<OwnedFd>>]),
    obj: &Object,
    o: &ObjectStep,
    programs: &[String],
) -> Result<(), String> {
    let have = obj.program_names();
    if let Some(missing) = programs.iter().find(|p| !have.contains(p)) {
        return Err(format!(
            "no program `{missing}` in progs/{}.bpf.c (programs: {})",
            o.object,
            have.join(", ")
        ));
    }
    obj.load_only(programs);
    for (m, fd) in maps.iter().zip(fds) {
        if let Some(fd) = fd {
            // A map the object does not have stays the case's own.
            let _ = obj.reuse_map(&m.name, fd);
        }
    }
    for (g, v) in &o.globals {
        obj.set_global(g, value_of(*v))?;
    }
    for (g, _) in &o.reset {
        obj.global_image(g)?;
    }
    Ok(())
}

fn value_of(v: GlobalValue) -> u64 {
    match v {
        GlobalValue::Number(n) => n,
        GlobalValue::Tid => nix::unistd::gettid().as_raw() as u64,
    }
}

/// The observed globals, in order.
fn read_globals(obj: &Object, o: &ObjectStep) -> Vec<Res> {
    o.observe
        .iter()
        .filter_map(|ob| match ob {
            Observe::Global(g) => Some(match obj.read_global(g) {
                Ok(value) => Res::Ret { value },
                Err(reason) => Res::NotCompiled { reason },
            }),
            Observe::RecursionMisses(_) => None,
        })
        .collect()
}

/// A failed attachment: the environment's refusal, or what the kernel lacks.
fn attach_stop(pt: &ProgType, prog: &str, e: Errno) -> Stop {
    let what = format!("attaching the {} program {prog} by its SEC", pt.name);
    if privileges::is_permission(e) {
        Stop::Refused(e, what)
    } else {
        Stop::Unsupported(format!("{what}: {}", e.name()))
    }
}

/// A program spec without instructions: what the load classification needs of a C program.
fn no_program(pt: &'static ProgType) -> ProgramSpec {
    compile::text::spec(
        pt,
        &compile::text::TextProgram {
            program: Default::default(),
            helpers: Vec::new(),
            kfuncs: Vec::new(),
        },
    )
}

/// The kernel BTF name a program's `SEC` attaches to: a function for fentry, fexit, fmod_ret
/// and lsm (`bpf_lsm_<hook>`), a `btf_trace_<tp>` typedef for tp_btf.
fn btf_target(sec: &str) -> Option<String> {
    let (kind, target) = sec.split_once('/')?;
    match kind.trim_end_matches(".s") {
        "fentry" | "fexit" | "fmod_ret" => Some(target.to_string()),
        "lsm" => Some(format!("bpf_lsm_{target}")),
        "tp_btf" => Some(format!("btf_trace_{target}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sections_name_their_btf_targets() {
        let t = super::btf_target;
        assert_eq!(
            t("fentry/bpf_local_storage_update").as_deref(),
            Some("bpf_local_storage_update")
        );
        assert_eq!(t("fexit/f").as_deref(), Some("f"));
        assert_eq!(t("lsm.s/file_open").as_deref(), Some("bpf_lsm_file_open"));
        assert_eq!(
            t("tp_btf/sys_enter").as_deref(),
            Some("btf_trace_sys_enter")
        );
        assert_eq!(t("syscall"), None);
        assert_eq!(t("raw_tp/sys_enter"), None);
    }
}
