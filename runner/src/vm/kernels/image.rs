//! Kernel image files: checking that a file is a bootable x86 bzImage (naming what it is when
//! it is not), and extracting only the image from a Debian `.deb`.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{io_err, KernelError};
use crate::vm::procs;

/// The bzImage header magic and where it sits.
pub(super) const HDRS_OFFSET: usize = 0x202;
pub(super) const HDRS: &[u8; 4] = b"HdrS";

/// Checks that a file is a bootable x86 kernel image: the bzImage header magic "HdrS" at offset
/// 0x202. The error names what is wrong (missing, a directory, too short, an ELF vmlinux, a
/// .deb, compressed data, …).
pub fn check_image(path: &Path) -> Result<(), KernelError> {
    let not = |why: String| KernelError::NotAnImage {
        path: path.to_path_buf(),
        why,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KernelError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    if meta.is_dir() {
        return Err(not("it is a directory".into()));
    }
    let mut head = Vec::with_capacity(HDRS_OFFSET + HDRS.len());
    fs::File::open(path)
        .and_then(|f| {
            f.take((HDRS_OFFSET + HDRS.len()) as u64)
                .read_to_end(&mut head)
        })
        .map_err(io_err(format!("reading {}", path.display())))?;
    if head.len() < HDRS_OFFSET + HDRS.len() {
        return Err(not(format!(
            "only {} bytes, too short for a bzImage header (magic \"HdrS\" at offset 0x202)",
            head.len()
        )));
    }
    if &head[HDRS_OFFSET..HDRS_OFFSET + HDRS.len()] == HDRS {
        return Ok(());
    }
    Err(not(describe_non_image(&head)))
}

/// Why a file that lacks the bzImage magic is not an image, recognising common mistakes.
fn describe_non_image(head: &[u8]) -> String {
    let found = &head[HDRS_OFFSET..HDRS_OFFSET + HDRS.len()];
    let what = if head.starts_with(b"\x7fELF") {
        "an ELF file (an uncompressed vmlinux?), "
    } else if head.starts_with(b"!<arch>\ndebian") {
        "a .deb package (the image is inside it), "
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "gzip data, "
    } else if head.starts_with(b"\xfd7zXZ\0") {
        "xz data, "
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd data, "
    } else if head.starts_with(b"MZ") {
        "a PE file without a Linux boot header, "
    } else {
        ""
    };
    format!("{what}no bzImage header magic \"HdrS\" at offset 0x202 (found {found:02x?})")
}

/// Extracts only the kernel image from a .deb; `None` when it holds none.
pub(super) fn extract_image(deb: &Path, into: &Path) -> Result<Option<PathBuf>, KernelError> {
    fs::create_dir_all(into).map_err(io_err(format!("creating {}", into.display())))?;
    let what = format!(
        "dpkg-deb --fsys-tarfile {} | tar -x '*vmlinuz*'",
        deb.display()
    );
    let mut dpkg = procs::spawn(
        Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(deb)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .map_err(io_err("running dpkg-deb"))?;
    let Some(tar_in) = dpkg.child().stdout.take() else {
        return Err(io_err("running dpkg-deb")(io::Error::other(
            "no stdout pipe",
        )));
    };
    let tar = procs::output(
        Command::new("tar")
            .args(["-x", "--no-same-owner", "--wildcards", "-C"])
            .arg(into)
            .arg("*vmlinuz*")
            .stdin(Stdio::from(tar_in))
            .stdout(Stdio::null()),
    )
    .map_err(io_err("running tar"))?;
    // dpkg-deb's stderr is small (a message at most): read it after tar is done.
    let mut dpkg_stderr = String::new();
    if let Some(mut e) = dpkg.child().stderr.take() {
        let _ = e.read_to_string(&mut dpkg_stderr);
    }
    let dpkg_status = dpkg.wait().map_err(io_err("running dpkg-deb"))?;
    let tar_stderr = String::from_utf8_lossy(&tar.stderr).into_owned();
    if !dpkg_status.success() {
        return Err(KernelError::Apt {
            what,
            stderr: format!("{dpkg_stderr}{tar_stderr}"),
        });
    }
    let mut images = Vec::new();
    find_images(into, &mut images).map_err(io_err(format!("listing {}", into.display())))?;
    if tar.status.success() || tar_stderr.contains("Not found in archive") {
        Ok(images.into_iter().max().map(|(_, image)| image))
    } else {
        Err(KernelError::Apt {
            what,
            stderr: tar_stderr,
        })
    }
}

/// Regular files named `*vmlinuz*` under `dir`, with their sizes.
fn find_images(dir: &Path, out: &mut Vec<(u64, PathBuf)>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ty = e.file_type()?;
        if ty.is_dir() {
            find_images(&e.path(), out)?;
        } else if ty.is_file() && e.file_name().to_string_lossy().contains("vmlinuz") {
            out.push((e.metadata()?.len(), e.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{fake_image, TempDir};
    use super::*;

    #[test]
    fn check_image_on_fake_headers() {
        let dir = TempDir::new();
        let good = dir.0.join("bzImage");
        fs::write(&good, fake_image(4096)).unwrap();
        check_image(&good).unwrap();

        let short = dir.0.join("short");
        fs::write(&short, b"MZ").unwrap();
        let e = check_image(&short).unwrap_err();
        assert!(
            matches!(e, KernelError::NotAnImage { .. }) && e.to_string().contains("too short"),
            "{e}"
        );

        let elf = dir.0.join("vmlinux");
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(b"\x7fELF");
        fs::write(&elf, b).unwrap();
        let e = check_image(&elf).unwrap_err().to_string();
        assert!(
            e.contains("ELF") && e.contains("HdrS") && e.contains("vmlinux"),
            "{e}"
        );

        let deb = dir.0.join("x.deb");
        let mut b = b"!<arch>\ndebian-binary   ".to_vec();
        b.resize(4096, 0);
        fs::write(&deb, b).unwrap();
        assert!(check_image(&deb)
            .unwrap_err()
            .to_string()
            .contains(".deb package"));

        let e = check_image(&dir.0.join("absent")).unwrap_err();
        assert!(matches!(e, KernelError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("absent"));
        let e = check_image(&dir.0).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }
}
