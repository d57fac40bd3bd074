//! Kernel facts as data: one row per map type, program type, helper and kfunc the cases can
//! name. Adding a helper to the suite means adding rows here, not code paths elsewhere.
//! Numbers are the UAPI values of `include/uapi/linux/bpf.h`.

use std::fmt;

/// A map type.
#[derive(Debug, PartialEq, Eq)]
pub struct MapType {
    pub name: &'static str,
    /// `enum bpf_map_type`.
    pub id: u32,
    /// Local storage maps (sk/inode/task/cgrp): `max_entries` 0, BPF_F_NO_PREALLOC, BTF required.
    pub local_storage: bool,
}

pub const MAP_TYPES: &[MapType] = &[
    MapType {
        name: "hash",
        id: 1,
        local_storage: false,
    },
    MapType {
        name: "array",
        id: 2,
        local_storage: false,
    },
    MapType {
        name: "percpu_array",
        id: 6,
        local_storage: false,
    },
    MapType {
        name: "sk_storage",
        id: 24,
        local_storage: true,
    },
    MapType {
        name: "inode_storage",
        id: 28,
        local_storage: true,
    },
    MapType {
        name: "task_storage",
        id: 29,
        local_storage: true,
    },
    MapType {
        name: "cgrp_storage",
        id: 32,
        local_storage: true,
    },
];

pub fn map_type(name: &str) -> Option<&'static MapType> {
    MAP_TYPES.iter().find(|m| m.name == name)
}

/// `map_flags` bits a case may name.
pub const MAP_FLAGS: &[(&str, u32)] = &[
    ("no_prealloc", 1 << 0),
    ("no_common_lru", 1 << 1),
    ("numa_node", 1 << 2),
    ("rdonly", 1 << 3),
    ("wronly", 1 << 4),
    ("stack_build_id", 1 << 5),
    ("zero_seed", 1 << 6),
    ("rdonly_prog", 1 << 7),
    ("wronly_prog", 1 << 8),
    ("clone", 1 << 9),
    ("mmapable", 1 << 10),
];

/// How a program of a type is made to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// BPF_PROG_TEST_RUN with an 8-byte context.
    TestRun,
    /// BPF_PROG_TEST_RUN with a packet (socket filters, XDP, tc, cgroup skb).
    TestRunPacket,
    /// Attached to its BTF target, then BPF_PROG_TEST_RUN, which calls the kernel's test
    /// functions (`bpf_fentry_test1`, `bpf_modify_return_test`) that the program is attached to.
    AttachTestRun(Attach),
    /// Attached, then the runner makes the kernel run it.
    AttachTrigger(Attach, Trigger),
    /// No way to run it here: the verifier's answer is the observation.
    LoadOnly,
}

/// How a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// BPF_RAW_TRACEPOINT_OPEN on the BTF target given at load (fentry/fexit/fmod_ret, LSM,
    /// tp_btf).
    BtfTarget,
    /// A perf event for the tracepoint `category/name` (its id from tracefs), PERF_EVENT_IOC_SET_BPF.
    PerfTracepoint(&'static str),
    /// A perf kprobe event on a kernel function.
    PerfKprobe(&'static str),
    /// A software cpu-clock perf event sampling the runner every tick.
    PerfSoftware,
}

/// What the runner does so that the kernel runs an attached program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `getpid(2)`.
    Getpid,
    /// Open a file (`/dev/null`).
    OpenFile,
    /// Spin on the CPU until the program ran (or a second passed).
    Spin,
    /// `execve(2)` of the runner's own binary with a no-op argument, by a fresh child (the
    /// runner itself cannot exec): `bprm_*` LSM hooks, `sched_process_exec`.
    Exec,
    /// `socket(AF_UNIX, SOCK_DGRAM)`, then close: `socket_create`/`socket_post_create` hooks.
    Socket,
    /// `unlink(2)` of a file the runner created in a private temporary directory:
    /// `path_unlink`/`inode_unlink` hooks, `do_unlinkat`.
    Unlink,
    /// A fresh child exits (`_exit(0)`): `sched_process_exit`, `do_exit`.
    Exit,
    /// `getsockopt(SOL_SOCKET, SO_TYPE)` on a socket (a fresh UDP socket, or a case's):
    /// `socket_getsockopt` hooks.
    Getsockopt,
}

