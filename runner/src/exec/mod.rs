//! Exec layer: runs one instance on the live kernel — create maps → set pre-state from user
//! space → compile and load each program → BPF_PROG_TEST_RUN → read result slots → user-space
//! calls → close everything — and returns an `Observation`.
//!
//! Owns: the order of kernel calls and the classification of failures (rejected, unsupported,
//! refused). Must not: panic on any kernel answer; every errno is data. Programs run on the
//! calling thread, so "current" is that thread: run instances from the process's main thread
//! for `self` (a pidfd of the process) and `current` (the running task) to be the same task.

mod attach;
mod child;
mod cprog;
pub mod fs;
mod load;
pub mod observation;
mod privileges;
mod run;
pub mod verifier;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::bpf::privileges::Privileges;
use crate::bpf::{self, Errno, MapBtf, MapParams, VmlinuxBtf};
use crate::case::value::KeyArg;
use crate::case::{Instance, MapSpec, StepSpec, ValueSize};
use crate::compile::{self, ProgramSpec};
use child::Child;
pub use observation::{Observation, Outcome, Res};
pub use privileges::{
    check_privileges, host_unavailable, MissingPrivileges, EXIT_MISSING_PRIVILEGES,
};

const EPERM: i32 = libc::EPERM;
const LOG_SIZE: usize = 1 << 20;
/// BPF_MAP_TYPE_ARRAY: the result map, whose value the compiled program addresses directly.
const RESULT_MAP_TYPE: u32 = 2;

