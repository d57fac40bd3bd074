//! Kernel supply for QEMU guests: which kernel image a guest boots, and getting it onto disk.
//!
//! Owns: parsing `--kernel` specs ([`KernelSpec`]: `host`, a path to a bzImage/vmlinuz, or
//! `debian:<series>`), the kernel manifest (`kernels.json`: the default set and exact pins,
//! [`Manifest`]), fetching Debian kernels with apt into a cache ([`cache_dir`], [`resolve()`]), and
//! checking that a file is a bootable x86 image ([`check_image`]). Debian kernels come from the
//! mirror named in the machine's apt configuration; apt runs against a private state directory
//! inside the cache. With a pin whose image is cached, [`resolve()`] runs no apt at all (offline).
//!
//! Must not: start QEMU, build initramfs images, need root, or modify the system's apt state.
//!
//! Submodules: `spec` (the `--kernel` syntax), `manifest` (`kernels.json`), `resolve` (a spec to
//! an image), `sources` (the machine's apt sources, the private sources list), `apt` (the private
//! apt state), `packages` (parsing apt-cache output), `cache` (layout, meta.json, sha256),
//! `lock` (flock on the shared cache: several bpfcase processes may use one), `image` (bzImage
//! checks and extraction from a .deb). apt, dpkg and tar run as registered children
//! (`vm::procs`): they die with bpfcase.

mod apt;
mod cache;
mod image;
mod lock;
mod manifest;
mod packages;
mod resolve;
mod sources;
mod spec;

use std::io;
use std::path::PathBuf;

pub use cache::cache_dir;
pub use image::{boot_header, check_image, BootHeader};
pub(crate) use lock::{try_warm_save, warm as warm_lock, CacheLock};
pub use manifest::{Manifest, Pin};
pub use resolve::resolve;
pub use spec::KernelSpec;

use sources::APT_ETC;

/// A kernel image ready to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub image: PathBuf,
    /// Exactly what this is, for reports: "debian:6.1 =
    /// linux-image-6.1.0-56-cloud-amd64-unsigned 6.1.192-2" or "path/to/bzImage (sha256 …16
    /// hex…)".
    pub origin: String,
    /// The Debian package and its version, for a Debian kernel.
    pub package: Option<(String, String)>,
    /// SHA-256 of the image, in hex.
    pub image_sha256: String,
    /// Non-fatal notes, e.g. "pinned linux-image-… 6.1.190-1 is no longer in the archive; using
    /// linux-image-… 6.1.192-2".
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("bad kernel spec {spec:?}: {why}")]
    BadSpec { spec: String, why: String },
    #[error("{}: not a bootable x86 kernel image: {why}", path.display())]
    NotAnImage { path: PathBuf, why: String },
    #[error("kernel image {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error(
        "no Debian cloud-amd64 kernel package for series {series}; the archive has {}",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    UnknownSeries {
        series: String,
        available: Vec<String>,
    },
    #[error("{what} failed: {}", if stderr.trim().is_empty() { "(no message)" } else { stderr.trim() })]
    Apt { what: String, stderr: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("kernel manifest {}: {why}", path.display())]
    Manifest { path: PathBuf, why: String },
    #[error(
        "no Debian archive mirror in the apt configuration ({APT_ETC}/sources.list, \
         {APT_ETC}/sources.list.d/*.list, *.sources): need a deb source with a suite such as bookworm"
    )]
    NoMirror,
    #[error("{package} {version} contains no vmlinuz, and neither does any linux-binary package it depends on")]
    NoImage { package: String, version: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> KernelError {
    let what = what.into();
    move |source| KernelError::Io { what, source }
}

#[cfg(test)]
mod test_util {
    use std::path::PathBuf;

    use super::image::{HDRS, HDRS_OFFSET};

    /// A fresh directory under the system temp dir (its path, and the guard that removes it).
    pub(super) struct TempDir(pub(super) PathBuf, #[allow(dead_code)] tempfile::TempDir);
    impl TempDir {
        pub(super) fn new() -> TempDir {
            let d = tempfile::Builder::new()
                .prefix("bpfcase-kernels-test-")
                .tempdir()
                .unwrap();
            TempDir(d.path().to_path_buf(), d)
        }
    }

    pub(super) fn fake_image(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0] = b'M';
        b[1] = b'Z';
        b[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(HDRS);
        b
    }
}