/// The triggers a case can name (`"trigger"` of a `prog` step), by name.
pub const TRIGGERS: &[(&str, Trigger)] = &[
    ("getpid", Trigger::Getpid),
    ("open", Trigger::OpenFile),
    ("exec", Trigger::Exec),
    ("socket", Trigger::Socket),
    ("unlink", Trigger::Unlink),
    ("exit", Trigger::Exit),
    ("getsockopt", Trigger::Getsockopt),
];

pub fn trigger(name: &str) -> Option<Trigger> {
    TRIGGERS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

impl Trigger {
    /// Whether a fresh child does it (the task doing it ends, or becomes another program).
    pub fn by_fresh_child(self) -> bool {
        matches!(self, Trigger::Exec | Trigger::Exit)
    }
}

/// A program type, as a case names it.
#[derive(Debug, PartialEq, Eq)]
pub struct ProgType {
    pub name: &'static str,
    /// `enum bpf_prog_type`.
    pub id: u32,
    /// `enum bpf_attach_type` given at load, when the type needs one.
    pub expected_attach_type: Option<u32>,
    /// The kernel function (or `btf_trace_*` typedef) the program attaches to, by BTF name.
    pub attach_btf: Option<&'static str>,
    /// Loaded with BPF_F_SLEEPABLE (SYSCALL programs must be).
    pub sleepable: bool,
    pub run: RunMode,
    /// Listed by the helper's documentation as able to call bpf_task_storage_get.
    pub documented: bool,
}

impl ProgType {
    /// Whether the kernel runs programs of this type from interrupts by design (a perf event's
    /// overflow handler), so that an interrupt is the runner's own event.
    pub fn runs_in_interrupt(&self) -> bool {
        matches!(self.run, RunMode::AttachTrigger(Attach::PerfSoftware, _))
    }

    /// Whether the program runs on kernel events rather than on the runner's request.
    pub fn attached(&self) -> bool {
        matches!(
            self.run,
            RunMode::AttachTestRun(_) | RunMode::AttachTrigger(..)
        )
    }
}

impl RunMode {
    /// In words; `target` names a BTF target (else "its BTF target").
    fn words(self, target: Option<&str>) -> String {
        match self {
            RunMode::TestRun => "test run".into(),
            RunMode::TestRunPacket => "test run with a packet".into(),
            RunMode::AttachTestRun(a) => format!("{}, then test run", a.words(target)),
            RunMode::AttachTrigger(a, t) => format!("{}, trigger: {t}", a.words(target)),
            RunMode::LoadOnly => "load only".into(),
        }
    }
}

impl Attach {
    fn words(self, target: Option<&str>) -> String {
        match (self, target) {
            (Attach::BtfTarget, Some(t)) => format!("attach to {t}"),
            (Attach::BtfTarget, None) => "attach to its BTF target".into(),
            (Attach::PerfTracepoint(tp), _) => format!("attach to tracepoint {tp}"),
            (Attach::PerfKprobe(f), _) => format!("attach a kprobe to {f}"),
            (Attach::PerfSoftware, _) => "attach to a cpu-clock perf event".into(),
        }
    }
}

impl fmt::Display for RunMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words(None))
    }
}

impl fmt::Display for Attach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words(None))
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Getpid => "getpid()",
            Trigger::OpenFile => "open(\"/dev/null\")",
            Trigger::Spin => "spin on the CPU until it ran",
            Trigger::Exec => "a child execs the runner with --version",
            Trigger::Socket => "socket(AF_UNIX, SOCK_DGRAM)",
            Trigger::Unlink => "unlink a file in a private temporary directory",
            Trigger::Exit => "a child exits",
            Trigger::Getsockopt => "getsockopt(SO_TYPE) on a socket",
        })
    }
}

impl ProgType {
    /// How a program of this type is made to run, in words, attached to `attach_to` (a step's
    /// own target) or the type's: "attach to tracepoint syscalls/sys_enter_getpid, trigger:
    /// getpid()", "attach to bpf_fentry_test1, then test run; sleepable".
    pub fn how_it_runs(&self, attach_to: Option<&str>) -> String {
        self.how_it_runs_with(attach_to, None)
    }

