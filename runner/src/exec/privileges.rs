//! Privileges in the exec layer: the up-front check of host mode (does this process hold what
//! the suite needs, and what does the kernel say to a tiny map create?), and the rules that
//! keep a missing privilege from being recorded as a kernel fact: a load the verifier refused
//! because CAP_PERFMON is missing is `refused`, not `rejected`.
//!
//! Owns: the message a user sees, and which verifier answers depend on CAP_PERFMON. Must not:
//! read capabilities itself (that is `bpf::privileges`).

use std::fmt;

use super::Stop;
use crate::bpf::privileges::{self, Cap, Privileges, HOST_NEEDS};
use crate::bpf::{self, Errno};
use crate::case::MapSpec;

/// The exit status of a host-mode command that lacks privileges (0 ok, 1 an expectation failed
/// or the runner failed, 2 bad input).
pub const EXIT_MISSING_PRIVILEGES: u8 = 3;

/// Why this process cannot run cases on the running kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingPrivileges {
    /// What to grant (CAP_SYS_ADMIN alone on kernels before 5.8); empty when the process holds
    /// every capability and the kernel refuses BPF all the same.
    pub missing: Vec<Cap>,
    pub privileges: Privileges,
    /// The answer to a one-element array map create.
    pub probe: Result<(), Errno>,
}

/// Whether this process may run the suite on the running kernel: its capabilities, then a
/// tiny map create. A kernel without BPF (ENOSYS) is no privilege problem: its observations
/// say so.
pub fn check_privileges() -> Result<(), MissingPrivileges> {
    diagnose(Privileges::current(), bpf::probe_bpf())
}

/// Why the running kernel cannot serve as a test kernel here, if it cannot: the first line of
/// the missing privileges, or the kernel refusing a map create (no BPF). For tests that need
/// the host, to ignore themselves with the reason.
pub fn host_unavailable() -> Option<String> {
    if let Err(e) = check_privileges() {
        let e = e.to_string();
        return Some(e.lines().next().unwrap_or_default().to_string());
    }
    bpf::probe_bpf().err().map(|e| {
        format!(
            "this kernel refuses BPF_MAP_CREATE ({}): no BPF here",
            e.name()
        )
    })
}

fn diagnose(privileges: Privileges, probe: Result<(), Errno>) -> Result<(), MissingPrivileges> {
    let missing = privileges.missing(HOST_NEEDS);
    if missing.is_empty() && !probe.is_err_and(is_permission) {
        return Ok(());
    }
    Err(MissingPrivileges {
        missing,
        privileges,
        probe,
    })
}

impl fmt::Display for MissingPrivileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.privileges;
        let probe = match self.probe {
            Ok(()) => "worked".to_string(),
            Err(e) => format!("failed with {}", e.name()),
        };
        let needs = if p.knows(Cap::Bpf) {
            format!("{}, or CAP_SYS_ADMIN", privileges::names(HOST_NEEDS))
        } else {
            "CAP_SYS_ADMIN (the kernel predates CAP_BPF and CAP_PERFMON, 5.8)".to_string()
        };
        if self.missing.is_empty() {
            write!(
                f,
                "the kernel refuses BPF to this process (a test map create {probe}) although it \
                 holds {needs}: a security module, seccomp filter or container policy forbids \
                 BPF here."
            )?;
        } else {
            writeln!(
                f,
                "this process lacks {}: running cases on the running kernel needs {needs} \
                 (effective capabilities: {:#x}).",
                privileges::names(&self.missing),
                p.effective
            )?;
            if !p.capable(Cap::Bpf) {
                match p.unprivileged_bpf_disabled {
                    Some(0) => writeln!(
                        f,
                        "kernel.unprivileged_bpf_disabled=0 allows plain maps without CAP_BPF (a \
                         test map create {probe}), not the BTF, task storage maps and programs \
                         the cases need."
                    )?,
                    Some(n) => writeln!(
                        f,
                        "kernel.unprivileged_bpf_disabled={n}: without CAP_BPF the kernel refuses \
                         all of BPF (a test map create {probe})."
                    )?,
                    None => writeln!(f, "A test map create {probe}.")?,
                }
            }
        }
        write!(
            f,
            "Run it as root, or boot kernels in QEMU with `bpfcase vm --kernel …`, which needs \
             no privileges."
        )
    }
}

impl std::error::Error for MissingPrivileges {}

