//! Running one `prog` step: load its program (see `load`), write its parameters, make it run
//! as its type runs (see `attach`) or leave it attached, then decode its result slots.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::attach::{attach, run as run_once, Events};
use super::child::Child;
use super::decode::{counted, decode, fills_uninit, value_map};
use super::load::Loaded;
use super::timing::Phase;
use super::trigger::{runner_process, runner_thread, threads, Doer};
use super::{Env, Live, Res, Stop};
use crate::bpf;
use crate::case::trigger::{Bound, ProgRun, TriggerSpec};
use crate::case::OpSpec;
use crate::compile::{self, Param, ProgramSpec};
use crate::tables::RunMode;

impl Env {
    /// Loads and runs one `prog` step. A missing prerequisite (kfunc, helper, program type,
    /// attach point) is that step's result, `unsupported(reason)`, and so is the
    /// environment's refusal, `refused(errno: what)`; the later steps still run.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prog<'i>(
        &mut self,
        live: &mut Live<'i>,
        name: &'i str,
        ops: &'i [OpSpec],
        spec: &Result<ProgramSpec, compile::CompileError>,
        how: How<'_>,
    ) -> Result<(), Stop> {
        // What a program that did not load cannot give: its operations' results, its return
        // value, its recursion misses.
        let misses = how
            .run
            .recursion_misses
            .then(|| format!("{name}.recursion_misses"));
        let retval = how.run.retval.then(|| format!("{name}.retval"));
        let unavailable = ops
            .iter()
            .map(|o| o.name().to_string())
            .chain(how.retval.map(str::to_string))
            .chain(misses)
            .chain(retval)
            .map(|n| (n, Res::Unavailable));
        match self.prog_step(live, name, ops, spec, how) {
            Err(Stop::Unsupported(reason)) => {
                live.results
                    .push((name.to_string(), Res::Unsupported { reason }));
                live.results.extend(unavailable);
                Ok(())
            }
            Err(Stop::Refused(e, what)) => {
                let errno = e.name();
                live.results
                    .push((name.to_string(), Res::Refused { errno, what }));
                live.results.extend(unavailable);
                Ok(())
            }
            other => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prog_step<'i>(
        &mut self,
        live: &mut Live<'i>,
        name: &'i str,
        ops: &'i [OpSpec],
        spec: &Result<ProgramSpec, compile::CompileError>,
        how: How<'_>,
    ) -> Result<(), Stop> {
        let How {
            attach_to,
            stay,
            retval: retval_name,
            run,
        } = how;
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
        for map in ops.iter().flat_map(OpSpec::maps) {
            if live.maps[map].is_none() {
                let m = &live.inst.maps[map];
                return Err(Stop::Unsupported(format!("map type {}", m.map_type.name)));
            }
        }
        let pt = spec.prog_type;
        // A program that stays attached writes a result map of its own.
        let own_results = if stay {
            self.clock.switch(Phase::Maps);
            Some(self.result_map(spec.result_size, false)?)
        } else {
            None
        };
        self.clock.switch(Phase::Load);
        let loaded = match &live.inst.object {
            Some(object) if retval_name.is_none() => {
                self.load_object(live, name, object, ops, spec)?
            }
            _ => self.load_compiled(live, name, spec, attach_to, own_results.as_deref())?,
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
        self.clock.switch(Phase::Run);
        // The task that triggers the program: the filter the program checks follows it.
        let fresh = match &run.trigger {
            Some(TriggerSpec::Runner(t)) if t.by_fresh_child() => Some(
                Child::spawn("trigger")
                    .map_err(|e| Stop::Error(format!("forking a child: {}", e.name())))?,
            ),
            _ => None,
        };
        let named = match &run.trigger {
            Some(TriggerSpec::Child { child, .. }) => Some(
                live.children
                    .iter()
                    .position(|c| &c.name == child)
                    .ok_or_else(|| Stop::Error(format!("no child `{child}`")))?,
            ),
            _ => None,
        };
        let owned = match &run.trigger {
            Some(TriggerSpec::Owner { owner, .. }) => Some(
                live.owners
                    .iter()
                    .position(|o| &o.name == owner)
                    .ok_or_else(|| Stop::Error(format!("no owner `{owner}`")))?,
            ),
            _ => None,
        };
        let actor = match (&fresh, named) {
            (Some(c), _) => c.pid_tgid(),
            (None, Some(i)) => live.children[i].pid_tgid(),
            (None, None) => runner_thread(),
        };
        let mode = match (&run.trigger, pt.run) {
            (Some(t), RunMode::AttachTestRun(a) | RunMode::AttachTrigger(a, _)) => {
                RunMode::AttachTrigger(a, t.action())
            }
            (_, m) => m,
        };
        if let Some(results) = own_results {
            let mut buf = vec![0u8; spec.result_size as usize];
            write_params(live, spec, &results, &mut buf, actor)?;
            let attach_mode = match pt.run {
                RunMode::AttachTestRun(a) | RunMode::AttachTrigger(a, _) => a,
                _ => {
                    return Err(Stop::Error(format!(
                        "{} programs cannot stay attached",
                        pt.name
                    )))
                }
            };
            self.anchor(pt, attach_to, false);
            let mut never = Events::never();
            let events = if self.reuse {
                &mut self.events
            } else {
                &mut never
            };
            let link = attach(
                pt,
                attach_mode,
                prog.fd(),
                attach_to,
                (&self.mounts, events),
            )?;
            match (&run.threads, mode) {
                (Some(t), _) => threads(t)?,
                (None, RunMode::AttachTrigger(_, t)) if run.trigger.is_some() => {
                    let mut doer = doer(fresh, named, owned, live);
                    doer.fire(t)
                        .map_err(|e| Stop::Error(format!("trigger {t}: {}", e.name())))?;
                }
                _ => {}
            }
            if let Some(f) = run.for_arg {
                wait_first_run(&results, spec.result_size as usize, f.wait_ms);
            }
            live.attached.push(Attached {
                name,
                ops,
                spec: spec.clone(),
                prog,
                link,
                results,
                timed: run
                    .threads
                    .as_ref()
                    .is_some_and(|t| matches!(t.bound, Bound::Millis(_))),
            });
            return Ok(());
        }
        let result_map = live
            .result_map
            .clone()
            .ok_or_else(|| Stop::Error("no result map".into()))?;
        let result_map = &*result_map;
        let key = 0u32.to_ne_bytes();
        let mut buf = vec![0u8; live.result_size];
        write_params(live, spec, result_map, &mut buf, actor)?;
        let trial = matches!(mode, RunMode::AttachTestRun(_) | RunMode::AttachTrigger(..))
            .then(|| self.anchor(pt, attach_to, true))
            .flatten();
        let mut cycle = std::time::Duration::ZERO;
        let mut never = Events::never();
        let events = if self.reuse {
            &mut self.events
        } else {
            &mut never
        };
        let (ran, retval) = {
            let size = live.result_size;
            let mut doer = doer(fresh, named, owned, live);
            run_once(
                pt,
                mode,
                prog.fd(),
                attach_to,
                spec.writes_results().then_some((result_map, size)),
                (&self.mounts, events),
                &mut |t| doer.fire(t),
                &mut cycle,
            )?
        };
        if let Some(t) = trial {
            self.anchored.measured(t, cycle);
        }
        if let (Some(f), false) = (run.for_arg, matches!(ran, Res::RunFailed { .. })) {
            wait_first_run(result_map, live.result_size, f.wait_ms);
        }
        let run_failed = matches!(ran, Res::RunFailed { .. });
        live.results.push((name.to_string(), ran));
        // A program given as text reports its own return value: not an attached type's, whose
        // test run calls a kernel function.
        let direct = matches!(mode, RunMode::TestRun | RunMode::TestRunPacket);
        if let (Some(r), Some(v), true) = (retval_name, retval, direct) {
            live.results
                .push((r.to_string(), Res::Ret { value: v.into() }));
        }
        let mut misses: Vec<(String, Res)> = Vec::new();
        if run.recursion_misses {
            let r = match bpf::recursion_misses(prog.fd()) {
                Ok(n) => Res::Ret { value: n as i64 },
                Err(e) => Res::Err { errno: e.name() },
            };
            misses.push((format!("{name}.recursion_misses"), r));
        }
        if let (true, Some(v)) = (run.retval, retval) {
            misses.push((format!("{name}.retval"), Res::Ret { value: v.into() }));
        }
        self.clock.switch(Phase::Close);
        drop(prog);
        self.clock.switch(Phase::Observe);
        if run_failed {
            // The program did not run: its slots say nothing.
            live.results.extend(misses);
            return Ok(());
        }
        bpf::map_lookup(result_map, &key, &mut buf)
            .map_err(|e| Stop::Error(format!("reading the result map: {}", e.name())))?;
        for (i, (op, slot)) in ops.iter().zip(&spec.slots).enumerate() {
            let mut res = decode(op, slot, &buf, &live.value_sizes);
            // Storage created from an uninitialised buffer holds stack garbage: never record
            // it (it may be a kernel address, and it differs between runs).
            if let Some(m) = fills_uninit(op, &res) {
                live.tainted[m] = true;
            }
            if value_map(ops, i).is_some_and(|m| live.tainted[m]) {
                res = match res {
                    Res::Ptr { total, .. } => Res::PtrUninit { total },
                    Res::Value { .. } => Res::Uninit,
                    other => other,
                };
            }
            live.results.push((op.name().to_string(), res));
        }
        live.results.extend(misses);
        Ok(())
    }
}

/// Waits up to `ms` for a program's first run: the first word of its result map (the finished
/// flag of a program that runs once, the run count of one that stays) becomes nonzero. For hooks
/// that run after the trigger returns (an RCU callback's `exit_creds`).
fn wait_first_run(map: &OwnedFd, size: usize, ms: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut buf = vec![0u8; size];
    loop {
        let ran = bpf::map_lookup(map, &0u32.to_ne_bytes(), &mut buf).is_ok()
            && buf.get(..8).is_some_and(|w| w.iter().any(|b| *b != 0));
        if ran || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Who does a trigger's action: a fresh child, the spawned child at `named`, the runner on the
/// owner at `owned`, or the runner.
fn doer<'a>(
    fresh: Option<Child>,
    named: Option<usize>,
    owned: Option<usize>,
    live: &'a mut Live<'_>,
) -> Doer<'a> {
    match (fresh, named, owned) {
        (Some(c), _, _) => Doer::Fresh(c),
        (None, Some(i), _) => Doer::Named(&mut live.children[i]),
        (None, None, Some(i)) => Doer::Owner(&mut live.owners[i]),
        (None, None, None) => Doer::Runner,
    }
}

/// How a `prog` step runs: its attach target, whether it stays attached, the result that holds
/// its return value (a program given as text), and its trigger, threads and extra observations.
#[derive(Clone, Copy)]
pub(super) struct How<'a> {
    pub(super) attach_to: Option<&'a str>,
    pub(super) stay: bool,
    pub(super) retval: Option<&'a str>,
    pub(super) run: &'a ProgRun,
}

