//! Per-CPU kernel variables in the kernel's BTF: which variable holds a value on this kernel,
//! and where inside it (a member of an anonymous union or struct counts too).

use std::ffi::{CStr, CString};

use libbpf_sys as sys;

use super::VmlinuxBtf;
use crate::tables::PerCpuValue;

/// `struct btf_member`: name offset, type id, offset (bits; with kflag, bitfield size in the
/// top 8 bits).
#[repr(C)]
struct BtfMember {
    name_off: u32,
    type_id: u32,
    offset: u32,
}

impl VmlinuxBtf {
    /// The BTF id of the variable that holds `v` on this kernel and the byte offset of `v` in
    /// it, from the first of `v.places` the BTF has.
    pub fn percpu(&self, v: &PerCpuValue) -> Option<(i32, i16)> {
        v.places.iter().find_map(|(var, member)| {
            let id = self.find(var, sys::BTF_KIND_VAR)?;
            let offset = match member {
                None => 0,
                Some(m) => {
                    // SAFETY: valid btf object; `id` is a VAR of it.
                    let t = unsafe { sys::btf__type_by_id(self.0.ptr, id as u32) };
                    // SAFETY: non-NULL pointer into the btf object's type data.
                    let var_type = unsafe { t.as_ref() }?.type_id();
                    self.member_offset(var_type, m, 0)?
                }
            };
            Some((id, i16::try_from(offset).ok()?))
        })
    }

    /// Byte offset of member `name` in struct or union `type_id`, looking into anonymous
    /// members; `depth` bounds the search.
    fn member_offset(&self, type_id: u32, name: &str, depth: u32) -> Option<u32> {
        self.member(type_id, name, depth).map(|(offset, _)| offset)
    }

    /// Byte offset and type id of member `name` in struct or union `type_id`, looking into
    /// anonymous members; `depth` bounds the search.
    pub(super) fn member(&self, type_id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        // SAFETY: valid btf object; resolve_type returns a type id of it or a negative error.
        let id = unsafe { sys::btf__resolve_type(self.0.ptr, type_id) };
        let id = u32::try_from(id).ok()?;
        // SAFETY: `id` is a type of this btf object (checked by resolve_type).
        let t = unsafe { sys::btf__type_by_id(self.0.ptr, id) };
        if t.is_null() {
            return None;
        }
        // SAFETY: non-NULL pointer into the btf object's type data.
        let info = unsafe { (*t).info };
        let kind = (info >> 24) & 0x1f;
        if kind != sys::BTF_KIND_STRUCT && kind != sys::BTF_KIND_UNION {
            return None;
        }
        let vlen = (info & 0xffff) as usize;
        let kflag = info >> 31 == 1;
        // SAFETY: a struct's or union's `vlen` members follow its 12-byte btf_type in the
        // btf object's type data (the BTF format), suitably aligned (4 bytes).
        let members = unsafe { std::slice::from_raw_parts(t.add(1).cast::<BtfMember>(), vlen) };
        let target = CString::new(name).ok()?;
        members.iter().find_map(|m| {
            let bits = if kflag {
                m.offset & 0x00ff_ffff
            } else {
                m.offset
            };
            // SAFETY: valid btf object; the name offset comes from its own member data.
            let n = unsafe { sys::btf__name_by_offset(self.0.ptr, m.name_off) };
            // SAFETY: libbpf returns NULL or a NUL-terminated string inside the btf object.
            let n = (!n.is_null()).then(|| unsafe { CStr::from_ptr(n) });
            match n {
                Some(n) if n == target.as_c_str() => Some((bits / 8, m.type_id)),
                Some(n) if !n.is_empty() => None,
                _ => self
                    .member(m.type_id, name, depth + 1)
                    .map(|(o, t)| (o + bits / 8, t)),
            }
        })
    }
}

trait TypeId {
    fn type_id(&self) -> u32;
}

impl TypeId for sys::btf_type {
    /// The `type` of a VAR (the union's other reading, `size`, is for structs).
    fn type_id(&self) -> u32 {
        // SAFETY: both union members are a u32; reading either is defined.
        unsafe { self.__bindgen_anon_1.type_ }
    }
}