    /// As `how_it_runs`, with a step's own trigger instead of the type's (or its test run).
    pub fn how_it_runs_with(&self, attach_to: Option<&str>, trigger: Option<Trigger>) -> String {
        let run = match (self.run, trigger) {
            (RunMode::AttachTestRun(a) | RunMode::AttachTrigger(a, _), Some(t)) => {
                RunMode::AttachTrigger(a, t)
            }
            (r, _) => r,
        };
        let mut s = run.words(attach_to.or(self.attach_btf));
        if self.sleepable {
            s.push_str("; sleepable");
        }
        s
    }
}

const fn pt(name: &'static str, id: u32, run: RunMode, documented: bool) -> ProgType {
    ProgType {
        name,
        id,
        expected_attach_type: None,
        attach_btf: None,
        sleepable: false,
        run,
        documented,
    }
}

const fn btf_pt(
    name: &'static str,
    id: u32,
    attach_type: u32,
    target: &'static str,
    sleepable: bool,
    run: RunMode,
) -> ProgType {
    ProgType {
        name,
        id,
        expected_attach_type: Some(attach_type),
        attach_btf: Some(target),
        sleepable,
        run,
        documented: true,
    }
}

/// Every program type a case can name. `enum bpf_prog_type`: KPROBE 2, SCHED_CLS 3,
/// TRACEPOINT 5, XDP 6, PERF_EVENT 7, CGROUP_SKB 8, RAW_TRACEPOINT 17,
/// RAW_TRACEPOINT_WRITABLE 24, TRACING 26, LSM 29, SYSCALL 31, SOCKET_FILTER 1.
/// `enum bpf_attach_type`: BPF_TRACE_RAW_TP 23, BPF_TRACE_FENTRY 24, BPF_TRACE_FEXIT 25,
/// BPF_MODIFY_RETURN 26, BPF_LSM_MAC 27, BPF_CGROUP_INET_INGRESS 0.
pub const PROG_TYPES: &[ProgType] = &[
    ProgType {
        sleepable: true,
        ..pt("syscall", 31, RunMode::TestRun, true)
    },
    pt("raw_tp", 17, RunMode::TestRun, true),
    // The only writable raw tracepoints belong to drivers (nbd): load only.
    pt("raw_tp_writable", 24, RunMode::LoadOnly, true),
    pt(
        "tracepoint",
        5,
        RunMode::AttachTrigger(
            Attach::PerfTracepoint("syscalls/sys_enter_getpid"),
            Trigger::Getpid,
        ),
        true,
    ),
    pt(
        "kprobe",
        2,
        RunMode::AttachTrigger(Attach::PerfKprobe("__x64_sys_getpid"), Trigger::Getpid),
        true,
    ),
    pt(
        "perf_event",
        7,
        RunMode::AttachTrigger(Attach::PerfSoftware, Trigger::Spin),
        true,
    ),
    btf_pt(
        "fentry",
        26,
        24,
        "bpf_fentry_test1",
        false,
        RunMode::AttachTestRun(Attach::BtfTarget),
    ),
    btf_pt(
        "fexit",
        26,
        25,
        "bpf_fentry_test1",
        false,
        RunMode::AttachTestRun(Attach::BtfTarget),
    ),
    btf_pt(
        "fmod_ret",
        26,
        26,
        "bpf_modify_return_test",
        false,
        RunMode::AttachTestRun(Attach::BtfTarget),
    ),
    btf_pt(
        "fentry.s",
        26,
        24,
        "bpf_fentry_test1",
        true,
        RunMode::AttachTestRun(Attach::BtfTarget),
    ),
    btf_pt(
        "tp_btf",
        26,
        23,
        "btf_trace_sys_enter",
        false,
        RunMode::AttachTrigger(Attach::BtfTarget, Trigger::Getpid),
    ),
    btf_pt(
        "lsm",
        29,
        27,
        "bpf_lsm_file_open",
        false,
        RunMode::AttachTrigger(Attach::BtfTarget, Trigger::OpenFile),
    ),
    btf_pt(
        "lsm.s",
        29,
        27,
        "bpf_lsm_file_open",
        true,
        RunMode::AttachTrigger(Attach::BtfTarget, Trigger::OpenFile),
    ),
    pt("socket_filter", 1, RunMode::TestRunPacket, false),
    pt("xdp", 6, RunMode::TestRunPacket, false),
    pt("sched_cls", 3, RunMode::TestRunPacket, false),
    ProgType {
        expected_attach_type: Some(0),
        ..pt("cgroup_skb", 8, RunMode::TestRunPacket, false)
    },
];

