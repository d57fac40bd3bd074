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
    if &head[HDRS_OFFSET..HDRS_OFFSET + HDRS.len()] != HDRS {
        return Err(not(describe_non_image(&head)));
    }
    let header = read_header(path).map_err(io_err(format!("reading {}", path.display())))?;
    match BootHeader::parse(&header).and_then(|h| h.image_len()) {
        Some(want) if meta.len() < want => Err(not(format!(
            "truncated: its boot header says the image is {want} bytes, the file has {} \
             (an interrupted copy or download?)",
            meta.len()
        ))),
        _ => Ok(()),
    }
}

/// The first bytes of an image: the boot sector and the setup header.
fn read_header(path: &Path) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    fs::File::open(path)?
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// How many bytes of an image hold the fields [`BootHeader`] reads.
const HEADER_LEN: usize = 0x268;

/// The fields of the x86 boot protocol's setup header that say how big an image is and how
/// much memory it needs to start (Documentation/arch/x86/boot.rst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootHeader {
    /// Boot protocol version, e.g. 0x20f.
    pub version: u16,
    /// 512-byte sectors of real-mode setup code after the boot sector (`setup_sects`).
    pub setup_sects: u32,
    /// The protected-mode code in 16-byte units (`syssize`, 32 bits from protocol 2.04).
    pub syssize: u32,
    /// Where the kernel wants to be loaded (`pref_address`, from 2.10).
    pub pref_address: Option<u64>,
    /// Bytes of memory the kernel needs from its load address on to decompress and start
    /// (`init_size`, from 2.10).
    pub init_size: Option<u64>,
}

impl BootHeader {
    /// The header of an image's first [`HEADER_LEN`] bytes; None without the "HdrS" magic.
    pub fn parse(b: &[u8]) -> Option<BootHeader> {
        if b.get(HDRS_OFFSET..HDRS_OFFSET + HDRS.len())? != HDRS {
            return None;
        }
        let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
        let version = u16_at(0x206)?;
        // "If this field is 0, the real value is 4."
        let setup_sects = match *b.get(0x1f1)? {
            0 => 4,
            n => u32::from(n),
        };
        let modern = version >= 0x20a;
        Some(BootHeader {
            version,
            setup_sects,
            syssize: u32_at(0x1f4)?,
            pref_address: if modern { u64_at(0x258) } else { None },
            init_size: if modern {
                u32_at(0x260).map(u64::from)
            } else {
                None
            },
        })
    }

    /// The length of the image the header describes (boot sector, setup, protected-mode
    /// code); None before protocol 2.04, whose `syssize` is 16 bits. Signed images are longer.
    pub fn image_len(&self) -> Option<u64> {
        (self.version >= 0x204)
            .then(|| (u64::from(self.setup_sects) + 1) * 512 + u64::from(self.syssize) * 16)
    }

    /// The least guest memory in which this kernel can decompress itself, in bytes: from
    /// address 0 to its load address plus `init_size` (a kernel never decompresses below its
    /// load address).
    pub fn memory_floor(&self) -> Option<u64> {
        Some(self.pref_address? + self.init_size?)
    }
}

/// The boot header of the image at `path`, if it has one.
pub fn boot_header(path: &Path) -> Option<BootHeader> {
    BootHeader::parse(&read_header(path).ok()?)
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

        // A real header (6.1's numbers) on a file cut short.
        let mut b = fake_image(HEADER_LEN);
        b[0x1f1] = 0x27;
        b[0x1f4..0x1f8].copy_from_slice(&0xd8220u32.to_le_bytes());
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        b[0x260..0x264].copy_from_slice(&0x337_8000u32.to_le_bytes());
        let h = BootHeader::parse(&b).unwrap();
        assert_eq!(h.image_len(), Some(14_184_960));
        assert_eq!(h.memory_floor(), Some(0x100_0000 + 0x337_8000));
        let cut = dir.0.join("cut");
        fs::write(&cut, &b).unwrap();
        let e = check_image(&cut).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("14184960 bytes") && e.contains("has 616"),
            "{e}"
        );
        b.resize(14_184_960 + 700, 0); // a signature after the image is fine
        fs::write(&cut, &b).unwrap();
        check_image(&cut).unwrap();
        assert_eq!(boot_header(&cut), Some(h));
        assert_eq!(BootHeader::parse(b"MZ"), None);
        // Protocols before 2.04 give no 32-bit size: nothing to compare.
        let old = fake_image(4096);
        assert_eq!(BootHeader::parse(&old).and_then(|h| h.image_len()), None);

        let e = check_image(&dir.0.join("absent")).unwrap_err();
        assert!(matches!(e, KernelError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("absent"));
        let e = check_image(&dir.0).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }
}
