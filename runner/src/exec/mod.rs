//! Exec layer: runs one instance on the live kernel — create maps → set pre-state from user
//! space → compile and load each program → BPF_PROG_TEST_RUN → read result slots → user-space
//! calls → close everything — and returns an `Observation`.
//!
//! Owns: the order of kernel calls and the classification of failures (rejected, unsupported,
//! refused). Must not: panic on any kernel answer; every errno is data. Programs run on the
//! calling thread, so "current" is that thread: run instances from the process's main thread
//! for `self` (a pidfd of the process) and `current` (the running task) to be the same task.

mod anchor;
mod attach;
mod child;
mod cprog;
mod decode;
pub mod fs;
mod load;
mod maps;
pub mod observation;
mod owners;
mod privileges;
mod reuse;
mod run;
pub mod timing;
mod trigger;
mod user;
pub mod verifier;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use crate::bpf::privileges::Privileges;
use crate::bpf::{self, Errno, VmlinuxBtf};
use crate::case::value::KeyArg;
use crate::case::{Instance, StepSpec};
use crate::compile::{self, ProgramSpec};
use crate::tables;
pub use anchor::Anchoring;
use child::Child;
pub use observation::{Observation, Outcome, Res};
pub use privileges::{
    check_privileges, host_unavailable, MissingPrivileges, EXIT_MISSING_PRIVILEGES,
};
pub use timing::Timings;
use timing::{Clock, Phase};

const EPERM: i32 = libc::EPERM;
const LOG_SIZE: usize = 1 << 20;

/// State kept across instances: probe answers, the kernel's BTF, a log buffer, and (with
/// `reuse`) the kernel objects isolation does not need fresh (see `reuse`). Nothing a case can
/// observe is kept: what an instance changes is undone or its object is not kept; children
/// live for one instance only. Dropping the Env closes everything it kept.
pub struct Env {
    /// Keep map BTF, result maps, plain task-storage maps (emptied after each instance) and
    /// loaded programs for later instances that need the same (on by default). Off, every
    /// instance creates and closes all of its objects.
    pub reuse: bool,
    /// With `reuse`: whether to keep a do-nothing program attached to each trampoline target
    /// instances attach to, so that their attachments do not register and unregister the
    /// trampoline each time (see `anchor`): where measured to pay (the default), never, or
    /// always (`BPFCASE_ANCHORS=0|1`; in a guest, `bpfcase.anchors=0|1` on the kernel command
    /// line).
    pub anchors: Anchoring,
    /// Load every program with the verifier log on and keep the logs (for `show`).
    pub keep_logs: bool,
    /// (program name, verifier log), when `keep_logs` is set.
    pub logs: Vec<(String, String)>,
    /// (program name, the end of its verifier log) for each program of the current instance
    /// that the verifier rejected: they go into its observation.
    rejected_logs: Vec<(String, String)>,
    log: Vec<u8>,
    vmlinux: Option<Result<VmlinuxBtf, Errno>>,
    /// What this process may do, read once: a refusal for want of a capability is recorded as
    /// such, never as a kernel fact.
    privileges: Privileges,
    prog_types: HashMap<u32, Result<bool, Errno>>,
    map_types: HashMap<u32, Result<bool, Errno>>,
    max_value: HashMap<MapShape, Result<u32, Errno>>,
    /// The kernel filesystems that could not be made available.
    mounts: fs::Mounts,
    kept: reuse::Reuse,
    /// Perf events kept open for attaching through links (with `reuse`).
    events: attach::Events,
    /// Programs kept on trampolines (with `reuse` and `anchors`).
    anchored: anchor::Anchors,
    /// Where the owners of cases are made (cgroup2, a tmpfs: made ready the first time one is
    /// needed).
    places: Rc<owners::Places>,
    clock: Clock,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// What the largest accepted value size depends on: (map type, key size, max entries, flags,
/// BTF).
type MapShape = (u32, u32, u32, u32, bool);

/// Why an instance stopped early.
enum Stop {
    Unsupported(String),
    Refused(Errno, String),
    Error(String),
    /// A map could not be created: the creation errno is the observation.
    MapFailed,
}

struct Live<'i> {
    inst: &'i Instance,
    /// Whether this instance may use kept objects (see `reuse::instance_may_reuse`).
    reuse: bool,
    /// The instance's maps, in order; None for a map whose type this kernel lacks.
    maps: Vec<Option<Rc<OwnedFd>>>,
    /// For each map, its shape when it is a kept one (emptied and checked at the end).
    kept: Vec<Option<reuse::Shape>>,
    value_sizes: Vec<u32>,
    /// Maps that may hold bytes from an uninitialised buffer.
    tainted: Vec<bool>,
    result_map: Option<Rc<OwnedFd>>,
    /// Value size of the result map: room for the largest program's slots.
    result_size: usize,
    children: Vec<Child>,
    /// Owners the instance created; after `children`, so that children are gone (reaped) when
    /// their cgroups are removed.
    owners: Vec<owners::Owner>,
    places: Rc<owners::Places>,
    /// The runner's own cgroup, opened for a key.
    own_cgroup: Option<OwnedFd>,
    /// Programs that stay attached until the instance ends.
    attached: Vec<run::Attached<'i>>,
    self_pidfd: Option<Rc<OwnedFd>>,
    not_pidfd: Option<OwnedFd>,
    results: Vec<(String, Res)>,
}

