//! Kernel facts as data: one row per map type, program type, helper and kfunc the cases can
//! name. Adding a helper to the suite means adding rows here, not code paths elsewhere.
//! Numbers are the UAPI values of `include/uapi/linux/bpf.h`.

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

/// How a program type is made to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// BPF_PROG_TEST_RUN with a context buffer (`ctx_in`).
    TestRunCtx,
}

/// A program type.
#[derive(Debug, PartialEq, Eq)]
pub struct ProgType {
    pub name: &'static str,
    /// `enum bpf_prog_type`.
    pub id: u32,
    /// Loaded with BPF_F_SLEEPABLE (SYSCALL programs must be).
    pub sleepable: bool,
    pub run: RunMode,
}

pub const PROG_TYPES: &[ProgType] = &[ProgType {
    name: "syscall",
    id: 31,
    sleepable: true,
    run: RunMode::TestRunCtx,
}];

pub fn prog_type(name: &str) -> Option<&'static ProgType> {
    PROG_TYPES.iter().find(|p| p.name == name)
}

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
    &TASK_STORAGE_GET,
    &TASK_STORAGE_DELETE,
    &GET_CURRENT_TASK_BTF,
];

pub fn helper_name(id: i32) -> Option<&'static str> {
    HELPERS.iter().find(|h| h.id == id).map(|h| h.name)
}

/// kfuncs the compiler may call; resolved by name in the kernel's BTF at load time.
pub const KFUNC_TASK_FROM_PID: &str = "bpf_task_from_pid";
pub const KFUNC_TASK_RELEASE: &str = "bpf_task_release";

/// BPF_LOCAL_STORAGE_GET_F_CREATE.
pub const LOCAL_STORAGE_GET_F_CREATE: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for m in MAP_TYPES {
            assert_eq!(map_type(m.name), Some(m));
        }
        assert_eq!(map_type("task_storage").map(|m| m.id), Some(29));
        assert_eq!(prog_type("syscall").map(|p| p.id), Some(31));
        assert_eq!(helper_name(156), Some("bpf_task_storage_get"));
        assert_eq!(helper_name(9999), None);
    }
}
