//! A clang-compiled BPF object (from `progs/`), opened from memory with libbpf's `bpf_object`
//! API, its maps replaced by the runner's own, loaded, and closed on drop.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libbpf_sys as sys;

use super::{log_text, Errno, LoadError};

pub struct Object {
    ptr: *mut sys::bpf_object,
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from bpf_object__open_mem and is closed once; this closes the
        // object's program fds and its own copies of reused map fds.
        unsafe { sys::bpf_object__close(self.ptr) }
    }
}

fn c(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}

impl Object {
    /// Opens an ELF object; `bytes` must outlive it (libbpf keeps a pointer), hence `'static`.
    pub fn open(bytes: &'static [u8]) -> Result<Object, Errno> {
        // libbpf prints load failures to stderr by default; the runner records them instead.
        super::log::route_libbpf();
        // SAFETY: a valid buffer and its size; NULL opts.
        let ptr = unsafe {
            sys::bpf_object__open_mem(bytes.as_ptr().cast(), bytes.len() as _, std::ptr::null())
        };
        if ptr.is_null() {
            return Err(Errno(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL),
            ));
        }
        Ok(Object { ptr })
    }

    pub(super) fn raw(&self) -> *mut sys::bpf_object {
        self.ptr
    }

    fn map(&self, name: &str) -> Result<*mut sys::bpf_map, Errno> {
        let n = c(name)?;
        // SAFETY: a valid object and a NUL-terminated name.
        let m = unsafe { sys::bpf_object__find_map_by_name(self.ptr, n.as_ptr()) };
        if m.is_null() {
            Err(Errno(libc::ENOENT))
        } else {
            Ok(m)
        }
    }

    /// Makes the object use an existing map instead of creating its own.
    pub fn reuse_map(&self, name: &str, fd: &OwnedFd) -> Result<(), Errno> {
        let m = self.map(name)?;
        // SAFETY: a map of this object, before load; libbpf dups the fd.
        let r = unsafe { sys::bpf_map__reuse_fd(m, fd.as_raw_fd()) };
        if r < 0 {
            Err(Errno(-r))
        } else {
            Ok(())
        }
    }

    /// Sets the contents of the object's `.rodata` (its `const volatile` globals).
    pub fn set_rodata(&self, data: &[u8]) -> Result<(), Errno> {
        let m = self.map(".rodata")?;
        // SAFETY: a map of this object, before load; libbpf copies `data`.
        let r =
            unsafe { sys::bpf_map__set_initial_value(m, data.as_ptr().cast(), data.len() as _) };
        if r < 0 {
            Err(Errno(-r))
        } else {
            Ok(())
        }
    }

    /// The fds a loaded object holds: one per program and one per map.
    pub fn fd_count(&self) -> usize {
        let mut n = 0;
        // SAFETY: iterating the maps and programs of a valid object; NULL starts and ends.
        unsafe {
            let mut m = sys::bpf_object__next_map(self.ptr, std::ptr::null());
            while !m.is_null() {
                n += 1;
                m = sys::bpf_object__next_map(self.ptr, m);
            }
            let mut p = sys::bpf_object__next_program(self.ptr, std::ptr::null_mut());
            while !p.is_null() {
                n += 1;
                p = sys::bpf_object__next_program(self.ptr, p);
            }
        }
        n
    }

    /// Whether the object has globals its programs can write (`.data`, `.bss`): state that a
    /// run leaves for the next one.
    pub fn writable_globals(&self) -> bool {
        let mut found = false;
        // SAFETY: iterating the maps of a valid object; names are NUL-terminated, owned by it.
        unsafe {
            let mut m = sys::bpf_object__next_map(self.ptr, std::ptr::null());
            while !m.is_null() {
                if sys::bpf_map__is_internal(m) {
                    let name = std::ffi::CStr::from_ptr(sys::bpf_map__name(m)).to_string_lossy();
                    found |= !name.contains(".rodata") && !name.contains(".kconfig");
                }
                m = sys::bpf_object__next_map(self.ptr, m);
            }
        }
        found
    }

    /// Loads the object; returns the fd of program `prog` (owned by the object).
    pub fn load(
        &mut self,
        prog: &str,
        log_buf: &mut [u8],
        log_level: u32,
    ) -> Result<RawFd, LoadError> {
        let err = |errno: Errno| LoadError {
            errno,
            log: String::new(),
        };
        let n = c(prog).map_err(err)?;
        // SAFETY: a valid object and a NUL-terminated name.
        let p = unsafe { sys::bpf_object__find_program_by_name(self.ptr, n.as_ptr()) };
        if p.is_null() {
            return Err(err(Errno(libc::ENOENT)));
        }
        if let Some(b) = log_buf.first_mut() {
            *b = 0;
        }
        // SAFETY: the log buffer outlives the load below; level as for a plain load.
        unsafe {
            sys::bpf_program__set_log_buf(p, log_buf.as_mut_ptr().cast(), log_buf.len() as _);
            sys::bpf_program__set_log_level(p, log_level);
        }
        // SAFETY: a valid, not yet loaded object.
        let r = unsafe { sys::bpf_object__load(self.ptr) };
        if r < 0 {
            return Err(LoadError {
                errno: Errno(-r),
                log: log_text(log_buf),
            });
        }
        // SAFETY: a loaded program of this object.
        Ok(unsafe { sys::bpf_program__fd(p) })
    }
}
