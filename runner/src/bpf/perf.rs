//! Perf events the runner attaches programs to (tracepoints, kprobes, a cpu-clock), and the
//! two ways of attaching: PERF_EVENT_IOC_SET_BPF on a new event, or a BPF link on an event
//! that stays open (closing the link detaches the program, the event stays).
//!
//! Owns: the `perf_event_open` calls and their attach ioctls. Must not: interpret failures.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_sys as sys;

use super::{fd_result, Errno};

const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
const PERF_EVENT_IOC_SET_BPF: u64 = 0x4004_2408;

fn perf_event_open(attr: &mut sys::perf_event_attr, pid: i32, cpu: i32) -> Result<OwnedFd, Errno> {
    attr.size = std::mem::size_of::<sys::perf_event_attr>() as u32;
    // SAFETY: a sized, initialised attr; the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *mut sys::perf_event_attr,
            pid,
            cpu,
            -1,
            sys::PERF_FLAG_FD_CLOEXEC,
        )
    } as i32;
    if fd < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: a new fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// A perf event for a tracepoint id (from tracefs `events/<category>/<name>/id`), on CPU 0 of
/// every process (tracepoint programs filter on the runner's pid themselves).
pub fn perf_tracepoint(id: u64) -> Result<OwnedFd, Errno> {
    let mut attr = sys::perf_event_attr {
        type_: sys::PERF_TYPE_TRACEPOINT,
        config: id,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 1;
    perf_event_open(&mut attr, -1, 0)
}

/// A kprobe perf event on `func` (the `kprobe` PMU's type from sysfs).
pub fn perf_kprobe(pmu_type: u32, func: &std::ffi::CStr) -> Result<OwnedFd, Errno> {
    let mut attr = sys::perf_event_attr {
        type_: pmu_type,
        ..Default::default()
    };
    attr.__bindgen_anon_3.kprobe_func = func.as_ptr() as u64;
    attr.__bindgen_anon_4.probe_offset = 0;
    attr.__bindgen_anon_1.sample_period = 1;
    perf_event_open(&mut attr, -1, 0)
}

/// A software cpu-clock event on the calling process, sampling every 100 µs of CPU time.
pub fn perf_software() -> Result<OwnedFd, Errno> {
    let mut attr = sys::perf_event_attr {
        type_: sys::PERF_TYPE_SOFTWARE,
        config: sys::PERF_COUNT_SW_CPU_CLOCK as u64,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_period = 100_000;
    perf_event_open(&mut attr, 0, -1)
}

/// Runs `prog` on every sample of `perf` and enables the event.
pub fn perf_attach(perf: &OwnedFd, prog: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: ioctls on a perf fd we own with an fd argument / no argument.
    unsafe {
        if libc::ioctl(
            perf.as_raw_fd(),
            PERF_EVENT_IOC_SET_BPF as _,
            prog.as_raw_fd(),
        ) < 0
        {
            return Err(Errno::last());
        }
        if libc::ioctl(perf.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Attaches `prog` to an open perf event through a BPF link (BPF_LINK_CREATE with
/// BPF_PERF_EVENT, 5.15+) and enables the event; closing the returned link detaches the
/// program and leaves the event open for the next one.
pub fn perf_link(perf: &OwnedFd, prog: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: two fds we hold; NULL opts are allowed (no BPF cookie).
    let link = fd_result(unsafe {
        sys::bpf_link_create(
            prog.as_raw_fd(),
            perf.as_raw_fd(),
            sys::BPF_PERF_EVENT,
            std::ptr::null(),
        )
    })?;
    // SAFETY: an ioctl without argument on a perf fd we own.
    if unsafe { libc::ioctl(perf.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(link)
}
