//! The only place that talks to the kernel's BPF API: BTF building (libbpf's `btf__*`), map
//! create and element calls, program load with the verifier log, BPF_PROG_TEST_RUN, pidfds and
//! feature probes, all through libbpf-sys and libc.
//!
//! Owns: every `unsafe` call into libbpf and the kernel. Must not: interpret results; every
//! failure is returned as an errno for the caller to record.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libbpf_sys as sys;

use crate::compile::asm::Insn;

pub mod btf;
mod fields;
mod ids;
pub mod log;
pub mod object;
pub mod object_progs;
mod percpu;
mod perf;
pub mod privileges;

pub use btf::ValueBtf;
pub use ids::{object_ids, ObjectKind};
pub use perf::{perf_attach, perf_kprobe, perf_link, perf_software, perf_tracepoint};

/// A kernel errno (positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's errno after a failed system call.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
    /// From libbpf's "negative errno" return convention.
    fn from_ret(ret: i32) -> Errno {
        if ret < 0 {
            Errno(-ret)
        } else {
            Errno::last()
        }
    }
    /// The symbolic name (`EINVAL`), including the kernel-internal ones user space rarely sees.
    pub fn name(self) -> String {
        match self.0 {
            512 => "ERESTARTSYS".into(),
            515 => "ENOIOCTLCMD".into(),
            524 => "ENOTSUPP".into(),
            n => match nix::errno::Errno::from_raw(n) {
                nix::errno::Errno::UnknownErrno => format!("errno{n}"),
                e => format!("{e:?}"),
            },
        }
    }
}

/// An I/O error's errno (EIO when it carries none).
impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// nix's errno as ours.
impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Errno {
        Errno(e as i32)
    }
}

fn fd_result(ret: i32) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret))
    } else {
        // SAFETY: a non-negative return of a libbpf fd-returning call is a new fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
}

fn unit_result(ret: i32) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret))
    } else {
        Ok(())
    }
}

/// BTF built in memory and loaded into the kernel; freed (and its fd closed) on drop.
pub struct Btf {
    ptr: *mut sys::btf,
}

impl Drop for Btf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from btf__new_empty/btf__load_vmlinux_btf and is freed once.
        unsafe { sys::btf__free(self.ptr) }
    }
}

/// Type ids of a map's key and value in its BTF.
pub struct MapBtf {
    pub btf: Btf,
    pub key_type: u32,
    pub value_type: u32,
}

impl MapBtf {
    /// Key: `int` when 4 bytes, else `unsigned char[key_size]`; value: `unsigned char[value_size]`.
    pub fn new(key_size: u32, value_size: u32) -> Result<MapBtf, Errno> {
        MapBtf::build(key_size, ValueBtf::Bytes(value_size))
    }

    fn fd(&self) -> RawFd {
        // SAFETY: valid btf object, loaded into the kernel.
        unsafe { sys::btf__fd(self.btf.ptr) }
    }
}

/// The kernel's own BTF (`/sys/kernel/btf/vmlinux`), for kfunc ids.
pub struct VmlinuxBtf(Btf);

impl VmlinuxBtf {
    pub fn load() -> Result<VmlinuxBtf, Errno> {
        // SAFETY: returns an owned object or NULL with errno set.
        let ptr = unsafe { sys::btf__load_vmlinux_btf() };
        if ptr.is_null() {
            Err(Errno::last())
        } else {
            Ok(VmlinuxBtf(Btf { ptr }))
        }
    }

    /// The BTF id of function `name`, if the kernel has it.
    pub fn func_id(&self, name: &str) -> Option<i32> {
        self.find(name, sys::BTF_KIND_FUNC)
    }

    /// The BTF id of typedef `name` (e.g. `btf_trace_sys_enter`), if the kernel has it.
    pub fn typedef_id(&self, name: &str) -> Option<i32> {
        self.find(name, sys::BTF_KIND_TYPEDEF)
    }

    fn find(&self, name: &str, kind: u32) -> Option<i32> {
        let c = CString::new(name).ok()?;
        // SAFETY: valid btf object and NUL-terminated name.
        let id = unsafe { sys::btf__find_by_name_kind(self.0.ptr, c.as_ptr(), kind) };
        (id > 0).then_some(id)
    }
}

/// Parameters of `BPF_MAP_CREATE`.
pub struct MapParams<'a> {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub btf: Option<&'a MapBtf>,
}

pub fn map_create(p: &MapParams<'_>) -> Result<OwnedFd, Errno> {
    let mut opts = sys::bpf_map_create_opts {
        sz: std::mem::size_of::<sys::bpf_map_create_opts>() as _,
        map_flags: p.flags,
        ..Default::default()
    };
    if let Some(b) = p.btf {
        opts.btf_fd = b.fd() as u32;
        opts.btf_key_type_id = b.key_type;
        opts.btf_value_type_id = b.value_type;
    }
    // SAFETY: opts is initialised with its size; the name is NULL (allowed).
    fd_result(unsafe {
        sys::bpf_map_create(
            p.map_type,
            std::ptr::null(),
            p.key_size,
            p.value_size,
            p.max_entries,
            &opts,
        )
    })
}

pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8], flags: u64) -> Result<(), Errno> {
    // SAFETY: key and value point to buffers of the map's key and value size (callers size them).
    unit_result(unsafe {
        sys::bpf_map_update_elem(
            map.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_ptr().cast(),
            flags,
        )
    })
}

pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> Result<(), Errno> {
    // SAFETY: as for map_update; `value` has room for the map's value size.
    unit_result(unsafe {
        sys::bpf_map_lookup_elem(
            map.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_mut_ptr().cast(),
        )
    })
}

/// `BPF_MAP_LOOKUP_ELEM` with `flags` (BPF_F_LOCK).
pub fn map_lookup_flags(
    map: &OwnedFd,
    key: &[u8],
    value: &mut [u8],
    flags: u64,
) -> Result<(), Errno> {
    // SAFETY: as for map_lookup.
    unit_result(unsafe {
        sys::bpf_map_lookup_elem_flags(
            map.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_mut_ptr().cast(),
            flags,
        )
    })
}

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` with `flags`.
pub fn map_lookup_and_delete(
    map: &OwnedFd,
    key: &[u8],
    value: &mut [u8],
    flags: u64,
) -> Result<(), Errno> {
    // SAFETY: as for map_lookup.
    unit_result(unsafe {
        sys::bpf_map_lookup_and_delete_elem_flags(
            map.as_raw_fd(),
            key.as_ptr().cast(),
            value.as_mut_ptr().cast(),
            flags,
        )
    })
}

pub fn map_delete(map: &OwnedFd, key: &[u8]) -> Result<(), Errno> {
    // SAFETY: key points to a buffer of the map's key size.
    unit_result(unsafe { sys::bpf_map_delete_elem(map.as_raw_fd(), key.as_ptr().cast()) })
}

pub fn map_next_key(map: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), Errno> {
    let k = key.map_or(std::ptr::null(), |k| k.as_ptr().cast());
    // SAFETY: key is NULL or a key-sized buffer; next has room for a key.
    unit_result(unsafe { sys::bpf_map_get_next_key(map.as_raw_fd(), k, next.as_mut_ptr().cast()) })
}

/// A failed load: the errno and the verifier log (empty if the kernel gave none).
pub struct LoadError {
    pub errno: Errno,
    pub log: String,
}

const _: () = assert!(std::mem::size_of::<sys::bpf_insn>() == 8);

/// What `BPF_PROG_LOAD` needs besides the instructions.
pub struct LoadParams<'a> {
    pub prog_type: u32,
    pub expected_attach_type: Option<u32>,
    /// BTF id (in vmlinux) of the attach target, for tracing and LSM programs.
    pub attach_btf_id: Option<u32>,
    pub sleepable: bool,
    pub insns: &'a [Insn],
}

/// Loads a program. The verifier log is only produced when the load fails (libbpf retries the
/// load with log level 1 into `log_buf`), so a successful load costs one verification.
pub fn prog_load(
    p: &LoadParams<'_>,
    log_buf: &mut [u8],
    log_level: u32,
) -> Result<OwnedFd, LoadError> {
    let raw: Vec<sys::bpf_insn> = p
        .insns
        .iter()
        .map(|i| {
            let b = i.to_bytes();
            // SAFETY: bpf_insn is the 8-byte kernel encoding that Insn::to_bytes produces.
            unsafe { std::mem::transmute::<[u8; 8], sys::bpf_insn>(b) }
        })
        .collect();
    if let Some(b) = log_buf.first_mut() {
        *b = 0;
    }
    let mut opts = sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
        prog_flags: if p.sleepable { sys::BPF_F_SLEEPABLE } else { 0 },
        expected_attach_type: p.expected_attach_type.unwrap_or(0),
        attach_btf_id: p.attach_btf_id.unwrap_or(0),
        log_buf: log_buf.as_mut_ptr().cast(),
        log_size: log_buf.len() as u32,
        log_level,
        ..Default::default()
    };
    // SAFETY: insns outlive the call; opts is sized and its log buffer is valid for log_size.
    let ret = unsafe {
        sys::bpf_prog_load(
            p.prog_type,
            c"bpfcase".as_ptr(),
            c"GPL".as_ptr(),
            raw.as_ptr(),
            raw.len() as _,
            &mut opts,
        )
    };
    fd_result(ret).map_err(|errno| LoadError {
        errno,
        log: log_text(log_buf),
    })
}

/// The NUL-terminated text in a log buffer.
pub fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// BPF_PROG_TEST_RUN with a context buffer and/or a packet; returns the program's return value.
pub fn test_run(
    prog: BorrowedFd<'_>,
    ctx: Option<&mut [u8]>,
    data: Option<&[u8]>,
) -> Result<u32, Errno> {
    let mut opts = sys::bpf_test_run_opts {
        sz: std::mem::size_of::<sys::bpf_test_run_opts>() as _,
        ..Default::default()
    };
    if let Some(ctx) = ctx {
        opts.ctx_in = ctx.as_ptr().cast();
        opts.ctx_size_in = ctx.len() as u32;
    }
    if let Some(d) = data {
        opts.data_in = d.as_ptr().cast();
        opts.data_size_in = d.len() as u32;
    }
    // SAFETY: ctx and data outlive the call and their sizes are given.
    unit_result(unsafe { sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) })?;
    Ok(opts.retval)
}

/// Attaches a tracing, LSM or tp_btf program to the BTF target it was loaded for
/// (BPF_RAW_TRACEPOINT_OPEN without a name); the returned fd is the attachment.
pub fn attach_btf_target(prog: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: NULL name: the target comes from the program's attach_btf_id.
    fd_result(unsafe { sys::bpf_raw_tracepoint_open(std::ptr::null(), prog.as_raw_fd()) })
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if ret < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: a successful pidfd_open returns a new fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
}

/// libbpf's name of a program type (`tracing`, `sched_cls`), None for an id it does not know.
pub fn prog_type_str(id: u32) -> Option<String> {
    // SAFETY: a pure lookup in libbpf's static table; it returns NULL or a pointer to a static
    // NUL-terminated string.
    let p = unsafe { libbpf_sys::libbpf_bpf_prog_type_str(id) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL, static and NUL-terminated (above).
    Some(
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Whether the BPF API works here at all: creates (and closes) a one-element array map.
/// EPERM without privileges, ENOSYS without CONFIG_BPF_SYSCALL.
pub fn probe_bpf() -> Result<(), Errno> {
    map_create(&MapParams {
        map_type: sys::BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        flags: 0,
        btf: None,
    })
    .map(drop)
}

/// Whether the kernel knows a program type (libbpf loads a trivial program). libbpf answers
/// "no" for any failed load, EPERM included: read a "no" together with the privileges.
pub fn probe_prog_type(prog_type: u32) -> Result<bool, Errno> {
    // SAFETY: NULL opts are allowed.
    probe_answer(unsafe { sys::libbpf_probe_bpf_prog_type(prog_type, std::ptr::null()) })
}

/// Whether the kernel knows a map type (libbpf creates a small map, with BTF where needed).
/// An error is the probe's own failure (e.g. EPERM loading the BTF it needs), not an answer;
/// a "no" may also be a refused map creation: read it together with the privileges.
pub fn probe_map_type(map_type: u32) -> Result<bool, Errno> {
    // SAFETY: NULL opts are allowed.
    probe_answer(unsafe { sys::libbpf_probe_bpf_map_type(map_type, std::ptr::null()) })
}

/// libbpf's probe convention: 1 yes, 0 no, a negative errno when the probe could not ask.
fn probe_answer(ret: i32) -> Result<bool, Errno> {
    match ret {
        1 => Ok(true),
        0 => Ok(false),
        r => Err(Errno::from_ret(r)),
    }
}

/// The floor a runner cannot beat: load `r0 = 0; exit` as a sleepable SYSCALL program, run it
/// once with BPF_PROG_TEST_RUN, close it — libbpf-sys calls only, no BTF, no maps.
pub fn floor_once() -> Result<(), Errno> {
    let insns: [sys::bpf_insn; 2] = [
        // SAFETY: the 8-byte encodings of `r0 = 0` (b7) and `exit` (95).
        unsafe { std::mem::transmute::<[u8; 8], sys::bpf_insn>([0xb7, 0, 0, 0, 0, 0, 0, 0]) },
        unsafe { std::mem::transmute::<[u8; 8], sys::bpf_insn>([0x95, 0, 0, 0, 0, 0, 0, 0]) },
    ];
    let mut opts = sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
        prog_flags: sys::BPF_F_SLEEPABLE,
        ..Default::default()
    };
    // SAFETY: two valid instructions; sized opts without a log.
    let fd = fd_result(unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_SYSCALL,
            c"floor".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            2,
            &mut opts,
        )
    })?;
    let mut ctx = [0u8; 8];
    test_run(std::os::fd::AsFd::as_fd(&fd), Some(&mut ctx), None)?;
    Ok(())
}

/// `recursion_misses` of a program (0 on kernels before 5.12, which do not count them).
pub fn recursion_misses(prog: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    // SAFETY: info is a zeroed bpf_prog_info of `len` bytes; the kernel fills what it knows.
    unit_result(unsafe { sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) })?;
    Ok(info.recursion_misses)
}

/// Raises RLIMIT_MEMLOCK: kernels before 5.11 charge BPF memory to it.
pub fn raise_memlock() {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct; failure leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(Errno(22).name(), "EINVAL");
        assert_eq!(Errno(1).name(), "EPERM");
        assert_eq!(Errno(524).name(), "ENOTSUPP");
        assert_eq!(Errno(95).name(), "EOPNOTSUPP");
        assert_eq!(Errno(4000).name(), "errno4000");
    }

    #[test]
    fn log_text_stops_at_nul() {
        assert_eq!(log_text(b"abc\0def"), "abc");
        assert_eq!(log_text(b"abc"), "abc");
    }
}