/// An errno that says "not allowed" rather than "not there".
pub(super) fn is_permission(e: Errno) -> bool {
    e.0 == libc::EPERM || e.0 == libc::EACCES
}

/// After a failed map create: whether the kernel knows the map type, or why the environment
/// is the answer — EPERM, a probe that was itself refused, or a probe's "no" where the process
/// lacks what the map type needs (libbpf's probe also says "no" to a refused create).
pub(super) fn map_type_known(
    p: &Privileges,
    m: &MapSpec,
    e: Errno,
    probe: impl FnOnce() -> Result<bool, Errno>,
) -> Result<bool, Stop> {
    let (ty, name) = (m.map_type.name, &m.name);
    let without = p.without(p.map_needs(m.map_type.id));
    if e.0 == libc::EPERM {
        return Err(Stop::Refused(
            e,
            format!("creating {ty} map `{name}`{without}"),
        ));
    }
    match probe() {
        Err(pe) if is_permission(pe) => Err(Stop::Refused(
            pe,
            format!(
                "probing map type {ty}{without} (creating map `{name}`: {})",
                e.name()
            ),
        )),
        Ok(false) if !without.is_empty() => Err(Stop::Refused(
            e,
            format!("creating {ty} map `{name}`{without} (the map type probe failed too)"),
        )),
        Ok(known) => Ok(known),
        Err(_) => Ok(false),
    }
}

/// Key verifier lines that a missing CAP_PERFMON produces by itself: helpers the kernel offers
/// only with it (`bpf_base_func_proto`: bpf_get_current_task_btf, and bpf_task_storage_get for
/// every program type since 6.16), and the rules it relaxes (`allow_ptr_leaks`,
/// `allow_uninit_stack`, `bypass_spec_v1` in kernel/bpf/verifier.c).
const PERFMON_LINES: &[&str] = &[
    "cannot use helper",
    "unknown func",
    "leaks addr",
    "pointer arithmetic",
    "pointer comparison prohibited",
    "read from stack",
];