pub fn prog_type(name: &str) -> Option<&'static ProgType> {
    PROG_TYPES.iter().find(|p| p.name == name)
}

pub mod helpers;

/// A BPF helper.
#[derive(Debug, PartialEq, Eq)]
pub struct Helper {
    pub name: &'static str,
    /// `enum bpf_func_id`.
    pub id: i32,
}

pub const MAP_LOOKUP_ELEM: Helper = Helper {
    name: "bpf_map_lookup_elem",
    id: 1,
};
pub const GET_CURRENT_PID_TGID: Helper = Helper {
    name: "bpf_get_current_pid_tgid",
    id: 14,
};
pub const THIS_CPU_PTR: Helper = Helper {
    name: "bpf_this_cpu_ptr",
    id: 154,
};
pub const TASK_STORAGE_GET: Helper = Helper {
    name: "bpf_task_storage_get",
    id: 156,
};
pub const TASK_STORAGE_DELETE: Helper = Helper {
    name: "bpf_task_storage_delete",
    id: 157,
};
pub const GET_CURRENT_TASK_BTF: Helper = Helper {
    name: "bpf_get_current_task_btf",
    id: 158,
};

pub const HELPERS: &[&Helper] = &[
    &MAP_LOOKUP_ELEM,
    &GET_CURRENT_PID_TGID,
    &THIS_CPU_PTR,
    &TASK_STORAGE_GET,
    &TASK_STORAGE_DELETE,
    &GET_CURRENT_TASK_BTF,
];

/// The UAPI name of helper `id`.
pub fn helper_name(id: i32) -> Option<&'static str> {
    helpers::ALL.iter().find(|h| h.id == id).map(|h| h.name)
}

/// What a helper's documentation says about it: the program types (UAPI names without the
/// `BPF_PROG_TYPE_` prefix) that may call it, and where the page is. Reports compare the
/// measured program types with this list.
#[derive(Debug, PartialEq, Eq)]
pub struct HelperDoc {
    pub helper: &'static str,
    pub program_types: &'static [&'static str],
    /// The documentation page.
    pub page: &'static str,
}

/// The program types docs.ebpf.io lists for the task-storage helpers ("Program types"
/// section of each page).
const TASK_STORAGE_DOC_TYPES: &[&str] = &[
    "KPROBE",
    "LSM",
    "PERF_EVENT",
    "RAW_TRACEPOINT",
    "RAW_TRACEPOINT_WRITABLE",
    "SYSCALL",
    "TRACEPOINT",
    "TRACING",
];

/// The program types docs.ebpf.io lists for the cgroup-storage helpers ("Program types"
/// section of each page; the kernel's own page says "available to all program types").
const CGRP_STORAGE_DOC_TYPES: &[&str] = &[
    "CGROUP_DEVICE",
    "CGROUP_SKB",
    "CGROUP_SOCK",
    "CGROUP_SOCKOPT",
    "CGROUP_SOCK_ADDR",
    "CGROUP_SYSCTL",
    "FLOW_DISSECTOR",
    "KPROBE",
    "LSM",
    "LWT_IN",
    "LWT_OUT",
    "LWT_SEG6LOCAL",
    "LWT_XMIT",
    "NETFILTER",
    "PERF_EVENT",
    "RAW_TRACEPOINT",
    "RAW_TRACEPOINT_WRITABLE",
    "SCHED_ACT",
    "SCHED_CLS",
    "SK_LOOKUP",
    "SK_MSG",
    "SK_REUSEPORT",
    "SK_SKB",
    "SOCKET_FILTER",
    "SOCK_OPS",
    "STRUCT_OPS",
    "SYSCALL",
    "TRACEPOINT",
    "TRACING",
    "XDP",
];

