//! Map BTF: the key (`int`, or `unsigned char[key_size]`) and the value, either
//! `unsigned char[N]` or a typed value's struct, written with libbpf's BTF writer. A typed
//! value's special fields are spelled as the kernel looks for them (kernel/bpf/btf.c,
//! `btf_parse_fields`): `struct bpf_spin_lock { unsigned int val; }` by name and size, kernel
//! pointers as PTR → TYPE_TAG (`kptr`, …) → STRUCT, the struct empty and named after the
//! kernel's (which the kernel resolves by name against its own BTF), user pointers as
//! PTR → TYPE_TAG `uptr` → a struct of their own.

use std::collections::HashMap;
use std::ffi::CString;

use libbpf_sys as sys;

use super::{unit_result, Btf, Errno, MapBtf};
use crate::case::layout::{FieldKind, IntType, Layout};

/// What the map's BTF says its value is.
#[derive(Clone, Copy, Debug)]
pub enum ValueBtf<'a> {
    /// `unsigned char[N]`.
    Bytes(u32),
    /// The struct of a typed value, named `value`.
    Typed(&'a Layout),
}

/// BTF being written (not yet loaded), with the ids of its integer types by C name.
struct Writer {
    btf: Btf,
    ints: HashMap<&'static str, i32>,
}

fn id(ret: i32) -> Result<i32, Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret))
    } else {
        Ok(ret)
    }
}

fn cname(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}

impl Writer {
    fn new() -> Result<Writer, Errno> {
        // SAFETY: btf__new_empty returns an owned object or NULL with errno set.
        let ptr = unsafe { sys::btf__new_empty() };
        if ptr.is_null() {
            return Err(Errno::last());
        }
        Ok(Writer {
            btf: Btf { ptr },
            ints: HashMap::new(),
        })
    }

    fn int(&mut self, t: IntType) -> Result<i32, Errno> {
        let name = t.c_name();
        if let Some(id) = self.ints.get(name) {
            return Ok(*id);
        }
        let c = cname(name)?;
        let enc = if t.signed {
            sys::BTF_INT_SIGNED as i32
        } else {
            0
        };
        // SAFETY: valid btf object; the name is NUL-terminated and copied.
        let n = id(unsafe { sys::btf__add_int(self.btf.ptr, c.as_ptr(), t.bytes as _, enc) })?;
        self.ints.insert(name, n);
        Ok(n)
    }

    fn array(&mut self, elem: i32, len: u32) -> Result<i32, Errno> {
        let index = self.int(IntType {
            bytes: 4,
            signed: true,
        })?;
        // SAFETY: valid btf object and type ids added before.
        id(unsafe { sys::btf__add_array(self.btf.ptr, index, elem, len) })
    }

    /// A struct and its members `(name, type, byte offset)`, which libbpf wants right after it.
    fn strukt(
        &mut self,
        name: &str,
        size: u32,
        members: &[(&str, i32, u32)],
    ) -> Result<i32, Errno> {
        let c = cname(name)?;
        // SAFETY: valid btf object; the name is copied.
        let s = id(unsafe { sys::btf__add_struct(self.btf.ptr, c.as_ptr(), size) })?;
        for (m, ty, off) in members {
            let mc = cname(m)?;
            // SAFETY: valid btf object; the struct was the last type added; the name is copied.
            id(unsafe { sys::btf__add_field(self.btf.ptr, mc.as_ptr(), *ty, off * 8, 0) })?;
        }
        Ok(s)
    }

    /// PTR → TYPE_TAG `tag` → `target`.
    fn tagged_ptr(&mut self, tag: &str, target: i32) -> Result<i32, Errno> {
        let c = cname(tag)?;
        // SAFETY: valid btf object, a type id added before; the tag is copied.
        let t = id(unsafe { sys::btf__add_type_tag(self.btf.ptr, c.as_ptr(), target) })?;
        // SAFETY: as above.
        id(unsafe { sys::btf__add_ptr(self.btf.ptr, t) })
    }

