//! Loading a program: the compiler's (relocations patched from the kernel's BTF and the
//! instance's maps) or a clang-compiled object's, and what a refused load means: the
//! environment's refusal, a missing prerequisite, or the verifier's answer.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::reuse::{self, CachedLoad, ProgKey};
use super::{privileges, Env, Live, Res, Stop, EPERM};
use crate::bpf::{self, Errno, LoadParams, VmlinuxBtf};
use crate::case::OpSpec;
use crate::compile::asm::{walk_text, Reloc, Resolver, Unresolved};
use crate::compile::{self, ProgramSpec};
use crate::tables::ProgType;

/// How much of a rejected program's verifier log an observation keeps.
const REJECTED_LOG_LINES: usize = 40;

impl Env {
    /// Loads the compiler's program. `Ok(Err(res))`: the verifier's refusal, to record. A
    /// load the kernel already answered for the same bytes and maps is answered from the cache.
    pub(super) fn load_compiled(
        &mut self,
        live: &Live<'_>,
        name: &str,
        spec: &ProgramSpec,
        attach_to: Option<&str>,
        results: Option<&OwnedFd>,
    ) -> Result<Result<Loaded, Res>, Stop> {
        let pt = spec.prog_type;
        let Linked {
            insns,
            attach_btf_id,
            deps,
        } = self.link(live, pt, spec, attach_to, results)?;
        let key = self.cacheable(live, &deps).then(|| ProgKey::Compiled {
            prog_type: pt.id,
            expected_attach_type: pt.expected_attach_type,
            attach_btf_id,
            sleepable: pt.sleepable,
            insns: insns.iter().flat_map(|i| i.to_bytes()).collect(),
        });
        if let Some(hit) = key.as_ref().and_then(|k| self.kept.prog(k)) {
            return self.cached(name, pt, spec, hit);
        }
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
        self.clock.t.counts.progs_loaded += 1;
        self.keep_log(name, &loaded.as_ref().map(|_| ()));
        match loaded {
            Ok(fd) => {
                let fd = Rc::new(fd);
                if let Some(k) = key {
                    self.kept
                        .keep_prog(k, deps, 1, CachedLoad::Prog(fd.clone()));
                }
                Ok(Ok(Loaded::Own(fd)))
            }
            Err(e) => {
                self.keep_refusal(key, deps, &e);
                self.rejection(name, pt, spec, e)
            }
        }
    }

    /// Whether a load of this instance may come from (and go into) the cache: the instance
    /// may reuse, no log is wanted, and every map the program refers to is a kept one.
    fn cacheable(&self, live: &Live<'_>, deps: &[RawFd]) -> bool {
        live.reuse && !self.keep_logs && deps.iter().all(|fd| self.kept.owns(*fd))
    }

    /// A load answered from the cache, as the kernel answered it the first time.
    fn cached(
        &mut self,
        name: &str,
        pt: &ProgType,
        spec: &ProgramSpec,
        hit: CachedLoad,
    ) -> Result<Result<Loaded, Res>, Stop> {
        self.clock.t.counts.progs_reused += 1;
        match hit {
            CachedLoad::Prog(fd) => Ok(Ok(Loaded::Own(fd))),
            CachedLoad::Object(object, fd) => Ok(Ok(Loaded::Object {
                _object: object,
                fd,
            })),
            CachedLoad::Rejected { errno, log } => {
                self.rejection(name, pt, spec, bpf::LoadError { errno, log })
            }
        }
    }

    /// Loads the C program named by the case instead (see `cprog`).
    pub(super) fn load_object(
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
        let st = match map {
            Some(m) => Some(
                live.maps[m]
                    .as_ref()
                    .ok_or_else(|| Stop::Error("the map of a C program step is missing".into()))?,
            ),
            None => None,
        };
        let results = live
            .result_map
            .as_ref()
            .ok_or_else(|| Stop::Error("no result map".into()))?;
        let deps: Vec<RawFd> = st.iter().chain([&results]).map(|m| m.as_raw_fd()).collect();
        let key = self.cacheable(live, &deps).then(|| ProgKey::Object {
            object: object.to_string(),
            config: config.clone(),
            maps: deps.clone(),
        });
        if let Some(hit) = key.as_ref().and_then(|k| self.kept.prog(k)) {
            return self.cached(name, pt, spec, hit);
        }
        let mut obj = bpf::object::Object::open(bytes).map_err(setup)?;
        if let Some(fd) = st {
            obj.reuse_map("st", fd).map_err(setup)?;
        }
        obj.reuse_map("results", results).map_err(setup)?;
        obj.set_rodata(&config).map_err(setup)?;
        let level = self.log_level();
        let loaded = obj.load(super::cprog::PROGRAM, &mut self.log, level);
        self.clock.t.counts.progs_loaded += 1;
        self.keep_log(name, &loaded.as_ref().map(|_| ()));
        match loaded {
            Ok(fd) => {
                let obj = Rc::new(obj);
                // Writable globals would carry one run's state into the next.
                if let Some(k) = key.filter(|_| !obj.writable_globals()) {
                    let load = CachedLoad::Object(obj.clone(), fd);
                    self.kept.keep_prog(k, deps, obj.fd_count(), load);
                }
                Ok(Ok(Loaded::Object { _object: obj, fd }))
            }
            Err(e) => {
                self.keep_refusal(key, deps, &e);
                self.rejection(name, pt, spec, e)
            }
        }
    }

