//! The privileges this process holds for BPF, as the kernel sees them: the effective capability
//! set (`capget(2)`), the last capability the kernel knows (`/proc/sys/kernel/cap_last_cap`:
//! CAP_PERFMON and CAP_BPF exist since 5.8), `kernel.unprivileged_bpf_disabled`; and which
//! capabilities the kernel checks for each map and program type (`map_create()` and
//! `bpf_prog_load()` in kernel/bpf/syscall.c).
//!
//! Owns: reading these facts and the tables. Must not: decide what a missing privilege means for
//! an observation (that is exec's classification).

use libbpf_sys as sys;

/// A capability the kernel checks for BPF (numbers from include/uapi/linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin = 12,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    pub fn name(self) -> &'static str {
        match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }

    fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// What running the whole suite on the host takes: task storage maps and BTF (CAP_BPF), the
/// tracing program types and the verifier's pointer and uninitialised-stack rules (CAP_PERFMON),
/// the packet program types (CAP_NET_ADMIN). CAP_SYS_ADMIN stands in for each of them.
pub const HOST_NEEDS: &[Cap] = &[Cap::Bpf, Cap::Perfmon, Cap::NetAdmin];

/// The privileges of the calling thread (capabilities are per thread; the runner is
/// single-threaded where it touches the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privileges {
    /// The effective capability set, bit n = capability n.
    pub effective: u64,
    /// `cap_last_cap`: the highest capability number the kernel knows; None if unreadable.
    pub last_cap: Option<u32>,
    /// `kernel.unprivileged_bpf_disabled` (0 allows some BPF without CAP_BPF; 1 and 2 do not);
    /// None if unreadable.
    pub unprivileged_bpf_disabled: Option<u32>,
}

impl Privileges {
    /// Reads the calling thread's effective set and the kernel's settings.
    pub fn current() -> Privileges {
        let sysctl = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        Privileges {
            effective: effective_caps().unwrap_or(0),
            last_cap: sysctl("cap_last_cap"),
            unprivileged_bpf_disabled: sysctl("unprivileged_bpf_disabled"),
        }
    }

    /// Every capability, on a kernel that knows them all (for tests and fakes).
    pub fn full() -> Privileges {
        Privileges {
            effective: u64::MAX,
            last_cap: Some(40),
            unprivileged_bpf_disabled: Some(2),
        }
    }

    /// Whether the kernel has capability `c` at all (CAP_BPF and CAP_PERFMON since 5.8).
    pub fn knows(&self, c: Cap) -> bool {
        self.last_cap.is_none_or(|last| c as u32 <= last)
    }

    /// Whether the kernel grants what it checks with `c`, as `bpf_token_capable()` does:
    /// CAP_SYS_ADMIN stands in for any other capability, and a kernel that predates `c` checks
    /// CAP_SYS_ADMIN instead (CAP_NET_ADMIN or CAP_SYS_ADMIN for the packet types).
    pub fn capable(&self, c: Cap) -> bool {
        self.has(Cap::SysAdmin) || (self.knows(c) && self.has(c))
    }

    fn has(&self, c: Cap) -> bool {
        self.effective & c.bit() != 0
    }

    /// The capabilities to grant so that every check in `needs` passes, in order, without
    /// repeats: each missing one itself, or CAP_SYS_ADMIN alone where the kernel predates one.
    pub fn missing(&self, needs: &[Cap]) -> Vec<Cap> {
        let mut out = Vec::new();
        for &c in needs {
            if self.capable(c) {
                continue;
            }
            let grant = if self.knows(c) { c } else { Cap::SysAdmin };
            if !out.contains(&grant) {
                out.push(grant);
            }
        }
        // CAP_SYS_ADMIN covers the rest.
        if out.contains(&Cap::SysAdmin) {
            out = vec![Cap::SysAdmin];
        }
        out
    }

    /// " without CAP_X and CAP_Y" for what `needs` lacks here, or "" when nothing is missing.
    pub fn without(&self, needs: &[Cap]) -> String {
        let missing = self.missing(needs);
        if missing.is_empty() {
            String::new()
        } else {
            format!(" without {}", names(&missing))
        }
    }

