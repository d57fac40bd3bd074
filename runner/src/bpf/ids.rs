//! The kernel's BPF objects by id, system-wide: what tests walk to see that nothing leaked.

use libbpf_sys as sys;

use super::Errno;

/// Kinds of kernel BPF objects that have ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Prog,
    Map,
    Btf,
    Link,
}

/// The ids of every kernel BPF object of a kind, system-wide (BPF_*_GET_NEXT_ID; needs
/// CAP_SYS_ADMIN). Objects freed while the walk runs may be missed, which a caller comparing
/// two walks allows for.
pub fn object_ids(kind: ObjectKind) -> Result<Vec<u32>, Errno> {
    let next = match kind {
        ObjectKind::Prog => sys::bpf_prog_get_next_id,
        ObjectKind::Map => sys::bpf_map_get_next_id,
        ObjectKind::Btf => sys::bpf_btf_get_next_id,
        ObjectKind::Link => sys::bpf_link_get_next_id,
    };
    let mut ids = Vec::new();
    let mut id = 0u32;
    loop {
        let mut n = 0u32;
        // SAFETY: `n` is a valid u32 the call writes the next id into.
        let ret = unsafe { next(id, &mut n) };
        if ret < 0 {
            let e = Errno::from_ret(ret);
            return if e.0 == libc::ENOENT { Ok(ids) } else { Err(e) };
        }
        ids.push(n);
        id = n;
    }
}
