//! What an `Env` keeps from one instance to the next because isolation does not need it fresh:
//! map BTF per (key size, value size); result maps per value size (every run rewrites the whole
//! value before the program runs); task-storage maps of the plain shape, emptied after each
//! instance and checked empty by a lookup of every task key the instance used; the runner's own
//! pidfd; and loaded programs — or the verifier's refusal — keyed by what the kernel saw: type,
//! attach, flags and the instruction bytes with map fds patched in.
//!
//! Owns: the rules for what may be reused, and releasing all of it when dropped. Must not: reuse
//! anything an observation could tell from a fresh object. Instances whose programs attach
//! (they run on kernel events, may touch other tasks, count recursion per program) and instances
//! without programs (they observe the map itself: creation parameters, user-space calls) get
//! fresh maps, result maps and programs; so do maps of any other type or shape. A program is
//! cached only when every map it refers to is one this cache holds, so that an fd number in its
//! bytes always names the same map.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::bpf::object::Object;
use crate::bpf::{Errno, MapBtf};
use crate::case::{Instance, MapSpec, StepSpec, ValueSize};

/// At most this many fds are held by cached programs (a process starts with 1024): past it,
/// the program cache starts over.
const MAX_CACHED_FDS: usize = 512;

/// A map's creation parameters: (type, key size, value size, max entries, flags, BTF).
pub(super) type Shape = (u32, u32, u32, u32, u32, bool);

/// What the kernel saw at a program load: equal keys give the same verifier answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum ProgKey {
    Compiled {
        prog_type: u32,
        expected_attach_type: Option<u32>,
        attach_btf_id: Option<u32>,
        sleepable: bool,
        /// The patched instructions: map fds, kfunc and BTF ids included.
        insns: Vec<u8>,
    },
    /// A program of a clang-built object with its `.rodata` and the maps it reuses.
    Object {
        object: String,
        config: Vec<u8>,
        maps: Vec<RawFd>,
    },
}

/// A load the cache answers.
#[derive(Clone)]
pub(super) enum CachedLoad {
    Prog(Rc<OwnedFd>),
    /// The object owns the program (fd).
    Object(Rc<Object>, RawFd),
    /// The verifier's refusal: its errno and log, interpreted again as a fresh refusal is.
    Rejected {
        errno: Errno,
        log: String,
    },
}

struct Cached {
    /// The map fds the program refers to: dropping one of those maps drops the entry.
    deps: Vec<RawFd>,
    fds: usize,
    load: CachedLoad,
}

#[derive(Default)]
pub(super) struct Reuse {
    btf: HashMap<(u32, u32), Rc<MapBtf>>,
    /// Kept maps by shape; an instance's n-th map of a shape takes slot n, so that the same
    /// instance gets the same fds every time (and its programs the same bytes).
    maps: BTreeMap<Shape, Vec<Option<Rc<OwnedFd>>>>,
    results: BTreeMap<u32, Rc<OwnedFd>>,
    progs: HashMap<ProgKey, Cached>,
    /// Fds held by `progs`.
    prog_fds: usize,
    pub(super) self_pidfd: Option<Rc<OwnedFd>>,
}

/// Whether an instance may run on kept objects: it has programs, none of them attaches, and it
/// runs on the process's main thread (so that `current` in a program is the task `self` names,
/// and every task it can give storage to is the runner or one of its children).
pub(super) fn instance_may_reuse(inst: &Instance) -> bool {
    programs_allow_reuse(inst) && main_thread()
}

/// It has programs, and none of them attaches or stays attached.
fn programs_allow_reuse(inst: &Instance) -> bool {
    let mut progs = inst.steps.iter().filter_map(|s| match s {
        StepSpec::Prog {
            prog_type,
            attach_to,
            stay,
            ..
        } => Some(!*stay && attach_to.is_none() && !prog_type.attached()),
        _ => None,
    });
    let first = progs.next();
    first == Some(true) && progs.all(|ok| ok)
}

fn main_thread() -> bool {
    nix::unistd::gettid().as_raw() as u32 == std::process::id()
}

/// The shape of a map that can be kept and emptied: task storage as the kernel documents it
/// (key 4 bytes, max_entries 0, exactly BPF_F_NO_PREALLOC, with BTF) of a fixed value size.
/// Anything else is created fresh: its creation may be what the case observes.
pub(super) fn keepable(m: &MapSpec, value_size: u32) -> Option<Shape> {
    let plain = m.map_type.name == "task_storage"
        && m.key_size == 4
        && m.max_entries == 0
        && m.flags == libbpf_sys::BPF_F_NO_PREALLOC
        && m.btf
        && m.layout.is_none()
        && m.btf_value_size.is_none()
        && matches!(m.value_size, ValueSize::Fixed(_));
    plain.then_some((
        m.map_type.id,
        m.key_size,
        value_size,
        m.max_entries,
        m.flags,
        m.btf,
    ))
}