    fn field_type(&mut self, name: &str, kind: &FieldKind) -> Result<i32, Errno> {
        let uchar = IntType {
            bytes: 1,
            signed: false,
        };
        match kind {
            FieldKind::Int(t) => self.int(*t),
            FieldKind::Array { elem, len } => {
                let e = self.int(*elem)?;
                self.array(e, *len)
            }
            FieldKind::SpinLock => {
                let u = self.int(IntType {
                    bytes: 4,
                    signed: false,
                })?;
                self.strukt("bpf_spin_lock", 4, &[("val", u, 0)])
            }
            FieldKind::Kptr { tag, target } => {
                let s = self.strukt(target, 0, &[])?;
                self.tagged_ptr(tag, s)
            }
            FieldKind::Uptr { size } => {
                let sname = format!("{name}_udata");
                let s = if *size == 0 {
                    self.strukt(&sname, 0, &[])?
                } else {
                    let e = self.int(uchar)?;
                    let data = self.array(e, *size)?;
                    self.strukt(&sname, *size, &[("data", data, 0)])?
                };
                self.tagged_ptr("uptr", s)
            }
        }
    }

    fn value(&mut self, v: ValueBtf<'_>) -> Result<i32, Errno> {
        let uchar = IntType {
            bytes: 1,
            signed: false,
        };
        match v {
            ValueBtf::Bytes(n) => {
                let e = self.int(uchar)?;
                self.array(e, n)
            }
            ValueBtf::Typed(l) => {
                let mut members = Vec::with_capacity(l.fields.len());
                for f in &l.fields {
                    members.push((
                        f.name.as_str(),
                        self.field_type(&f.name, &f.kind)?,
                        f.offset,
                    ));
                }
                self.strukt("value", l.size, &members)
            }
        }
    }
}

/// The map BTF for a key of `key_size` bytes and a value, not yet loaded: (BTF, key type id,
/// value type id). Types come in this order: `int`, `unsigned char`, the key array (when the
/// key is not 4 bytes), then the value's types.
pub fn map_btf(key_size: u32, value: ValueBtf<'_>) -> Result<(Btf, u32, u32), Errno> {
    let mut w = Writer::new()?;
    let int = w.int(IntType {
        bytes: 4,
        signed: true,
    })?;
    let uchar = w.int(IntType {
        bytes: 1,
        signed: false,
    })?;
    let key = if key_size == 4 {
        int
    } else {
        w.array(uchar, key_size)?
    };
    let value = w.value(value)?;
    Ok((w.btf, key as u32, value as u32))
}

/// Whether the kernel loads BTF with a type tag (BTF_KIND_TYPE_TAG, 5.17+): `int`, a tag on it
/// and a pointer to the tag.
pub fn probe_type_tags() -> bool {
    let load = || -> Result<(), Errno> {
        let mut w = Writer::new()?;
        let int = w.int(IntType {
            bytes: 4,
            signed: true,
        })?;
        w.tagged_ptr("kptr", int)?;
        // SAFETY: valid btf object; the loaded fd is owned by it and closed on drop.
        unit_result(unsafe { sys::btf__load_into_kernel(w.btf.ptr) })
    };
    load().is_ok()
}

impl Btf {
    /// The BTF as libbpf writes it for the kernel (header, types, strings).
    pub fn raw(&self) -> Vec<u8> {
        let mut n = 0u32;
        // SAFETY: valid btf object; the returned buffer is owned by it and `n` bytes long.
        let p = unsafe { sys::btf__raw_data(self.ptr, &mut n) };
        if p.is_null() {
            return Vec::new();
        }
        // SAFETY: as above; copied before the object can change.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n as usize) }.to_vec()
    }
}