/// State kept across instances: probe answers, the kernel's BTF, a log buffer. Nothing that a
/// case can observe is kept: maps, programs, pidfds and children live for one instance only.
pub struct Env {
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
    /// The instance's maps, in order; None for a map whose type this kernel lacks.
    maps: Vec<Option<OwnedFd>>,
    value_sizes: Vec<u32>,
    /// Maps that may hold bytes from an uninitialised buffer.
    tainted: Vec<bool>,
    result_map: Option<OwnedFd>,
    /// Value size of the result map: room for the largest program's slots.
    result_size: usize,
    children: Vec<Child>,
    /// Programs that stay attached until the instance ends.
    attached: Vec<run::Attached<'i>>,
    self_pidfd: Option<OwnedFd>,
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
        }
    }

    /// Runs one instance. Everything it created is released before it returns.
    pub fn run(&mut self, inst: &Instance) -> Observation {
        let mut live = Live {
            inst,
            maps: Vec::new(),
            value_sizes: Vec::new(),
            tainted: Vec::new(),
            result_map: None,
            result_size: 0,
            children: Vec::new(),
            attached: Vec::new(),
            self_pidfd: None,
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
        live.attached.clear();
        live.release_storage();
        drop(live);
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
            .max();
        if let Some(size) = size {
            live.result_map = Some(result_map(size)?);
            live.result_size = size as usize;
        }
        for (step, spec) in live.inst.steps.iter().zip(&compiled) {
            match (step, spec) {
                (
                    StepSpec::Prog {
                        name,
                        ops,
                        attach_to,
                        stay,
                        ..
                    },
                    Some(spec),
                ) => self.prog(live, name, ops, spec, attach_to.as_deref(), *stay)?,
                _ => self.step(live, step)?,
            }
        }
        self.collect_attached(live)
    }

    fn create_map(&mut self, live: &mut Live<'_>, m: &MapSpec) -> Result<(), Stop> {
        let measured = match m.value_size {
            ValueSize::Fixed(_) => None,
            ValueSize::Max | ValueSize::MaxPlusOne => {
                let max = match self.max_value_size(m) {
                    Ok(n) => n,
                    Err(e) => return self.map_failed(live, m, e),
                };
                Some(if m.value_size == ValueSize::Max {
                    max
                } else {
                    max + 1
                })
            }
        };
        let value_size = match (m.value_size, measured) {
            (ValueSize::Fixed(n), _) => n,
            (_, Some(n)) => n,
            _ => unreachable!("measured is Some for Max and MaxPlusOne"),
        };
        match create(m, value_size) {
            Ok(fd) => {
                live.results.push((
                    m.name.clone(),
                    Res::Created {
                        value_size: measured,
                    },
                ));
                if let Some(p) = &m.preset {
                    let key = live
                        .key(&KeyArg::SelfTask, m.key_size)
                        .map_err(|e| env_stop(e, "opening a pidfd"))?;
                    if let Err(e) = bpf::map_update(&fd, &key, &p.bytes(value_size as usize), 0) {
                        live.results
                            .push((format!("{}.preset", m.name), Res::Err { errno: e.name() }));
                    }
                }
                live.maps.push(Some(fd));
                live.value_sizes.push(value_size);
                live.tainted.push(false);
                Ok(())
            }
            Err(e) => {
                if measured.is_some() {
                    live.results
                        .push((m.name.clone(), Res::Err { errno: e.name() }));
                    live.results.push((
                        format!("{}.value_size", m.name),
                        Res::Ret {
                            value: value_size as i64,
                        },
                    ));
                    return Err(Stop::MapFailed);
                }
                self.map_failed(live, m, e)
            }
        }
    }

    /// A map that could not be created: refused (see `privileges::map_type_known`), unsupported
    /// (the probe says the kernel lacks the map type), or the creation errno as its result.
    fn map_failed(&mut self, live: &mut Live<'_>, m: &MapSpec, e: Errno) -> Result<(), Stop> {
        let id = m.map_type.id;
        let map_types = &mut self.map_types;
        let probe = || {
            *map_types
                .entry(id)
                .or_insert_with(|| bpf::probe_map_type(id))
        };
        let known = privileges::map_type_known(&self.privileges, m, e, probe)?;
        if !known {
            // The steps that do not use this map still run; those that do are unavailable.
            let reason = format!("map type {}", m.map_type.name);
            live.results
                .push((m.name.clone(), Res::Unsupported { reason }));
            live.maps.push(None);
            live.value_sizes.push(match m.value_size {
                ValueSize::Fixed(n) => n,
                _ => 8,
            });
            live.tainted.push(false);
            return Ok(());
        }
        live.results
            .push((m.name.clone(), Res::Err { errno: e.name() }));
        Err(Stop::MapFailed)
    }

    /// The largest value size the kernel accepts for this map, by bisection.
    fn max_value_size(&mut self, m: &MapSpec) -> Result<u32, Errno> {
        let key = (m.map_type.id, m.key_size, m.max_entries, m.flags, m.btf);
        if let Some(r) = self.max_value.get(&key) {
            return *r;
        }
        let r = (|| {
            create(m, 1)?;
            let (mut lo, mut hi) = (1u32, 1u32 << 24);
            if create(m, hi).is_ok() {
                return Ok(hi);
            }
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if create(m, mid).is_ok() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            Ok(lo)
        })();
        self.max_value.insert(key, r);
        r
    }

    fn step(&mut self, live: &mut Live<'_>, step: &StepSpec) -> Result<(), Stop> {
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
            StepSpec::Lookup { name, map, key } => {
                let tainted = live.tainted[*map];
                let res = live.with_key(key, *map, |fd, k, vs| {
                    let mut v = vec![0u8; vs as usize];
                    bpf::map_lookup(fd, k, &mut v).map(|()| {
                        v.truncate(compile::MAX_PAYLOAD as usize);
                        if tainted {
                            Res::Uninit
                        } else {
                            Res::Value { bytes: v }
                        }
                    })
                });
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

fn create(m: &MapSpec, value_size: u32) -> Result<OwnedFd, Errno> {
    let btf = if m.btf {
        Some(MapBtf::new(m.key_size, value_size)?)
    } else {
        None
    };
    bpf::map_create(&MapParams {
        map_type: m.map_type.id,
        key_size: m.key_size,
        value_size,
        max_entries: m.max_entries,
        flags: m.flags,
        btf: btf.as_ref(),
    })
}

/// An array map with one value of `size` bytes: where programs write their results.
fn result_map(size: u32) -> Result<OwnedFd, Stop> {
    bpf::map_create(&MapParams {
        map_type: RESULT_MAP_TYPE,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        flags: 0,
        btf: None,
    })
    .map_err(|e| env_stop(e, "creating a result map"))
}

fn env_stop(e: Errno, what: &str) -> Stop {
    if privileges::is_permission(e) {
        Stop::Refused(e, what.to_string())
    } else {
        Stop::Error(format!("{what}: {}", e.name()))
    }
}

impl Live<'_> {
    /// The key bytes for a user-space call: the fd number in the first 4 bytes.
    fn key(&mut self, k: &KeyArg, key_size: u32) -> Result<Vec<u8>, Errno> {
        let fd = match k {
            KeyArg::SelfTask => {
                if self.self_pidfd.is_none() {
                    self.self_pidfd = Some(bpf::pidfd_open(std::process::id() as i32)?);
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
                    self.not_pidfd =
                        Some(std::fs::File::open("/dev/null").map_err(io_errno)?.into());
                }
                self.not_pidfd.as_ref().map_or(-1, |f| f.as_raw_fd())
            }
            KeyArg::ClosedFd => {
                // A number that was an fd a moment ago and is closed now.
                let f = std::fs::File::open("/dev/null").map_err(io_errno)?;
                f.as_raw_fd()
            }
        };
        Ok(key_bytes(fd, key_size))
    }

    /// Deletes, from user space, the task storage this instance left on the runner and its
    /// children, before the maps are closed. Freeing a map that still holds elements happens
    /// later in a kernel worker that takes the same per-CPU busy guard as the helpers (before
    /// 6.2/7.0): a later instance's bpf_task_storage_get could then return NULL depending on
    /// timing. Cleanup only; nothing is recorded.
    fn release_storage(&mut self) {
        for i in 0..self.maps.len() {
            if self.maps[i].is_none() || self.inst.maps[i].map_type.name != "task_storage" {
                continue;
            }
            let key_size = self.inst.maps[i].key_size;
            let mut keys: Vec<Vec<u8>> =
                self.key(&KeyArg::SelfTask, key_size).into_iter().collect();
            keys.extend(
                self.children
                    .iter()
                    .map(|c| key_bytes(c.pidfd.as_raw_fd(), key_size)),
            );
            if let Some(fd) = &self.maps[i] {
                for k in &keys {
                    let _ = bpf::map_delete(fd, k);
                }
            }
        }
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
        let key = match self.key(k, self.inst.maps[map].key_size) {
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

fn io_errno(e: std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}