/// docs.ebpf.io's program types of the inode-storage helpers.
const INODE_STORAGE_DOC_TYPES: &[&str] = &["LSM"];

/// docs.ebpf.io's program types of the socket-storage helpers.
const SK_STORAGE_DOC_TYPES: &[&str] = &[
    "CGROUP_SKB",
    "CGROUP_SOCK",
    "CGROUP_SOCKOPT",
    "CGROUP_SOCK_ADDR",
    "LSM",
    "SCHED_ACT",
    "SCHED_CLS",
    "SK_MSG",
    "SOCK_OPS",
];

pub const HELPER_DOCS: &[HelperDoc] = &[
    HelperDoc {
        helper: "bpf_task_storage_get",
        program_types: TASK_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_task_storage_get/",
    },
    HelperDoc {
        helper: "bpf_task_storage_delete",
        program_types: TASK_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_task_storage_delete/",
    },
    HelperDoc {
        helper: "bpf_cgrp_storage_get",
        program_types: CGRP_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_cgrp_storage_get/",
    },
    HelperDoc {
        helper: "bpf_cgrp_storage_delete",
        program_types: CGRP_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_cgrp_storage_delete/",
    },
    HelperDoc {
        helper: "bpf_inode_storage_get",
        program_types: INODE_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_inode_storage_get/",
    },
    HelperDoc {
        helper: "bpf_inode_storage_delete",
        program_types: INODE_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_inode_storage_delete/",
    },
    HelperDoc {
        helper: "bpf_sk_storage_get",
        program_types: SK_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_sk_storage_get/",
    },
    HelperDoc {
        helper: "bpf_sk_storage_delete",
        program_types: SK_STORAGE_DOC_TYPES,
        page: "https://docs.ebpf.io/linux/helper-function/bpf_sk_storage_delete/",
    },
];

pub fn helper_doc(name: &str) -> Option<&'static HelperDoc> {
    HELPER_DOCS.iter().find(|d| d.helper == name)
}

/// The UAPI name of a program type without its prefix (`TRACING` for fentry), from libbpf.
pub fn prog_type_uapi(id: u32) -> Option<String> {
    crate::bpf::prog_type_str(id).map(|s| s.to_ascii_uppercase())
}

/// kfuncs the compiler may call; resolved by name in the kernel's BTF at load time.
pub const KFUNC_TASK_FROM_PID: &str = "bpf_task_from_pid";
pub const KFUNC_TASK_RELEASE: &str = "bpf_task_release";

/// An owner of local storage: what a storage map's values belong to, how user space names one
/// (the fd in a map key) and how a program finds one from the number user space knows it by.
/// A new owner kind is a row here and, if the runner creates such owners, its way of making
/// one (`exec::owners`).
#[derive(Debug, PartialEq, Eq)]
pub struct OwnerKind {
    /// As cases name it: `{"new": {"cgroup": "a"}}`, `{"cgroup": "a"}` as an argument.
    pub name: &'static str,
    /// The storage map type keyed by owners of this kind.
    pub map_type: &'static str,
    /// What a user-space key holds: the fd of …
    pub key_fd: &'static str,
    /// (kfunc taking the owner's id and returning a referenced pointer or NULL, kfunc
    /// releasing it), or None when programs meet such owners only as hook arguments.
    pub lookup: Option<(&'static str, &'static str)>,
    /// How the runner makes one: a `spawn`ed child, or what `new` makes.
    pub made: Made,
    /// The helpers that `get` and `delete` ops on a storage map of this kind call.
    pub get: &'static str,
    pub delete: &'static str,
}

/// What the runner makes for an owner of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Made {
    /// A child process (`spawn`; not `new`).
    Child,
    /// A directory in the runner's private part of the cgroup2 hierarchy.
    Cgroup,
    /// A file on the runner's tmpfs.
    File,
    /// A TCP socket.
    Socket,
}

impl OwnerKind {
    /// Whether a case makes owners of this kind with `new`.
    pub fn made_by_new(&self) -> bool {
        self.made != Made::Child
    }
}

