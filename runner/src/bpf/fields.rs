//! Pointer walks through kernel structs in the kernel's BTF (`task->real_parent->group_leader`):
//! the offset of each member on this kernel, for the loads of a compiled walk.

use libbpf_sys as sys;

use super::VmlinuxBtf;

impl VmlinuxBtf {
    /// The offset of the last of `fields` after following the pointers the others hold, from
    /// `struct start`: `fields` = `["real_parent", "group_leader"]` from `task_struct` is the
    /// offset of `group_leader` in the `task_struct` that `real_parent` points to. None when a
    /// member is missing or one before the last is not a pointer to a struct.
    pub fn field_offset(&self, start: &str, fields: &[String]) -> Option<i16> {
        let mut ty = u32::try_from(self.find(start, sys::BTF_KIND_STRUCT)?).ok()?;
        let (last, walk) = fields.split_last()?;
        for f in walk {
            let (_, member) = self.member(ty, f, 0)?;
            ty = self.pointee(member)?;
        }
        let (offset, _) = self.member(ty, last, 0)?;
        i16::try_from(offset).ok()
    }

    /// The type a pointer type points to, through typedefs and modifiers.
    fn pointee(&self, type_id: u32) -> Option<u32> {
        let mut id = type_id;
        for _ in 0..16 {
            // SAFETY: valid btf object; the id comes from its own type data.
            let t = unsafe { sys::btf__type_by_id(self.0.ptr, id) };
            // SAFETY: NULL or a pointer into the btf object's type data.
            let t = unsafe { t.as_ref() }?;
            let kind = (t.info >> 24) & 0x1f;
            // SAFETY: both union members are a u32; reading either is defined.
            let next = unsafe { t.__bindgen_anon_1.type_ };
            match kind {
                sys::BTF_KIND_PTR => return Some(next),
                sys::BTF_KIND_TYPEDEF
                | sys::BTF_KIND_VOLATILE
                | sys::BTF_KIND_CONST
                | sys::BTF_KIND_RESTRICT
                | sys::BTF_KIND_TYPE_TAG => id = next,
                _ => return None,
            }
        }
        None
    }
}