    /// What the kernel checks before creating a map of this type (BTF for local storage maps
    /// needs CAP_BPF too). The kernel's table since "bpf: Centralize permissions checks for all
    /// BPF map types" (6.5); older kernels checked much the same in each map type.
    pub fn map_needs(&self, map_type: u32) -> &'static [Cap] {
        match map_type {
            sys::BPF_MAP_TYPE_ARRAY
            | sys::BPF_MAP_TYPE_PERCPU_ARRAY
            | sys::BPF_MAP_TYPE_PROG_ARRAY
            | sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY
            | sys::BPF_MAP_TYPE_CGROUP_ARRAY
            | sys::BPF_MAP_TYPE_ARRAY_OF_MAPS
            | sys::BPF_MAP_TYPE_HASH
            | sys::BPF_MAP_TYPE_PERCPU_HASH
            | sys::BPF_MAP_TYPE_HASH_OF_MAPS
            | sys::BPF_MAP_TYPE_RINGBUF
            | sys::BPF_MAP_TYPE_USER_RINGBUF
            | sys::BPF_MAP_TYPE_CGROUP_STORAGE
            | sys::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
                if self.unprivileged_bpf_disabled == Some(0) =>
            {
                &[]
            }
            sys::BPF_MAP_TYPE_SOCKMAP
            | sys::BPF_MAP_TYPE_SOCKHASH
            | sys::BPF_MAP_TYPE_DEVMAP
            | sys::BPF_MAP_TYPE_DEVMAP_HASH
            | sys::BPF_MAP_TYPE_XSKMAP => &[Cap::Bpf, Cap::NetAdmin],
            _ => &[Cap::Bpf],
        }
    }

    /// What the kernel checks before loading a program of this type (`bpf_prog_load()`:
    /// `is_net_admin_prog_type()`, `is_perfmon_prog_type()`; socket filters and cgroup skb
    /// programs load without CAP_BPF where unprivileged BPF is enabled).
    pub fn prog_needs(&self, prog_type: u32) -> &'static [Cap] {
        match prog_type {
            sys::BPF_PROG_TYPE_KPROBE
            | sys::BPF_PROG_TYPE_TRACEPOINT
            | sys::BPF_PROG_TYPE_PERF_EVENT
            | sys::BPF_PROG_TYPE_RAW_TRACEPOINT
            | sys::BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE
            | sys::BPF_PROG_TYPE_TRACING
            | sys::BPF_PROG_TYPE_LSM
            | sys::BPF_PROG_TYPE_STRUCT_OPS => &[Cap::Bpf, Cap::Perfmon],
            sys::BPF_PROG_TYPE_EXT => &[Cap::Bpf, Cap::Perfmon, Cap::NetAdmin],
            sys::BPF_PROG_TYPE_SCHED_CLS
            | sys::BPF_PROG_TYPE_SCHED_ACT
            | sys::BPF_PROG_TYPE_XDP
            | sys::BPF_PROG_TYPE_LWT_IN
            | sys::BPF_PROG_TYPE_LWT_OUT
            | sys::BPF_PROG_TYPE_LWT_XMIT
            | sys::BPF_PROG_TYPE_LWT_SEG6LOCAL
            | sys::BPF_PROG_TYPE_SK_SKB
            | sys::BPF_PROG_TYPE_SK_MSG
            | sys::BPF_PROG_TYPE_LIRC_MODE2
            | sys::BPF_PROG_TYPE_FLOW_DISSECTOR
            | sys::BPF_PROG_TYPE_CGROUP_DEVICE
            | sys::BPF_PROG_TYPE_CGROUP_SOCK
            | sys::BPF_PROG_TYPE_CGROUP_SOCK_ADDR
            | sys::BPF_PROG_TYPE_CGROUP_SOCKOPT
            | sys::BPF_PROG_TYPE_CGROUP_SYSCTL
            | sys::BPF_PROG_TYPE_SOCK_OPS
            | sys::BPF_PROG_TYPE_NETFILTER => &[Cap::Bpf, Cap::NetAdmin],
            sys::BPF_PROG_TYPE_SOCKET_FILTER | sys::BPF_PROG_TYPE_CGROUP_SKB
                if self.unprivileged_bpf_disabled == Some(0) =>
            {
                &[]
            }
            _ => &[Cap::Bpf],
        }
    }
}