pub const TASK_OWNER: OwnerKind = OwnerKind {
    name: "task",
    map_type: "task_storage",
    key_fd: "a pidfd of the task",
    lookup: Some((KFUNC_TASK_FROM_PID, KFUNC_TASK_RELEASE)),
    made: Made::Child,
    get: "bpf_task_storage_get",
    delete: "bpf_task_storage_delete",
};

pub const CGROUP_OWNER: OwnerKind = OwnerKind {
    name: "cgroup",
    map_type: "cgrp_storage",
    key_fd: "the cgroup's directory in the cgroup2 hierarchy",
    lookup: Some(("bpf_cgroup_from_id", "bpf_cgroup_release")),
    made: Made::Cgroup,
    get: "bpf_cgrp_storage_get",
    delete: "bpf_cgrp_storage_delete",
};

/// An inode, through a file on it: programs meet it as a hook argument (`file->f_inode`, an
/// unlinked dentry's `d_inode`).
pub const FILE_OWNER: OwnerKind = OwnerKind {
    name: "file",
    map_type: "inode_storage",
    key_fd: "a file on the inode",
    lookup: None,
    made: Made::File,
    get: "bpf_inode_storage_get",
    delete: "bpf_inode_storage_delete",
};

/// A socket: programs meet it as a hook argument (`sock->sk`) or in their context.
pub const SOCKET_OWNER: OwnerKind = OwnerKind {
    name: "socket",
    map_type: "sk_storage",
    key_fd: "the socket",
    lookup: None,
    made: Made::Socket,
    get: "bpf_sk_storage_get",
    delete: "bpf_sk_storage_delete",
};

pub const OWNER_KINDS: &[&OwnerKind] = &[&TASK_OWNER, &CGROUP_OWNER, &FILE_OWNER, &SOCKET_OWNER];

pub fn owner_kind(name: &str) -> Option<&'static OwnerKind> {
    OWNER_KINDS.iter().copied().find(|k| k.name == name)
}

/// The owner kind whose storage map type is `map_type`.
pub fn owner_of_map(map_type: &str) -> Option<&'static OwnerKind> {
    OWNER_KINDS.iter().copied().find(|k| k.map_type == map_type)
}

/// A value kept in a per-CPU kernel variable, found through the kernel's BTF at load time.
#[derive(Debug, PartialEq, Eq)]
pub struct PerCpuValue {
    pub name: &'static str,
    /// Where kernels keep it, tried in order: (per-CPU variable, member), the variable itself
    /// when the member is None.
    pub places: &'static [(&'static str, Option<&'static str>)],
}

/// The preempt count of x86: a per-CPU `int __preempt_count`, which some kernels keep as a
/// member of a per-CPU `struct pcpu_hot` instead ("x86/percpu: Move preempt_count next to
/// current_task"; later kernels dissolved `pcpu_hot` again).
pub const PREEMPT_COUNT: PerCpuValue = PerCpuValue {
    name: "preempt_count",
    places: &[
        ("__preempt_count", None),
        ("pcpu_hot", Some("preempt_count")),
    ],
};

pub const PERCPU_VALUES: &[&PerCpuValue] = &[&PREEMPT_COUNT];

pub fn percpu_value(name: &str) -> Option<&'static PerCpuValue> {
    PERCPU_VALUES.iter().copied().find(|v| v.name == name)
}

/// The preempt count's bits that say the CPU is not running a task: serving a soft interrupt
/// (bit 8, SOFTIRQ_OFFSET) and every bit from 16 to 30. Kernels put the hard-interrupt and NMI
/// counts there, but not all in the same place: a hard interrupt reads 0x00010000 on Debian's 6.1
/// and 6.12 (HARDIRQ_MASK 0x000f0000, NMI_MASK 0x00f00000) and 0x01000000 on 7.3, whose bits
/// 16-23 count sections with interrupts disabled instead (so a hook reached from such a section in
/// task context is taken for an interrupt there). Bits 9-15 (softirqs disabled) and 0-7
/// (preemption disabled) are still task context; bit 31 is x86's inverted need-resched flag.
pub const PREEMPT_NOT_TASK_MASK: i32 = 0x7fff_0000 | 0x0000_0100;