impl Env {
    /// An executor for the calling thread: kernel filesystems that are not mounted are mounted in
    /// a private mount namespace of this thread (see `fs`). Run instances on this thread.
    pub fn new() -> Env {
        bpf::raise_memlock();
        let mounts = fs::ensure();
        bpf::log::route_libbpf();
        Env {
            keep_logs: false,
            logs: Vec::new(),
            rejected_logs: Vec::new(),
            log: vec![0; LOG_SIZE],
            vmlinux: None,
            privileges: Privileges::current(),
            prog_types: HashMap::new(),
            map_types: HashMap::new(),
            max_value: HashMap::new(),
            mounts,
            reuse: true,
            anchors: std::env::var("BPFCASE_ANCHORS")
                .ok()
                .and_then(|v| Anchoring::from_word(v.trim()))
                .unwrap_or_default(),
            kept: reuse::Reuse::default(),
            events: attach::Events::default(),
            anchored: anchor::Anchors::default(),
            places: Rc::default(),
            clock: Clock::new(),
        }
    }

    /// Time per phase and object counts of the instances run since the last reset.
    pub fn timings(&self) -> &Timings {
        &self.clock.t
    }

    pub fn reset_timings(&mut self) {
        self.clock.t = Timings::default();
    }

    /// Runs one instance. Everything it created is released before it returns.
    pub fn run(&mut self, inst: &Instance) -> Observation {
        self.clock.switch(Phase::Maps);
        let reuse = self.reuse && reuse::instance_may_reuse(inst);
        let mut live = Live {
            inst,
            reuse,
            maps: Vec::new(),
            kept: Vec::new(),
            value_sizes: Vec::new(),
            tainted: Vec::new(),
            result_map: None,
            result_size: 0,
            children: Vec::new(),
            owners: Vec::new(),
            places: self.places.clone(),
            own_cgroup: None,
            attached: Vec::new(),
            self_pidfd: if reuse {
                self.kept.self_pidfd.clone()
            } else {
                None
            },
            not_pidfd: None,
            results: Vec::new(),
        };
        let outcome = match self.run_live(&mut live) {
            Ok(()) | Err(Stop::MapFailed) => Outcome::Ran,
            Err(Stop::Unsupported(reason)) => Outcome::Unsupported { reason },
            Err(Stop::Refused(e, what)) => Outcome::Refused {
                errno: e.name(),
                what,
            },
            Err(Stop::Error(message)) => Outcome::Error { message },
        };
        let results = std::mem::take(&mut live.results);
        self.clock.switch(Phase::Close);
        live.attached.clear();
        for fd in live.release_storage() {
            self.kept.drop_map(fd);
            self.clock.t.counts.maps_dropped += 1;
        }
        if reuse && self.kept.self_pidfd.is_none() {
            self.kept.self_pidfd = live.self_pidfd.clone();
        }
        drop(live);
        self.clock.stop();
        self.clock.t.counts.instances += 1;
        Observation {
            id: inst.id.clone(),
            outcome,
            results,
            logs: std::mem::take(&mut self.rejected_logs),
        }
    }