impl Reuse {
    pub(super) fn btf(&self, key_size: u32, value_size: u32) -> Option<Rc<MapBtf>> {
        self.btf.get(&(key_size, value_size)).cloned()
    }

    pub(super) fn keep_btf(&mut self, key_size: u32, value_size: u32, btf: Rc<MapBtf>) {
        self.btf.insert((key_size, value_size), btf);
    }

    pub(super) fn map(&self, shape: &Shape, slot: usize) -> Option<Rc<OwnedFd>> {
        self.maps.get(shape)?.get(slot)?.clone()
    }

    pub(super) fn keep_map(&mut self, shape: Shape, slot: usize, fd: Rc<OwnedFd>) {
        let v = self.maps.entry(shape).or_default();
        if v.len() <= slot {
            v.resize(slot + 1, None);
        }
        v[slot] = Some(fd);
    }

    /// Stops keeping a map (it may hold storage), and every program that refers to it.
    pub(super) fn drop_map(&mut self, fd: RawFd) {
        for slots in self.maps.values_mut() {
            for s in slots.iter_mut() {
                if s.as_ref().is_some_and(|m| m.as_raw_fd() == fd) {
                    *s = None;
                }
            }
        }
        let gone: Vec<ProgKey> = self
            .progs
            .iter()
            .filter(|(_, c)| c.deps.contains(&fd))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(c) = self.progs.remove(&k) {
                self.prog_fds -= c.fds;
            }
        }
    }

    pub(super) fn result_map(&self, size: u32) -> Option<Rc<OwnedFd>> {
        self.results.get(&size).cloned()
    }

    pub(super) fn keep_result_map(&mut self, size: u32, fd: Rc<OwnedFd>) {
        self.results.insert(size, fd);
    }

    /// Whether `fd` is a map this cache keeps (so that it names the same map while kept).
    pub(super) fn owns(&self, fd: RawFd) -> bool {
        self.results.values().any(|m| m.as_raw_fd() == fd)
            || self
                .maps
                .values()
                .flatten()
                .flatten()
                .any(|m| m.as_raw_fd() == fd)
    }

    pub(super) fn prog(&self, key: &ProgKey) -> Option<CachedLoad> {
        self.progs.get(key).map(|c| c.load.clone())
    }

    /// Keeps a load whose maps (`deps`) are all kept; `fds` is what it holds open.
    pub(super) fn keep_prog(
        &mut self,
        key: ProgKey,
        deps: Vec<RawFd>,
        fds: usize,
        load: CachedLoad,
    ) {
        if !deps.iter().all(|fd| self.owns(*fd)) {
            return;
        }
        if self.prog_fds + fds > MAX_CACHED_FDS {
            self.progs.clear();
            self.prog_fds = 0;
        }
        self.prog_fds += fds;
        if let Some(old) = self.progs.insert(key, Cached { deps, fds, load }) {
            self.prog_fds -= old.fds;
        }
    }

    #[cfg(test)]
    fn cached_progs(&self) -> usize {
        self.progs.len()
    }
}