    pub(super) fn log_level(&self) -> u32 {
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

    /// Keeps the verifier's refusal of a cacheable program, when it is one that the same bytes
    /// always get.
    fn keep_refusal(&mut self, key: Option<ProgKey>, deps: Vec<RawFd>, e: &bpf::LoadError) {
        if let Some(k) = key.filter(|_| reuse::verdict(e.errno)) {
            let load = CachedLoad::Rejected {
                errno: e.errno,
                log: e.log.clone(),
            };
            self.kept.keep_prog(k, deps, 0, load);
        }
    }

    /// A failed load as a result; a verifier rejection keeps the end of its log for reports.
    pub(super) fn rejection(
        &mut self,
        name: &str,
        pt: &ProgType,
        spec: &ProgramSpec,
        e: bpf::LoadError,
    ) -> Result<Result<Loaded, Res>, Stop> {
        let log = super::verifier::tail(&e.log, REJECTED_LOG_LINES);
        let res = self.refusal(pt, spec, e)?;
        if matches!(res, Res::Rejected { .. }) && !log.is_empty() {
            self.rejected_logs.push((name.to_string(), log));
        }
        Ok(Err(res))
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
    /// target's BTF id. Also returns the map fds the program refers to.
    fn link(
        &mut self,
        live: &Live<'_>,
        pt: &ProgType,
        spec: &ProgramSpec,
        attach_to: Option<&str>,
        results: Option<&OwnedFd>,
    ) -> Result<Linked, Stop> {
        let mut links = Links {
            maps: &live.maps,
            result_fd: results
                .or(live.result_map.as_deref())
                .map_or(-1, |f| f.as_raw_fd()),
            kfuncs: HashMap::new(),
            percpu: HashMap::new(),
            fields: HashMap::new(),
        };
        let walks: Vec<(&String, &Vec<String>)> = spec
            .program
            .relocs
            .iter()
            .filter_map(|r| match r {
                Reloc::Field { start, fields, .. } => Some((start, fields)),
                _ => None,
            })
            .collect();
        let mut attach_btf_id = None;
        let target = attach_to.or(pt.attach_btf);
        if !spec.kfuncs.is_empty()
            || !spec.percpu.is_empty()
            || !walks.is_empty()
            || target.is_some()
        {
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
            for (start, fields) in walks {
                if let Some(off) = btf.field_offset(start, fields) {
                    links.fields.insert(walk_text(start, fields), off);
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
                Unresolved::Field(w) => format!("BTF field {w}"),
            })
        })?;
        let deps = spec
            .program
            .relocs
            .iter()
            .filter_map(|r| match r {
                Reloc::MapFd { map, .. } | Reloc::MapValue { map, .. } => Some(links.map_fd(*map)),
                _ => None,
            })
            .collect();
        Ok(Linked {
            insns,
            attach_btf_id,
            deps,
        })
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
        if !spec.percpu.is_empty() && log.contains("failed to find the address for kernel symbol") {
            // The variable is in the BTF, but kallsyms has no address for it (a kernel built
            // without CONFIG_KALLSYMS_ALL lists no data symbols).
            let names: Vec<&str> = spec.percpu.iter().map(|v| v.name).collect();
            return Err(Stop::Unsupported(format!(
                "kallsyms has no address for per-CPU {} (CONFIG_KALLSYMS_ALL?): an attached program cannot tell the runner's task context from interrupts",
                names.join(", ")
            )));
        }
        // The verifier wrote a log: it knew the program type. Only a load refused before
        // verification asks the probe (whose answer for tracing types also depends on
        // whether fentry programs may load here).
        if log.trim().is_empty() {
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

/// A program ready to load: its patched instructions, the BTF id of its attach target, and the
/// map fds it refers to.
struct Linked {
    insns: Vec<compile::asm::Insn>,
    attach_btf_id: Option<u32>,
    deps: Vec<RawFd>,
}

/// The loader's answers to a program's relocations.
struct Links<'a> {
    maps: &'a [Option<Rc<OwnedFd>>],
    /// The result map, which map relocations index after the instance's maps.
    result_fd: RawFd,
    kfuncs: HashMap<String, i32>,
    percpu: HashMap<String, (i32, i16)>,
    /// `start->a->b` → the offset of `b`.
    fields: HashMap<String, i16>,
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
    fn field_offset(&self, start: &str, fields: &[String]) -> Option<i16> {
        self.fields.get(&walk_text(start, fields)).copied()
    }
}

/// A loaded program: the runner's own, or one inside a libbpf object (closed with it); either
/// may also be held by the program cache.
pub(super) enum Loaded {
    Own(Rc<OwnedFd>),
    /// The object owns the program fd; dropping its last holder closes the program.
    Object {
        _object: Rc<bpf::object::Object>,
        fd: RawFd,
    },
}

impl Loaded {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Loaded::Own(fd) => fd.as_fd(),
            // SAFETY: the object owns this fd and lives as long as the borrow.
            Loaded::Object { fd, .. } => unsafe { BorrowedFd::borrow_raw(*fd) },
        }
    }
}
