//! A C program's own programs and globals: which programs load, all of them loaded at once,
//! attached by their `SEC`, and the globals of `.rodata`, `.data` and `.bss` found through the
//! object's BTF, written before load and read after a run.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libbpf_sys as sys;

use super::object::Object;
use super::{log_text, Errno, LoadError};

/// The sections whose variables a case may set and read.
const SECTIONS: [&str; 3] = [".rodata", ".data", ".bss"];

/// Where a global lives: its section's map, its offset and size there.
struct Global {
    map: *mut sys::bpf_map,
    offset: usize,
    size: usize,
}

/// An attachment made by libbpf from a program's `SEC`; dropping it detaches.
pub struct Link {
    ptr: *mut sys::bpf_link,
}

impl Drop for Link {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from bpf_program__attach and is destroyed once.
        unsafe { sys::bpf_link__destroy(self.ptr) };
    }
}

fn name_of(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libbpf's names are NUL-terminated strings owned by the object.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl Object {
    fn programs(&self) -> Vec<*mut sys::bpf_program> {
        let mut out = Vec::new();
        // SAFETY: iterating the programs of a valid object; NULL starts and ends.
        unsafe {
            let mut p = sys::bpf_object__next_program(self.raw(), std::ptr::null_mut());
            while !p.is_null() {
                out.push(p);
                p = sys::bpf_object__next_program(self.raw(), p);
            }
        }
        out
    }

    fn program(&self, name: &str) -> Option<*mut sys::bpf_program> {
        self.programs()
            .into_iter()
            // SAFETY: a program of this object.
            .find(|p| name_of(unsafe { sys::bpf_program__name(*p) }) == name)
    }

    /// The function names of the object's programs.
    pub fn program_names(&self) -> Vec<String> {
        self.programs()
            .into_iter()
            // SAFETY: a program of this object.
            .map(|p| name_of(unsafe { sys::bpf_program__name(p) }))
            .collect()
    }

    /// The `enum bpf_map_type` of each of the object's own maps (not its sections').
    pub fn map_types(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: iterating the maps of a valid object.
        unsafe {
            let mut m = sys::bpf_object__next_map(self.raw(), std::ptr::null());
            while !m.is_null() {
                if !sys::bpf_map__is_internal(m) {
                    out.push(sys::bpf_map__type(m));
                }
                m = sys::bpf_object__next_map(self.raw(), m);
            }
        }
        out
    }

    /// Loads only the programs named (before load).
    pub fn load_only(&self, names: &[String]) {
        for p in self.programs() {
            // SAFETY: a program of this object, before load.
            let name = name_of(unsafe { sys::bpf_program__name(p) });
            // SAFETY: as above.
            unsafe { sys::bpf_program__set_autoload(p, names.contains(&name)) };
        }
    }

    /// Loads the object with every program that loads; the log is the failing program's.
    pub fn load_all(&mut self, log_buf: &mut [u8], log_level: u32) -> Result<(), LoadError> {
        if let Some(b) = log_buf.first_mut() {
            *b = 0;
        }
        for p in self.programs() {
            // SAFETY: the log buffer outlives the load below; programs load one after the
            // other, so the buffer ends up holding the log of the one that failed.
            unsafe {
                sys::bpf_program__set_log_buf(p, log_buf.as_mut_ptr().cast(), log_buf.len() as _);
                sys::bpf_program__set_log_level(p, log_level);
            }
        }
        // SAFETY: a valid, not yet loaded object.
        let r = unsafe { sys::bpf_object__load(self.raw()) };
        if r < 0 {
            return Err(LoadError {
                errno: Errno(-r),
                log: log_text(log_buf),
            });
        }
        Ok(())
    }

    /// The `SEC` of a program (`fentry/bpf_local_storage_update`).
    pub fn section(&self, name: &str) -> Option<String> {
        // SAFETY: a program of this object.
        self.program(name)
            .map(|p| name_of(unsafe { sys::bpf_program__section_name(p) }))
    }

    /// The fd of a loaded program (owned by the object).
    pub fn prog_fd(&self, name: &str) -> Option<RawFd> {
        // SAFETY: a program of this object.
        let fd = unsafe { sys::bpf_program__fd(self.program(name)?) };
        (fd >= 0).then_some(fd)
    }

    /// Attaches a loaded program as its `SEC` says (libbpf's auto-attach).
    pub fn attach(&self, name: &str) -> Result<Link, Errno> {
        let p = self.program(name).ok_or(Errno(libc::ENOENT))?;
        // SAFETY: a loaded program of this object; libbpf returns NULL and sets errno on error.
        let link = unsafe { sys::bpf_program__attach(p) };
        if link.is_null() {
            let e = std::io::Error::last_os_error().raw_os_error();
            return Err(Errno(e.filter(|e| *e != 0).unwrap_or(libc::EINVAL)));
        }
        Ok(Link { ptr: link })
    }

    fn global(&self, name: &str) -> Option<Global> {
        // SAFETY: the object's BTF, owned by it, valid while it lives (NULL when it has none).
        let btf = unsafe { sys::bpf_object__btf(self.raw()) };
        if btf.is_null() {
            return None;
        }
        for sec in SECTIONS {
            let sec_name = CString::new(sec).ok()?;
            // SAFETY: a valid BTF and a NUL-terminated name.
            let id = unsafe {
                sys::btf__find_by_name_kind(btf, sec_name.as_ptr(), sys::BTF_KIND_DATASEC)
            };
            if id < 0 {
                continue;
            }
            // SAFETY: an id the BTF just gave.
            let t = unsafe { sys::btf__type_by_id(btf, id as u32) };
            if t.is_null() {
                continue;
            }
            // SAFETY: a DATASEC is followed by vlen btf_var_secinfo records (the BTF format).
            let infos = unsafe {
                let vlen = ((*t).info & 0xffff) as usize;
                std::slice::from_raw_parts(t.add(1).cast::<sys::btf_var_secinfo>(), vlen)
            };
            for si in infos {
                // SAFETY: ids from this BTF; names owned by it.
                let var = unsafe { sys::btf__type_by_id(btf, si.type_) };
                if var.is_null() {
                    continue;
                }
                // SAFETY: as above.
                let var_name = name_of(unsafe { sys::btf__name_by_offset(btf, (*var).name_off) });
                if var_name == name {
                    let map = self.section_map(sec)?;
                    return Some(Global {
                        map,
                        offset: si.offset as usize,
                        size: si.size as usize,
                    });
                }
            }
        }
        None
    }

    /// The internal map of a section (`<object>.bss`).
    fn section_map(&self, sec: &str) -> Option<*mut sys::bpf_map> {
        // SAFETY: iterating the maps of a valid object.
        unsafe {
            let mut m = sys::bpf_object__next_map(self.raw(), std::ptr::null());
            while !m.is_null() {
                if sys::bpf_map__is_internal(m) && name_of(sys::bpf_map__name(m)).ends_with(sec) {
                    return Some(m);
                }
                m = sys::bpf_object__next_map(self.raw(), m);
            }
        }
        None
    }

    /// Sets a global before load (its low bytes, little-endian, as many as it has).
    pub fn set_global(&self, name: &str, value: u64) -> Result<(), String> {
        let g = self
            .global(name)
            .ok_or_else(|| format!("no global `{name}` in .rodata, .data or .bss"))?;
        self.write_image(name, &g, value)
    }

    /// Sets a writable global (`.data`, `.bss`) of a loaded object through its memory-mapped
    /// section: no system call, as a selftest writes `skel->bss->x`.
    pub fn set_global_live(&self, name: &str, value: u64) -> Result<(), String> {
        let g = self
            .global(name)
            .ok_or_else(|| format!("no global `{name}` in .data or .bss"))?;
        // SAFETY: a map of this object; its name is owned by it.
        if name_of(unsafe { sys::bpf_map__name(g.map) }).ends_with(".rodata") {
            return Err(format!("global `{name}` is read-only after load"));
        }
        self.write_image(name, &g, value)
    }

    /// The value of a global in the section's image (before load: what the load will write).
    pub fn global_image(&self, name: &str) -> Result<u64, String> {
        let g = self
            .global(name)
            .ok_or_else(|| format!("no global `{name}` in .rodata, .data or .bss"))?;
        let mut size = 0usize;
        // SAFETY: a map of this object: libbpf returns its image and size.
        let data = unsafe { sys::bpf_map__initial_value(g.map, (&mut size as *mut usize).cast()) };
        if data.is_null() || g.offset + g.size > size || g.size > 8 {
            return Err(format!("global `{name}` cannot be read ({} bytes)", g.size));
        }
        let mut w = [0u8; 8];
        // SAFETY: in bounds of the image (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(data.cast::<u8>().add(g.offset), w.as_mut_ptr(), g.size)
        };
        Ok(u64::from_le_bytes(w))
    }

    fn write_image(&self, name: &str, g: &Global, value: u64) -> Result<(), String> {
        let mut size = 0usize;
        // SAFETY: a map of this object before load: libbpf returns its initial image and size.
        let data = unsafe { sys::bpf_map__initial_value(g.map, (&mut size as *mut usize).cast()) };
        if data.is_null() || g.offset + g.size > size || g.size > 8 {
            return Err(format!("global `{name}` cannot be set ({} bytes)", g.size));
        }
        let bytes = value.to_le_bytes();
        // SAFETY: in bounds of the image (checked above); `bytes` has 8 ≥ g.size bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>().add(g.offset), g.size)
        };
        Ok(())
    }

    /// Reads a global of a loaded object, sign-extended from its size: from its section's
    /// memory mapping (no system call, as a selftest reads `skel->bss->x`), or where the
    /// section is not mapped, from its map.
    pub fn read_global(&self, name: &str) -> Result<i64, String> {
        let g = self
            .global(name)
            .ok_or_else(|| format!("no global `{name}` in .rodata, .data or .bss"))?;
        // SAFETY: a map of this object.
        let mapped = unsafe { sys::bpf_map__map_flags(g.map) } & sys::BPF_F_MMAPABLE != 0;
        if mapped && (1..=8).contains(&g.size) {
            // Loaded with BPF_F_MMAPABLE, libbpf's image of the section is its mapping.
            let v = self.global_image(name)?;
            let shift = 64 - 8 * g.size as u32;
            return Ok(((v as i64) << shift) >> shift);
        }
        // SAFETY: a map of this loaded object.
        let (fd, vs) = unsafe { (sys::bpf_map__fd(g.map), sys::bpf_map__value_size(g.map)) };
        let mut v = vec![0u8; vs as usize];
        let key = 0u32.to_ne_bytes();
        // SAFETY: a valid map fd, a 4-byte key, a buffer of the map's value size.
        let r = unsafe { sys::bpf_map_lookup_elem(fd, key.as_ptr().cast(), v.as_mut_ptr().cast()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("reading global `{name}`: {e}"));
        }
        if g.size == 0 || g.size > 8 || g.offset + g.size > v.len() {
            return Err(format!(
                "global `{name}` is not a number ({} bytes)",
                g.size
            ));
        }
        let mut w = [0u8; 8];
        w[..g.size].copy_from_slice(&v[g.offset..g.offset + g.size]);
        let shift = 64 - 8 * g.size as u32;
        Ok((i64::from_le_bytes(w) << shift) >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> Object {
        let bytes = crate::progs::object("selftests/task_local_storage")
            .expect("clang built progs/selftests/task_local_storage.bpf.c");
        Object::open(bytes).expect("a valid object")
    }

    #[test]
    fn globals_are_set_in_their_section_before_load() {
        let obj = object();
        assert_eq!(obj.global_image("target_pid"), Ok(0));
        obj.set_global("target_pid", 4242).unwrap();
        obj.set_global("update_err", u64::MAX).unwrap();
        assert_eq!(obj.global_image("target_pid"), Ok(4242));
        assert_eq!(
            obj.global_image("update_err"),
            Ok(u64::MAX),
            "a long: 8 bytes"
        );
        // Only the variable's own bytes change: `int` target_pid keeps 4 bytes.
        obj.set_global("mismatch_cnt", 0x1_0000_0007).unwrap();
        assert_eq!(obj.global_image("mismatch_cnt"), Ok(7));
        assert_eq!(obj.global_image("enter_cnt"), Ok(0));
        assert_eq!(
            obj.set_global("nope", 1),
            Err("no global `nope` in .rodata, .data or .bss".into())
        );
    }

    #[test]
    fn programs_and_maps_of_an_object() {
        let obj = object();
        assert_eq!(obj.program_names(), ["on_enter", "on_exit", "fexit_update"]);
        assert_eq!(obj.map_types(), [sys::BPF_MAP_TYPE_TASK_STORAGE]);
        obj.load_only(&["on_exit".to_string()]);
        let autoload: Vec<bool> = obj
            .programs()
            .into_iter()
            // SAFETY: programs of this object.
            .map(|p| unsafe { sys::bpf_program__autoload(p) })
            .collect();
        assert_eq!(autoload, [false, true, false]);
    }
}
