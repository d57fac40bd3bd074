//! An instance's maps: created fresh, or taken back from the `Env` when `reuse` allows it;
//! the largest accepted value size (measured by bisection, once per shape); the result map;
//! and emptying task storage at the end of an instance.
//!
//! Owns: map creation and what a failed creation means. Must not: decide what may be kept
//! (see `reuse`), or record anything about emptying: that is cleanup, not observation.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::reuse;
use super::timing::Phase;
use super::{env_stop, key_bytes, privileges, Env, Live, Res, Stop};
use crate::bpf::{self, Errno, MapBtf, MapParams, ValueBtf};
use crate::case::value::KeyArg;
use crate::case::{MapSpec, ValueSize};

/// BPF_MAP_TYPE_ARRAY: the result map, whose value the compiled program addresses directly.
const RESULT_MAP_TYPE: u32 = 2;

impl Env {
    pub(super) fn create_map(&mut self, live: &mut Live<'_>, m: &MapSpec) -> Result<(), Stop> {
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
        // The n-th kept map of a shape in this instance takes the shape's slot n.
        let shape = reuse::keepable(m, value_size).filter(|_| live.reuse);
        let slot = live.kept.iter().filter(|k| **k == shape).count();
        let kept = shape.and_then(|s| self.kept.map(&s, slot));
        let created = match kept {
            Some(fd) => {
                self.clock.t.counts.maps_reused += 1;
                Ok(fd)
            }
            None => self.create(m, value_size).map(|fd| {
                let fd = Rc::new(fd);
                self.clock.t.counts.maps_created += 1;
                if let Some(s) = shape {
                    self.kept.keep_map(s, slot, fd.clone());
                }
                fd
            }),
        };
        match created {
            Ok(fd) => {
                live.results.push((
                    m.name.clone(),
                    Res::Created {
                        value_size: measured,
                    },
                ));
                if let Some(p) = &m.preset {
                    let key = live
                        .key(&KeyArg::SelfTask, live.maps.len())
                        .map_err(|e| env_stop(e, "opening a pidfd"))?;
                    let v = p.bytes(value_size as usize);
                    if let Err(e) = bpf::map_update(&fd, &key, &v, 0) {
                        live.results
                            .push((format!("{}.preset", m.name), Res::Err { errno: e.name() }));
                    }
                }
                live.maps.push(Some(fd));
                live.kept.push(shape);
                live.value_sizes.push(value_size);
                live.tainted.push(false);
                Ok(())
            }
            Err(_)
                if m.layout.as_ref().is_some_and(|l| l.has_type_tags())
                    && self.has_map_type(m)
                    && !bpf::btf::probe_type_tags() =>
            {
                // The value's pointer fields need BTF type tags (5.17+): a kernel without them
                // cannot load the map's BTF. (A kernel without the map type says that first.)
                unsupported_map(
                    live,
                    m,
                    "BTF type tags (pointer fields of a typed value)".into(),
                );
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
            unsupported_map(live, m, format!("map type {}", m.map_type.name));
            return Ok(());
        }
        live.results
            .push((m.name.clone(), Res::Err { errno: e.name() }));
        Err(Stop::MapFailed)
    }

    /// Whether the kernel has the map's type (probed once per type).
    fn has_map_type(&mut self, m: &MapSpec) -> bool {
        let id = m.map_type.id;
        *self
            .map_types
            .entry(id)
            .or_insert_with(|| bpf::probe_map_type(id))
            == Ok(true)
    }

    /// The largest value size the kernel accepts for this map, by bisection.
    fn max_value_size(&mut self, m: &MapSpec) -> Result<u32, Errno> {
        let key = (m.map_type.id, m.key_size, m.max_entries, m.flags, m.btf);
        if let Some(r) = self.max_value.get(&key) {
            return *r;
        }
        let r = (|| {
            create_fresh(m, 1)?;
            let (mut lo, mut hi) = (1u32, 1u32 << 24);
            if create_fresh(m, hi).is_ok() {
                return Ok(hi);
            }
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if create_fresh(m, mid).is_ok() {
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

    /// Creates an instance's map, with the BTF kept for its (key, value) sizes; a typed value,
    /// or a BTF value of another size, gets BTF of its own.
    fn create(&mut self, m: &MapSpec, value_size: u32) -> Result<OwnedFd, Errno> {
        let btf = match (m.btf, value_btf(m)) {
            (false, _) => None,
            (true, None) => Some(self.map_btf(m.key_size, value_size)?),
            (true, Some(v)) => {
                let prev = self.clock.switch(Phase::Btf);
                let b = MapBtf::build(m.key_size, v);
                self.clock.resume(prev);
                self.clock.t.counts.btf_built += 1;
                Some(Rc::new(b?))
            }
        };
        bpf::map_create(&params(m, value_size, btf.as_deref()))
    }

    /// BTF for a map's key and value: built once per sizes (unless `reuse` is off). BTF is
    /// type information only; maps created with equal BTF cannot tell whose it is.
    fn map_btf(&mut self, key_size: u32, value_size: u32) -> Result<Rc<MapBtf>, Errno> {
        if self.reuse {
            if let Some(b) = self.kept.btf(key_size, value_size) {
                self.clock.t.counts.btf_reused += 1;
                return Ok(b);
            }
        }
        let prev = self.clock.switch(Phase::Btf);
        let b = MapBtf::new(key_size, value_size);
        self.clock.resume(prev);
        let b = Rc::new(b?);
        self.clock.t.counts.btf_built += 1;
        if self.reuse {
            self.kept.keep_btf(key_size, value_size, b.clone());
        }
        Ok(b)
    }

    /// An array map with one value of `size` bytes, where programs write their results: the
    /// one kept for this size when `keep` (every run writes the whole value before it starts).
    pub(super) fn result_map(&mut self, size: u32, keep: bool) -> Result<Rc<OwnedFd>, Stop> {
        if keep {
            if let Some(fd) = self.kept.result_map(size) {
                self.clock.t.counts.result_maps_reused += 1;
                return Ok(fd);
            }
        }
        let fd = bpf::map_create(&MapParams {
            map_type: RESULT_MAP_TYPE,
            key_size: 4,
            value_size: size,
            max_entries: 1,
            flags: 0,
            btf: None,
        })
        .map_err(|e| {
            let without = self
                .privileges
                .without(self.privileges.map_needs(RESULT_MAP_TYPE));
            env_stop(e, &format!("creating a result map{without}"))
        })?;
        let fd = Rc::new(fd);
        self.clock.t.counts.result_maps_created += 1;
        if keep {
            self.kept.keep_result_map(size, fd.clone());
        }
        Ok(fd)
    }
}

/// A map this kernel cannot have: the steps that do not use it still run; those that do are
/// unavailable.
fn unsupported_map(live: &mut Live<'_>, m: &MapSpec, reason: String) {
    live.results
        .push((m.name.clone(), Res::Unsupported { reason }));
    live.maps.push(None);
    live.kept.push(None);
    live.value_sizes.push(match m.value_size {
        ValueSize::Fixed(n) => n,
        _ => 8,
    });
    live.tainted.push(false);
}

fn params<'a>(m: &MapSpec, value_size: u32, btf: Option<&'a MapBtf>) -> MapParams<'a> {
    MapParams {
        map_type: m.map_type.id,
        key_size: m.key_size,
        value_size,
        max_entries: m.max_entries,
        flags: m.flags,
        btf,
    }
}

/// What the map's BTF says the value is, when that is not `unsigned char[value_size]`.
fn value_btf(m: &MapSpec) -> Option<ValueBtf<'_>> {
    match (&m.layout, m.btf_value_size) {
        (Some(l), _) => Some(ValueBtf::Typed(l)),
        (None, Some(n)) => Some(ValueBtf::Bytes(n)),
        (None, None) => None,
    }
}

/// A map of its own BTF, for the bisection (whose sizes are not worth keeping BTF for).
fn create_fresh(m: &MapSpec, value_size: u32) -> Result<OwnedFd, Errno> {
    let btf = if m.btf {
        let v = value_btf(m).unwrap_or(ValueBtf::Bytes(value_size));
        Some(MapBtf::build(m.key_size, v)?)
    } else {
        None
    };
    bpf::map_create(&params(m, value_size, btf.as_ref()))
}

impl Live<'_> {
    /// Deletes, from user space, the task storage this instance left on the runner and its
    /// children, before the maps are closed. Freeing a map that still holds elements happens
    /// later in a kernel worker that takes the same per-CPU busy guard as the helpers (before
    /// 6.2/7.0): a later instance's bpf_task_storage_get could then return NULL depending on
    /// timing. Cleanup only; nothing is recorded.
    ///
    /// A kept map must be empty for the next instance: after the deletes, every task key the
    /// instance used must look up as ENOENT (a reaped child's key does: its task is gone). The
    /// fds of kept maps for which that does not hold are returned, to be dropped.
    pub(super) fn release_storage(&mut self) -> Vec<RawFd> {
        let mut dirty = Vec::new();
        for i in 0..self.maps.len() {
            if self.maps[i].is_none() || self.inst.maps[i].map_type.name != "task_storage" {
                continue;
            }
            let key_size = self.inst.maps[i].key_size;
            let this = self.key(&KeyArg::SelfTask, i);
            let kept = self.kept[i].is_some();
            if kept && this.is_err() {
                dirty.extend(self.maps[i].as_ref().map(|m| m.as_raw_fd()));
                continue;
            }
            let mut keys: Vec<Vec<u8>> = this.into_iter().collect();
            keys.extend(
                self.children
                    .iter()
                    .map(|c| key_bytes(c.pidfd.as_raw_fd(), key_size)),
            );
            let Some(fd) = &self.maps[i] else { continue };
            for k in &keys {
                let _ = bpf::map_delete(fd, k);
            }
            if kept {
                let mut v = vec![0u8; self.value_sizes[i] as usize];
                let empty = keys
                    .iter()
                    .all(|k| bpf::map_lookup(fd, k, &mut v) == Err(Errno(libc::ENOENT)));
                if !empty {
                    dirty.push(fd.as_raw_fd());
                }
            }
        }
        dirty
    }
}