/// Whether a refused load may be answered from the cache next time: the verifier's verdicts
/// (EACCES, EINVAL) are functions of the program and the kernel; anything else (no memory, a
/// signal, a refusal for want of privileges) is asked again.
pub(super) fn verdict(errno: Errno) -> bool {
    errno.0 == libc::EACCES || errno.0 == libc::EINVAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables;

    fn spec(flags: u32, value_size: ValueSize) -> MapSpec {
        MapSpec {
            name: "st".into(),
            map_type: tables::map_type("task_storage").unwrap(),
            key_size: 4,
            value_size,
            max_entries: 0,
            flags,
            btf: true,
            preset: None,
            layout: None,
            btf_value_size: None,
        }
    }

    #[test]
    fn only_plain_task_storage_is_kept() {
        let plain = spec(1, ValueSize::Fixed(8));
        assert_eq!(keepable(&plain, 8), Some((29, 4, 8, 0, 1, true)));
        assert_eq!(keepable(&spec(0, ValueSize::Fixed(8)), 8), None);
        assert_eq!(keepable(&spec(1 | 1 << 7, ValueSize::Fixed(8)), 8), None);
        assert_eq!(keepable(&spec(1, ValueSize::Max), 4000), None);
        let mut m = spec(1, ValueSize::Fixed(8));
        m.btf = false;
        assert_eq!(keepable(&m, 8), None);
        m = spec(1, ValueSize::Fixed(8));
        m.max_entries = 1;
        assert_eq!(keepable(&m, 8), None);
        m = spec(1, ValueSize::Fixed(8));
        m.key_size = 8;
        assert_eq!(keepable(&m, 8), None);
        m = spec(1, ValueSize::Fixed(8));
        m.map_type = tables::map_type("hash").unwrap();
        assert_eq!(keepable(&m, 8), None);
    }

    fn instances(steps: &str) -> Vec<Instance> {
        let text = format!(
            r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value_size": 8 }} }},
                 "matrix": {{ "prog": ["syscall", "tracepoint"] }}, "program": {{ "type": "$prog" }},
                 "steps": [ {steps} ] }}"#
        );
        crate::case::parse(std::path::Path::new("t.json"), &text)
            .unwrap()
            .instances
    }

    #[test]
    fn only_instances_of_test_run_programs_reuse() {
        let get = r#"{ "prog": [ { "get": { "map": "st", "task": "current", "flags": 1 } } ] }"#;
        let lookup = r#"{ "lookup": { "map": "st", "task": "self" } }"#;
        let v = instances(&format!("{get}, {lookup}"));
        assert!(programs_allow_reuse(&v[0]), "syscall: test run");
        assert!(!programs_allow_reuse(&v[1]), "tracepoint: attached");
        let v = instances(lookup);
        assert!(
            !programs_allow_reuse(&v[0]),
            "no program: the map is the subject"
        );
        let stay = r#"{ "prog": { "type": "tracepoint", "stay": true, "ops": [
            { "get": { "map": "st", "task": "current", "flags": 1 } } ] } }"#;
        let v = instances(&format!("{get}, {stay}"));
        assert!(!programs_allow_reuse(&v[0]), "a program stays attached");
    }

    fn memfd() -> Rc<OwnedFd> {
        Rc::new(std::fs::File::open("/dev/null").unwrap().into())
    }

    #[test]
    fn programs_are_kept_only_on_kept_maps_and_go_with_them() {
        let mut r = Reuse::default();
        let (st, res, other) = (memfd(), memfd(), memfd());
        let shape = (29, 4, 8, 0, 1, true);
        r.keep_map(shape, 0, st.clone());
        r.keep_result_map(48, res.clone());
        assert!(r.owns(st.as_raw_fd()) && r.owns(res.as_raw_fd()));
        assert!(!r.owns(other.as_raw_fd()));
        let key = |b: u8| ProgKey::Compiled {
            prog_type: 28,
            expected_attach_type: None,
            attach_btf_id: None,
            sleepable: true,
            insns: vec![b; 8],
        };
        let rejected = CachedLoad::Rejected {
            errno: Errno(libc::EACCES),
            log: "R2 type=scalar expected=ptr_".into(),
        };
        r.keep_prog(
            key(1),
            vec![st.as_raw_fd(), res.as_raw_fd()],
            0,
            rejected.clone(),
        );
        r.keep_prog(key(2), vec![other.as_raw_fd()], 0, rejected.clone());
        r.keep_prog(key(3), vec![res.as_raw_fd()], 0, rejected);
        assert!(r.prog(&key(1)).is_some());
        assert!(
            r.prog(&key(2)).is_none(),
            "refers to a map the cache does not hold"
        );
        assert_eq!(r.cached_progs(), 2);
        r.drop_map(st.as_raw_fd());
        assert!(r.map(&shape, 0).is_none());
        assert!(r.prog(&key(1)).is_none(), "its map was dropped");
        assert!(r.prog(&key(3)).is_some());
    }

    #[test]
    fn the_program_cache_holds_a_bounded_number_of_fds() {
        let mut r = Reuse::default();
        let res = memfd();
        r.keep_result_map(16, res.clone());
        for i in 0..(MAX_CACHED_FDS / 4 + 10) {
            let key = ProgKey::Object {
                object: "o".into(),
                config: (i as u32).to_le_bytes().to_vec(),
                maps: vec![res.as_raw_fd()],
            };
            r.keep_prog(
                key,
                vec![res.as_raw_fd()],
                4,
                CachedLoad::Rejected {
                    errno: Errno(libc::EINVAL),
                    log: String::new(),
                },
            );
            assert!(r.prog_fds <= MAX_CACHED_FDS);
        }
        assert!(r.cached_progs() < MAX_CACHED_FDS / 4);
    }

    #[test]
    fn only_verifier_verdicts_are_kept() {
        assert!(verdict(Errno(libc::EACCES)));
        assert!(verdict(Errno(libc::EINVAL)));
        assert!(!verdict(Errno(libc::ENOMEM)));
        assert!(!verdict(Errno(libc::EPERM)));
        assert!(!verdict(Errno(libc::EINTR)));
    }
}