impl MapBtf {
    /// Map BTF for a key of `key_size` bytes and the value `value`, loaded into the kernel.
    pub fn build(key_size: u32, value: ValueBtf<'_>) -> Result<MapBtf, Errno> {
        let (btf, key_type, value_type) = map_btf(key_size, value)?;
        // SAFETY: valid btf object; loading creates a kernel BTF fd owned by the object.
        unit_result(unsafe { sys::btf__load_into_kernel(btf.ptr) })?;
        Ok(MapBtf {
            btf,
            key_type,
            value_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::layout::{FieldKind, Layout};

    /// The types of raw BTF, decoded independently of libbpf: one line per type.
    fn decode(raw: &[u8]) -> Vec<String> {
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(&raw[0..2], &0xeb9fu16.to_le_bytes(), "BTF magic");
        let hdr = u32_at(raw, 4) as usize;
        let (type_off, type_len) = (u32_at(raw, 8) as usize, u32_at(raw, 12) as usize);
        let str_off = u32_at(raw, 16) as usize;
        let types = &raw[hdr + type_off..hdr + type_off + type_len];
        let strs = &raw[hdr + str_off..];
        let name = |off: u32| {
            let s = &strs[off as usize..];
            String::from_utf8(s[..s.iter().position(|b| *b == 0).unwrap()].to_vec()).unwrap()
        };
        let mut out = Vec::new();
        let mut o = 0;
        while o < types.len() {
            let (name_off, info, size_type) =
                (u32_at(types, o), u32_at(types, o + 4), u32_at(types, o + 8));
            let (kind, vlen) = ((info >> 24) & 0x1f, info & 0xffff);
            o += 12;
            let n = name(name_off);
            out.push(match kind {
                1 => {
                    let enc = u32_at(types, o);
                    o += 4;
                    format!(
                        "INT '{n}' size={size_type} bits={} signed={}",
                        enc & 0xff,
                        (enc >> 24) & 1
                    )
                }
                2 => format!("PTR -> {size_type}"),
                3 => {
                    let (elem, index, len) =
                        (u32_at(types, o), u32_at(types, o + 4), u32_at(types, o + 8));
                    o += 12;
                    format!("ARRAY {elem}[{len}] index {index}")
                }
                4 => {
                    let mut m = Vec::new();
                    for _ in 0..vlen {
                        m.push(format!(
                            "{}:{}@{}",
                            name(u32_at(types, o)),
                            u32_at(types, o + 4),
                            u32_at(types, o + 8) / 8
                        ));
                        o += 12;
                    }
                    format!("STRUCT '{n}' size={size_type} {{{}}}", m.join(" "))
                }
                18 => format!("TYPE_TAG '{n}' -> {size_type}"),
                k => panic!("unexpected kind {k}"),
            });
        }
        out
    }

    #[test]
    fn bytes_value_as_before() {
        let (btf, k, v) = map_btf(4, ValueBtf::Bytes(8)).unwrap();
        assert_eq!((k, v), (1, 3));
        assert_eq!(
            decode(&btf.raw()),
            [
                "INT 'int' size=4 bits=32 signed=1",
                "INT 'unsigned char' size=1 bits=8 signed=0",
                "ARRAY 2[8] index 1",
            ]
        );
        let (btf, k, v) = map_btf(8, ValueBtf::Bytes(16)).unwrap();
        assert_eq!((k, v), (3, 4));
        assert_eq!(decode(&btf.raw())[3], "ARRAY 2[16] index 1");
    }

    #[test]
    fn typed_value() {
        let fields = [
            ("lock", "bpf_spin_lock"),
            ("cnt", "u32"),
            ("buf", "u8[16]"),
            ("neg", "s64"),
            ("task", "kptr task_struct"),
            ("u", "uptr u8[8]"),
        ];
        let l = Layout::new(
            fields
                .iter()
                .map(|(n, t)| (n.to_string(), FieldKind::parse(t).unwrap()))
                .collect(),
        )
        .unwrap();
        let (btf, k, v) = map_btf(4, ValueBtf::Typed(&l)).unwrap();
        assert_eq!((k, v), (1, 14));
        assert_eq!(
            decode(&btf.raw()),
            [
                "INT 'int' size=4 bits=32 signed=1",
                "INT 'unsigned char' size=1 bits=8 signed=0",
                "INT 'unsigned int' size=4 bits=32 signed=0",
                "STRUCT 'bpf_spin_lock' size=4 {val:3@0}",
                "ARRAY 2[16] index 1",
                "INT 'long long' size=8 bits=64 signed=1",
                "STRUCT 'task_struct' size=0 {}",
                "TYPE_TAG 'kptr' -> 7",
                "PTR -> 8",
                "ARRAY 2[8] index 1",
                "STRUCT 'u_udata' size=8 {data:10@0}",
                "TYPE_TAG 'uptr' -> 11",
                "PTR -> 12",
                "STRUCT 'value' size=48 {lock:4@0 cnt:3@4 buf:5@8 neg:6@24 task:9@32 u:13@40}",
            ]
        );
        // A uptr to nothing: an empty struct, no array.
        let l = Layout::new(vec![("u".into(), FieldKind::parse("uptr u8[0]").unwrap())]).unwrap();
        let (btf, _, v) = map_btf(4, ValueBtf::Typed(&l)).unwrap();
        assert_eq!(v, 6);
        assert_eq!(
            decode(&btf.raw())[2..],
            [
                "STRUCT 'u_udata' size=0 {}",
                "TYPE_TAG 'uptr' -> 3",
                "PTR -> 4",
                "STRUCT 'value' size=8 {u:5@0}",
            ]
        );
    }
}