/// "CAP_A", "CAP_A and CAP_B", "CAP_A, CAP_B and CAP_C".
pub fn names(caps: &[Cap]) -> String {
    let n: Vec<&str> = caps.iter().map(|c| c.name()).collect();
    match n.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The effective set from `capget(2)` (version 3: two 32-bit words).
fn effective_caps() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and room for the two data words it writes; pid 0
    // is the calling thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    (ret == 0).then(|| u64::from(data[0].effective) | u64::from(data[1].effective) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(caps: &[Cap]) -> Privileges {
        Privileges {
            effective: caps.iter().fold(0, |a, c| a | c.bit()),
            ..Privileges::full()
        }
    }

    #[test]
    fn sys_admin_stands_in_for_every_other() {
        let p = with(&[Cap::SysAdmin]);
        assert!(p.missing(HOST_NEEDS).is_empty());
        assert_eq!(p.without(HOST_NEEDS), "");
    }

    #[test]
    fn names_what_is_missing() {
        let p = with(&[Cap::Bpf, Cap::NetAdmin]);
        assert_eq!(p.missing(HOST_NEEDS), [Cap::Perfmon]);
        assert_eq!(p.without(HOST_NEEDS), " without CAP_PERFMON");
        let none = with(&[]);
        assert_eq!(
            none.without(HOST_NEEDS),
            " without CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
        );
        assert!(with(&[Cap::Bpf, Cap::Perfmon, Cap::NetAdmin])
            .missing(HOST_NEEDS)
            .is_empty());
    }

    #[test]
    fn kernels_before_5_8_know_only_sys_admin() {
        let p = Privileges {
            last_cap: Some(37),
            ..with(&[Cap::NetAdmin])
        };
        assert!(!p.knows(Cap::Bpf));
        assert_eq!(p.missing(HOST_NEEDS), [Cap::SysAdmin]);
        // Bits the kernel does not know never count.
        let p = Privileges {
            last_cap: Some(37),
            ..with(&[Cap::Bpf, Cap::Perfmon, Cap::NetAdmin])
        };
        assert_eq!(p.missing(HOST_NEEDS), [Cap::SysAdmin]);
    }

    #[test]
    fn tables_follow_the_kernel() {
        let p = with(&[]);
        assert_eq!(p.map_needs(sys::BPF_MAP_TYPE_TASK_STORAGE), [Cap::Bpf]);
        assert_eq!(p.map_needs(sys::BPF_MAP_TYPE_ARRAY), [Cap::Bpf]);
        let unpriv = Privileges {
            unprivileged_bpf_disabled: Some(0),
            ..with(&[])
        };
        assert!(unpriv.map_needs(sys::BPF_MAP_TYPE_ARRAY).is_empty());
        assert_eq!(unpriv.map_needs(sys::BPF_MAP_TYPE_TASK_STORAGE), [Cap::Bpf]);
        assert!(unpriv
            .prog_needs(sys::BPF_PROG_TYPE_SOCKET_FILTER)
            .is_empty());
        assert_eq!(p.prog_needs(sys::BPF_PROG_TYPE_SYSCALL), [Cap::Bpf]);
        assert_eq!(
            p.prog_needs(sys::BPF_PROG_TYPE_RAW_TRACEPOINT),
            [Cap::Bpf, Cap::Perfmon]
        );
        assert_eq!(
            p.prog_needs(sys::BPF_PROG_TYPE_XDP),
            [Cap::Bpf, Cap::NetAdmin]
        );
    }

    #[test]
    fn lists_read_as_words() {
        assert_eq!(names(&[]), "");
        assert_eq!(names(&[Cap::Bpf]), "CAP_BPF");
        assert_eq!(names(&[Cap::Bpf, Cap::Perfmon]), "CAP_BPF and CAP_PERFMON");
    }

    #[test]
    fn reads_this_thread() {
        // Whatever this process holds, the kernel's answer round-trips through capget.
        let p = Privileges::current();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let from_status = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
        if let Some(eff) = from_status {
            assert_eq!(p.effective, eff);
        }
        assert_eq!(effective_caps(), Some(p.effective));
    }
}