    fn run_live(&mut self, live: &mut Live<'_>) -> Result<(), Stop> {
        for m in &live.inst.maps {
            self.create_map(live, m)?;
        }
        // Every program is compiled once, up front: the result map is sized for the largest
        // (programs that stay attached get one of their own).
        self.clock.switch(Phase::Compile);
        let compiled: Vec<Option<Result<ProgramSpec, compile::CompileError>>> = live
            .inst
            .steps
            .iter()
            .map(|s| compile::compile_step(s, &live.value_sizes))
            .collect();
        let size = compiled
            .iter()
            .flatten()
            .filter_map(|c| c.as_ref().ok())
            .map(|s| s.result_size)
            .max()
            // A C program's triggers may wait on one (made before its programs attach).
            .or_else(|| {
                let objects = live.inst.steps.iter().any(|s| {
                    matches!(
                        s,
                        StepSpec::Prog {
                            object: Some(_),
                            ..
                        }
                    )
                });
                objects.then_some(8)
            });
        if let Some(size) = size {
            self.clock.switch(Phase::Maps);
            live.result_map = Some(self.result_map(size, live.reuse)?);
            live.result_size = size as usize;
        }
        for (step, spec) in live.inst.steps.iter().zip(&compiled) {
            match (step, spec) {
                (
                    StepSpec::Prog {
                        name,
                        prog_type,
                        object: Some(o),
                        ..
                    },
                    _,
                ) => self.object_step(live, name, prog_type, o)?,
                (
                    StepSpec::Prog {
                        name,
                        ops,
                        attach_to,
                        stay,
                        run,
                        asm,
                        ..
                    },
                    Some(spec),
                ) => {
                    let how = run::How {
                        attach_to: attach_to.as_deref(),
                        stay: *stay,
                        retval: asm.as_ref().map(|a| a.retval.as_str()),
                        run,
                    };
                    self.prog(live, name, ops, spec, how)?
                }
                _ => self.step(live, step)?,
            }
        }
        self.collect_attached(live)
    }

