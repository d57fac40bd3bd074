//! User-space lookups: `BPF_MAP_LOOKUP_ELEM` (with its flags) and
//! `BPF_MAP_LOOKUP_AND_DELETE_ELEM`, the value recorded as bytes, or per field for a typed
//! value.

use super::{Live, Res};
use crate::bpf;
use crate::case::value::KeyArg;
use crate::compile;

impl Live<'_> {
    /// Looks `key` up in map `map` (and deletes it with `delete`); what came back.
    pub(super) fn lookup(&mut self, key: &KeyArg, map: usize, flags: u64, delete: bool) -> Res {
        let tainted = self.tainted[map];
        let layout = self.inst.maps[map].layout.as_ref();
        self.with_key(key, map, |fd, k, vs| {
            let mut v = vec![0u8; vs as usize];
            if delete {
                bpf::map_lookup_and_delete(fd, k, &mut v, flags)?;
            } else if flags == 0 {
                bpf::map_lookup(fd, k, &mut v)?;
            } else {
                bpf::map_lookup_flags(fd, k, &mut v, flags)?;
            }
            Ok(if tainted {
                Res::Uninit
            } else if let Some(l) = layout {
                Res::Fields {
                    fields: l.decode(&v),
                }
            } else {
                v.truncate(compile::MAX_PAYLOAD as usize);
                Res::Value { bytes: v }
            })
        })
    }
}