/// BPF_LOCAL_STORAGE_GET_F_CREATE.
pub const LOCAL_STORAGE_GET_F_CREATE: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_types_agree_with_the_helper_documentation() {
        let doc = helper_doc("bpf_task_storage_get").unwrap();
        for p in PROG_TYPES {
            let uapi = prog_type_uapi(p.id).unwrap();
            assert_eq!(
                p.documented,
                doc.program_types.contains(&uapi.as_str()),
                "{} ({uapi})",
                p.name
            );
        }
        assert_eq!(prog_type_uapi(26).as_deref(), Some("TRACING"));
        assert_eq!(prog_type_uapi(9999), None);
    }

    #[test]
    fn names_are_unique_and_found() {
        for m in MAP_TYPES {
            assert_eq!(map_type(m.name), Some(m));
        }
        assert_eq!(map_type("task_storage").map(|m| m.id), Some(29));
        assert_eq!(prog_type("syscall").map(|p| p.id), Some(31));
        for p in PROG_TYPES {
            assert_eq!(prog_type(p.name), Some(p), "{} is listed once", p.name);
            assert_eq!(
                p.attach_btf.is_some(),
                p.expected_attach_type.is_some() && p.id != 8,
                "{}",
                p.name
            );
        }
        assert!(prog_type("fentry").is_some_and(ProgType::attached));
        assert!(!prog_type("syscall").is_some_and(ProgType::attached));
        assert_eq!(helper_name(156), Some("bpf_task_storage_get"));
        assert_eq!(helper_name(9999), None);
        for (n, t) in TRIGGERS {
            assert_eq!(trigger(n), Some(*t), "{n} is listed once");
        }
        assert_eq!(
            trigger("spin"),
            None,
            "spinning is the perf event's own, not a case's"
        );
        assert!(Trigger::Exec.by_fresh_child() && !Trigger::Socket.by_fresh_child());
    }

    #[test]
    fn how_a_type_runs_is_said_in_words() {
        let words = |n: &str| prog_type(n).map(|p| p.how_it_runs(None));
        assert_eq!(
            words("tracepoint").as_deref(),
            Some("attach to tracepoint syscalls/sys_enter_getpid, trigger: getpid()")
        );
        assert_eq!(words("syscall").as_deref(), Some("test run; sleepable"));
        assert_eq!(words("xdp").as_deref(), Some("test run with a packet"));
        assert_eq!(words("raw_tp_writable").as_deref(), Some("load only"));
        assert_eq!(
            words("kprobe").as_deref(),
            Some("attach a kprobe to __x64_sys_getpid, trigger: getpid()")
        );
        assert_eq!(
            words("perf_event").as_deref(),
            Some("attach to a cpu-clock perf event, trigger: spin on the CPU until it ran")
        );
        assert_eq!(
            words("fentry.s").as_deref(),
            Some("attach to bpf_fentry_test1, then test run; sleepable")
        );
        assert_eq!(
            words("lsm").as_deref(),
            Some("attach to bpf_lsm_file_open, trigger: open(\"/dev/null\")")
        );
        // A step's own target replaces the type's.
        assert_eq!(
            prog_type("fentry").map(|p| p.how_it_runs(Some("bpf_local_storage_update"))),
            Some("attach to bpf_local_storage_update, then test run".into())
        );
        // A step's own trigger replaces the type's, and its test run.
        assert_eq!(
            prog_type("fentry.s")
                .map(|p| p.how_it_runs_with(Some("__x64_sys_socket"), Some(Trigger::Socket))),
            Some(
                "attach to __x64_sys_socket, trigger: socket(AF_UNIX, SOCK_DGRAM); sleepable"
                    .into()
            )
        );
        assert_eq!(
            RunMode::AttachTrigger(Attach::BtfTarget, Trigger::Getpid).to_string(),
            "attach to its BTF target, trigger: getpid()"
        );
        // Words, never the Rust names of the variants.
        for p in PROG_TYPES {
            let w = p.how_it_runs(None);
            for debug in [
                "TestRun", "Attach", "Trigger", "Btf", "Perf", "Getpid", "Spin", "LoadOnly",
            ] {
                assert!(!w.contains(debug), "{}: {w}", p.name);
            }
        }
    }
}