/// Why a rejected load may be the environment's answer rather than the kernel's: None when the
/// verifier's line stands as a kernel fact with these privileges, else the missing capability
/// in words (" without CAP_PERFMON").
pub(super) fn privileged_rejection(p: &Privileges, line: &str) -> Option<String> {
    if !p.capable(Cap::Bpf) {
        // Without CAP_BPF the verifier is the unprivileged one: every rule is stricter.
        return Some(p.without(&[Cap::Bpf]));
    }
    if !p.capable(Cap::Perfmon) && PERFMON_LINES.iter().any(|l| line.contains(l)) {
        return Some(p.without(&[Cap::Perfmon]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(caps: &[Cap], unpriv: u32) -> Privileges {
        Privileges {
            effective: caps.iter().fold(0, |a, c| a | 1 << *c as u32),
            last_cap: Some(40),
            unprivileged_bpf_disabled: Some(unpriv),
        }
    }

    const EPERM: Errno = Errno(libc::EPERM);

    #[test]
    fn root_passes() {
        assert!(diagnose(Privileges::full(), Ok(())).is_ok());
        assert!(diagnose(with(&[Cap::SysAdmin], 2), Ok(())).is_ok());
        // No BPF at all is the kernel's fact, not a privilege.
        assert!(diagnose(Privileges::full(), Err(Errno(libc::ENOSYS))).is_ok());
    }

    #[test]
    fn nobody_is_told_what_to_grant_and_about_vm() {
        let e = diagnose(with(&[], 2), Err(EPERM)).unwrap_err();
        assert_eq!(e.missing, [Cap::Bpf, Cap::Perfmon, Cap::NetAdmin]);
        let m = e.to_string();
        assert!(
            m.starts_with("this process lacks CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN:"),
            "{m}"
        );
        assert!(m.contains("kernel.unprivileged_bpf_disabled=2"), "{m}");
        assert!(m.contains("a test map create failed with EPERM"), "{m}");
        assert!(m.contains("`bpfcase vm"), "{m}");
    }

    #[test]
    fn unprivileged_bpf_enabled_is_not_enough() {
        let m = diagnose(with(&[], 0), Ok(())).unwrap_err().to_string();
        assert!(m.contains("unprivileged_bpf_disabled=0"), "{m}");
        assert!(m.contains("a test map create worked"), "{m}");
    }

    #[test]
    fn perfmon_alone_is_named() {
        let e = diagnose(with(&[Cap::Bpf, Cap::NetAdmin], 2), Ok(())).unwrap_err();
        assert_eq!(e.missing, [Cap::Perfmon]);
        let m = e.to_string();
        assert!(m.starts_with("this process lacks CAP_PERFMON:"), "{m}");
        assert!(!m.contains("unprivileged_bpf_disabled"), "{m}");
    }

    #[test]
    fn refused_despite_capabilities() {
        let m = diagnose(Privileges::full(), Err(EPERM))
            .unwrap_err()
            .to_string();
        assert!(m.contains("although it holds CAP_BPF"), "{m}");
        assert!(m.contains("security module"), "{m}");
    }

    #[test]
    fn old_kernels_need_sys_admin() {
        let p = Privileges {
            last_cap: Some(37),
            ..with(&[], 1)
        };
        let e = diagnose(p, Err(EPERM)).unwrap_err();
        assert_eq!(e.missing, [Cap::SysAdmin]);
        let m = e.to_string();
        assert!(m.starts_with("this process lacks CAP_SYS_ADMIN:"), "{m}");
        assert!(
            m.contains("needs CAP_SYS_ADMIN (the kernel predates"),
            "{m}"
        );
    }

    fn task_storage() -> MapSpec {
        MapSpec {
            name: "st".into(),
            map_type: crate::tables::map_type("task_storage").expect("a table row"),
            key_size: 4,
            value_size: crate::case::ValueSize::Fixed(8),
            max_entries: 0,
            flags: 1,
            btf: false,
            preset: None,
            layout: None,
            btf_value_size: None,
        }
    }

    fn refusal(r: Result<bool, Stop>) -> Option<(Errno, String)> {
        match r {
            Err(Stop::Refused(e, what)) => Some((e, what)),
            _ => None,
        }
    }

    #[test]
    fn map_failures_that_privileges_explain() {
        let (m, nobody, root) = (task_storage(), with(&[], 2), Privileges::full());
        let einval = Errno(libc::EINVAL);
        let unasked = || -> Result<bool, Errno> { panic!("EPERM needs no probe") };
        assert_eq!(
            refusal(map_type_known(&nobody, &m, EPERM, unasked)),
            Some((
                EPERM,
                "creating task_storage map `st` without CAP_BPF".into()
            ))
        );
        // Root refused all the same: no capability to name.
        assert_eq!(
            refusal(map_type_known(&root, &m, EPERM, unasked)),
            Some((EPERM, "creating task_storage map `st`".into()))
        );
        // A BTF-less create fails with EINVAL before the permission check; the probe is refused.
        assert_eq!(
            refusal(map_type_known(&nobody, &m, einval, || Err(EPERM))),
            Some((
                EPERM,
                "probing map type task_storage without CAP_BPF (creating map `st`: EINVAL)".into()
            ))
        );
        assert!(refusal(map_type_known(&nobody, &m, einval, || Ok(false))).is_some());
        // With the privileges, the probe's answer is the kernel's.
        assert!(matches!(
            map_type_known(&root, &m, einval, || Ok(false)),
            Ok(false)
        ));
        assert!(matches!(
            map_type_known(&root, &m, einval, || Ok(true)),
            Ok(true)
        ));
        assert!(matches!(
            map_type_known(&root, &m, einval, || Err(Errno(libc::EINVAL))),
            Ok(false)
        ));
    }

    #[test]
    fn perfmon_rejections_are_refusals() {
        let p = with(&[Cap::Bpf, Cap::NetAdmin], 2);
        let helper = "program of this type cannot use helper bpf_get_current_task_btf#158";
        assert_eq!(
            privileged_rejection(&p, helper).as_deref(),
            Some(" without CAP_PERFMON")
        );
        assert!(privileged_rejection(&p, "invalid read from stack R3 off=-16 size=8").is_some());
        // A rejection that holds with every privilege stays the verifier's answer.
        let scalar = "R2 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_";
        assert_eq!(privileged_rejection(&p, scalar), None);
        assert_eq!(privileged_rejection(&Privileges::full(), helper), None);
        // Without CAP_BPF the verifier is the unprivileged one.
        assert_eq!(
            privileged_rejection(&with(&[], 0), scalar).as_deref(),
            Some(" without CAP_BPF")
        );
    }
}