    fn step(&mut self, live: &mut Live<'_>, step: &StepSpec) -> Result<(), Stop> {
        self.clock.switch(Phase::Observe);
        match step {
            StepSpec::Prog { .. } => Err(Stop::Error(
                "a program step without its compiled program".into(),
            )),
            StepSpec::Update {
                name,
                map,
                key,
                value,
                flags,
            } => {
                let res = live.with_key(key, *map, |fd, k, vs| {
                    bpf::map_update(fd, k, &value.bytes(vs as usize), *flags).map(|()| Res::Ok)
                });
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Lookup {
                name,
                map,
                key,
                flags,
            } => {
                let res = live.lookup(key, *map, *flags, false);
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::LookupAndDelete {
                name,
                map,
                key,
                flags,
            } => {
                let res = live.lookup(key, *map, *flags, true);
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Delete { name, map, key } => {
                let res = live.with_key(key, *map, |fd, k, _| {
                    bpf::map_delete(fd, k).map(|()| Res::Ok)
                });
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::NextKey { name, map, key } => {
                let ks = live.inst.maps[*map].key_size as usize;
                let res = match key {
                    Some(k) => live.with_key(k, *map, |fd, k, _| {
                        let mut next = vec![0u8; ks];
                        bpf::map_next_key(fd, Some(k), &mut next).map(|()| Res::Ok)
                    }),
                    None => {
                        let mut next = vec![0u8; ks];
                        match &live.maps[*map] {
                            None => Res::Unavailable,
                            Some(fd) => match bpf::map_next_key(fd, None, &mut next) {
                                Ok(()) => Res::Ok,
                                Err(e) => Res::Err { errno: e.name() },
                            },
                        }
                    }
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Spawn { name, child } => {
                let res = match Child::spawn(child) {
                    Ok(c) => {
                        live.children.push(c);
                        Res::Ok
                    }
                    Err(e) => {
                        return Err(Stop::Error(format!(
                            "spawning child `{child}`: {}",
                            e.name()
                        )))
                    }
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::New { name, owner, kind } => {
                live.places.prepare(kind).map_err(|e| place_stop(kind, e))?;
                let res = match live.places.make(kind, owner) {
                    Ok(o) => {
                        live.owners.push(o);
                        Res::Ok
                    }
                    Err(e) => Res::Err { errno: e.name() },
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Free { name, owner } => {
                let res = match live.owners.iter_mut().find(|o| &o.name == owner) {
                    Some(o) => match o.free() {
                        Ok(()) => Res::Ok,
                        Err(e) => Res::Err { errno: e.name() },
                    },
                    // Its `new` failed (that step's result says why).
                    None => Res::Unavailable,
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Enter {
                name,
                child,
                cgroup,
            } => {
                let pid = live
                    .children
                    .iter()
                    .find(|c| &c.name == child)
                    .map(|c| c.pid)
                    .ok_or_else(|| Stop::Error(format!("child `{child}` was not spawned")))?;
                let res = match live.owners.iter().find(|o| &o.name == cgroup) {
                    Some(o) => match o.enter(pid) {
                        Ok(()) => Res::Ok,
                        Err(e) => Res::Err { errno: e.name() },
                    },
                    None => Res::Unavailable,
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
            StepSpec::Exit { name, child } | StepSpec::Reap { name, child } => {
                let c = live
                    .children
                    .iter_mut()
                    .find(|c| &c.name == child)
                    .ok_or_else(|| Stop::Error(format!("child `{child}` was not spawned")))?;
                let r = if matches!(step, StepSpec::Exit { .. }) {
                    c.exit()
                } else {
                    c.reap()
                };
                let res = match r {
                    Ok(()) => Res::Ok,
                    Err(e) => Res::Err { errno: e.name() },
                };
                live.results.push((name.clone(), res));
                Ok(())
            }
        }
    }
}

/// Why no owner of `kind` can be made: the environment's refusal, or a kernel without what
/// its place needs (cgroup2, tmpfs).
fn place_stop(kind: &tables::OwnerKind, e: Errno) -> Stop {
    let place = match kind.made {
        tables::Made::Cgroup => "the cgroup2 hierarchy",
        _ => "a tmpfs for files",
    };
    if privileges::is_permission(e) {
        Stop::Refused(e, format!("making {}s in {place}", kind.name))
    } else {
        Stop::Unsupported(format!("{place}: {}", e.name()))
    }
}

fn env_stop(e: Errno, what: &str) -> Stop {
    if privileges::is_permission(e) {
        Stop::Refused(e, what.to_string())
    } else {
        Stop::Error(format!("{what}: {}", e.name()))
    }
}

impl Live<'_> {
    /// The key bytes for a user-space call on map `map`: the fd number in the first 4 bytes.
    fn key(&mut self, k: &KeyArg, map: usize) -> Result<Vec<u8>, Errno> {
        let spec = &self.inst.maps[map];
        let key_size = spec.key_size;
        let owner = tables::owner_of_map(spec.map_type.name);
        let fd = match k {
            // The runner's own cgroup, for a cgroup storage map.
            KeyArg::SelfTask if owner == Some(&tables::CGROUP_OWNER) => {
                if self.own_cgroup.is_none() {
                    self.own_cgroup = Some(self.places.root()?.own_fd()?);
                }
                self.own_cgroup.as_ref().map_or(-1, |f| f.as_raw_fd())
            }
            KeyArg::Owner(name) => self
                .owners
                .iter()
                .find(|o| &o.name == name)
                .map_or(-1, owners::Owner::raw_fd),
            KeyArg::SelfTask => {
                if self.self_pidfd.is_none() {
                    self.self_pidfd = Some(Rc::new(bpf::pidfd_open(std::process::id() as i32)?));
                }
                self.self_pidfd.as_ref().map_or(-1, |f| f.as_raw_fd())
            }
            KeyArg::Child(name) => self
                .children
                .iter()
                .find(|c| &c.name == name)
                .map_or(-1, |c| c.pidfd.as_raw_fd()),
            KeyArg::NotPidfd => {
                if self.not_pidfd.is_none() {
                    self.not_pidfd = Some(
                        std::fs::File::open("/dev/null")
                            .map_err(Errno::from)?
                            .into(),
                    );
                }
                self.not_pidfd.as_ref().map_or(-1, |f| f.as_raw_fd())
            }
            KeyArg::ClosedFd => {
                // A number that was an fd a moment ago and is closed now.
                let f = std::fs::File::open("/dev/null").map_err(Errno::from)?;
                f.as_raw_fd()
            }
        };
        Ok(key_bytes(fd, key_size))
    }

    fn with_key(
        &mut self,
        k: &KeyArg,
        map: usize,
        f: impl FnOnce(&OwnedFd, &[u8], u32) -> Result<Res, Errno>,
    ) -> Res {
        if self.maps[map].is_none() {
            return Res::Unavailable;
        }
        let key = match self.key(k, map) {
            Ok(k) => k,
            Err(e) => return Res::Err { errno: e.name() },
        };
        let Some(fd) = &self.maps[map] else {
            return Res::Unavailable;
        };
        match f(fd, &key, self.value_sizes[map]) {
            Ok(r) => r,
            Err(e) => Res::Err { errno: e.name() },
        }
    }
}

/// A map key holding an fd number in its first 4 bytes, the rest zero.
fn key_bytes(fd: i32, key_size: u32) -> Vec<u8> {
    let mut key = vec![0u8; key_size as usize];
    let b = fd.to_ne_bytes();
    let n = key.len().min(4);
    key[..n].copy_from_slice(&b[..n]);
    key
}