/// A program that stays attached while the instance's later steps run.
pub(super) struct Attached<'i> {
    name: &'i str,
    ops: &'i [OpSpec],
    spec: ProgramSpec,
    prog: Loaded,
    link: OwnedFd,
    results: Rc<OwnedFd>,
    /// Threads triggered it for a time: its counts say only whether they are 0.
    timed: bool,
}

impl Env {
    /// Detaches the programs that stayed attached and records what they counted.
    pub(super) fn collect_attached(&mut self, live: &mut Live<'_>) -> Result<(), Stop> {
        self.clock.switch(Phase::Observe);
        for a in std::mem::take(&mut live.attached) {
            drop(a.link);
            let recursion_misses = bpf::recursion_misses(a.prog.fd()).unwrap_or(0);
            let mut buf = vec![0u8; a.spec.result_size as usize];
            bpf::map_lookup(&a.results, &0u32.to_ne_bytes(), &mut buf)
                .map_err(|e| Stop::Error(format!("reading a result map: {}", e.name())))?;
            let word = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
            live.results.push((
                a.name.to_string(),
                if a.timed {
                    Res::AttachedFor { runs: word(0) > 0 }
                } else {
                    Res::Attached {
                        runs: word(0),
                        recursion_misses,
                    }
                },
            ));
            for (op, slot) in a.ops.iter().zip(&a.spec.slots) {
                let at = slot.offset as usize;
                let failure = counted(op);
                let (calls, failures) = (word(at), word(at + 8));
                let failures = if failure == "skipped" { 0 } else { failures };
                let res = if a.timed {
                    Res::CountFor { calls: calls > 0 }
                } else {
                    Res::Count {
                        calls,
                        failures,
                        failure: failure.into(),
                    }
                };
                live.results.push((op.name().to_string(), res));
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
    actor: u64,
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
            Param::OwnerId(o) => match &o.who {
                crate::case::OwnerRef::Named(n) => live
                    .owners
                    .iter()
                    .find(|x| &x.name == n)
                    .map_or(0, |x| x.id()),
                crate::case::OwnerRef::Runner => {
                    live.places.root().and_then(|r| r.own_id()).unwrap_or(0)
                }
            },
            Param::RunnerThread => actor,
            Param::RunnerProcess => u64::from(runner_process()),
        };
        let at = spec.params_offset as usize + i * 8;
        buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    bpf::map_update(map, &0u32.to_ne_bytes(), buf, 0)
        .map_err(|e| Stop::Error(format!("writing a result map: {}", e.name())))
}
