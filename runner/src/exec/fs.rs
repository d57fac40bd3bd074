//! The kernel filesystems cases need (tracefs for tracepoint ids, debugfs, bpffs, securityfs):
//! what is not mounted is mounted in a private mount namespace of the calling thread, so that
//! a result depends on the kernel, not on what the host happens to have mounted, and the host's
//! own view of the system stays as it was.
//!
//! Owns: reading the mount table, unsharing the mount namespace, mounting. Must not: change
//! any mount the host can see.

use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::bpf::Errno;

/// A kernel filesystem a case may need: (filesystem type, where it is mounted).
pub struct KernelFs {
    pub fstype: &'static str,
    pub target: &'static str,
}

/// Every kernel filesystem the runner provides, host and guest alike.
pub const KERNEL_FS: &[KernelFs] = &[
    KernelFs {
        fstype: "bpf",
        target: "/sys/fs/bpf",
    },
    KernelFs {
        fstype: "debugfs",
        target: "/sys/kernel/debug",
    },
    KernelFs {
        fstype: "tracefs",
        target: "/sys/kernel/tracing",
    },
    KernelFs {
        fstype: "securityfs",
        target: "/sys/kernel/security",
    },
];

/// Whether each kernel filesystem is there: mounted before, or mounted now; else the errno
/// of the attempt (ENODEV: the kernel lacks it; EPERM: the environment forbids mounting).
#[derive(Clone, Debug, Default)]
pub struct Mounts {
    failed: Vec<(&'static str, Errno)>,
}

impl Mounts {
    /// Why filesystem `fstype` is not available, if it is not.
    pub fn missing(&self, fstype: &str) -> Option<Errno> {
        self.failed
            .iter()
            .find(|(f, _)| *f == fstype)
            .map(|(_, e)| *e)
    }
}

/// Mounts what is missing. The first time a filesystem is missing, the calling thread moves to
/// a private mount namespace (mounts made there never propagate to the host); the thread's
/// later calls, and the processes it forks, see the same namespace.
pub fn ensure() -> Mounts {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let missing: Vec<&KernelFs> = KERNEL_FS.iter().filter(|fs| !mounted(&table, fs)).collect();
    let mut out = Mounts::default();
    if missing.is_empty() {
        return out;
    }
    if let Err(e) = private_namespace() {
        out.failed = missing.iter().map(|fs| (fs.fstype, e)).collect();
        return out;
    }
    for fs in missing {
        if let Err(e) = mount_one(fs) {
            out.failed.push((fs.fstype, e));
        }
    }
    out
}

/// Mounts `fs` where it belongs (creating the directory if needed); no namespace games: the
/// guest's init uses this directly.
pub fn mount_one(fs: &KernelFs) -> Result<(), Errno> {
    mount_at(fs.fstype, fs.target)
}

/// Mounts a filesystem of type `fstype` at `target` (made if missing), nosuid, nodev, noexec.
fn mount_at(fstype: &str, target: &str) -> Result<(), Errno> {
    let _ = std::fs::create_dir_all(target);
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(Errno::from)
}

/// Mounts a filesystem of type `fstype` at `target` in a mount namespace private to the calling
/// thread (a new one: mounts made there never reach the host).
pub(super) fn mount_private(fstype: &str, target: &str) -> Result<(), Errno> {
    private_namespace()?;
    mount_at(fstype, target)
}

/// A mount namespace of this thread's own, with every mount private to it.
fn private_namespace() -> Result<(), Errno> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Errno(e as i32))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Errno(e as i32))
}

/// Whether `/proc/self/mountinfo` text has `fs` mounted at its target.
fn mounted(mountinfo: &str, fs: &KernelFs) -> bool {
    mountinfo.lines().any(|line| {
        // `id parent major:minor root mount-point options... - fstype source super-options`
        let mut fields = line.split(' ');
        let point = fields.nth(4);
        let fstype = line.split(" - ").nth(1).and_then(|r| r.split(' ').next());
        point.is_some_and(|p| Path::new(&unescape(p)) == Path::new(fs.target))
            && fstype == Some(fs.fstype)
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:10 - bpf bpf rw,mode=700
40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:17 - tracefs tracefs rw
41 1 0:40 / /mnt/a\\040b rw - tmpfs none rw
";

    #[test]
    fn reads_the_mount_table() {
        let fs = |fstype, target| KernelFs { fstype, target };
        assert!(mounted(TABLE, &fs("bpf", "/sys/fs/bpf")));
        assert!(mounted(TABLE, &fs("tracefs", "/sys/kernel/tracing")));
        assert!(!mounted(TABLE, &fs("debugfs", "/sys/kernel/debug")));
        // The type must match too: a tmpfs on the mount point is not tracefs.
        assert!(!mounted(TABLE, &fs("tracefs", "/sys")));
        assert!(mounted(TABLE, &fs("tmpfs", "/mnt/a b")));
        assert!(!mounted("", &fs("bpf", "/sys/fs/bpf")));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/tail\\04"), "/tail\\04");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
