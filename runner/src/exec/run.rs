//! Running one `prog` step: load its program (see `load`), write its parameters, make it run
//! as its type runs (see `attach`) or leave it attached, then decode its result slots.

use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::attach::{attach, run, Events};
use super::load::Loaded;
use super::timing::Phase;
use super::{Env, Live, Res, Stop};
use crate::bpf;
use crate::case::value::ValueArg;
use crate::case::OpSpec;
use crate::compile::{self, state, Param, ProgramSpec};
use crate::tables::RunMode;

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
        how: How<'_>,
    ) -> Result<(), Stop> {
        // What a program that did not load cannot give: its operations' results, its return value.
        let unavailable = ops
            .iter()
            .map(|o| o.name())
            .chain(how.retval)
            .map(|n| (n.to_string(), Res::Unavailable));
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
            .clone()
            .ok_or_else(|| Stop::Error("no result map".into()))?;
        let result_map = &*result_map;
        let key = 0u32.to_ne_bytes();
        let mut buf = vec![0u8; live.result_size];
        write_params(live, spec, result_map, &mut buf)?;
        let mut never = Events::never();
        let events = if self.reuse {
            &mut self.events
        } else {
            &mut never
        };
        let (ran, retval) = run(
            pt,
            prog.fd(),
            attach_to,
            result_map,
            live.result_size,
            (&self.mounts, events),
        )?;
        let run_failed = matches!(ran, Res::RunFailed { .. });
        live.results.push((name.to_string(), ran));
        if let (Some(r), Some(v)) = (retval_name, retval) {
            live.results
                .push((r.to_string(), Res::Ret { value: v.into() }));
        }
        self.clock.switch(Phase::Close);
        drop(prog);
        self.clock.switch(Phase::Observe);
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
}

/// How a `prog` step runs: its attach target, whether it stays attached, and the result that
/// holds its return value (a program given as text).
#[derive(Clone, Copy)]
pub(super) struct How<'a> {
    pub(super) attach_to: Option<&'a str>,
    pub(super) stay: bool,
    pub(super) retval: Option<&'a str>,
}

/// A program that stays attached while the instance's later steps run.
pub(super) struct Attached<'i> {
    name: &'i str,
    ops: &'i [OpSpec],
    spec: ProgramSpec,
    prog: Loaded,
    link: OwnedFd,
    results: Rc<OwnedFd>,
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
