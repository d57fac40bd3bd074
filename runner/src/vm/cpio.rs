//! An initramfs built in memory, in the kernel's "newc" cpio format (magic `070701`, see the
//! kernel's `Documentation/driver-api/early-userspace/buffer-format.rst`), without root.
//!
//! Owns: the byte layout of the archive. Must not: touch the filesystem, run tools, or read the
//! clock — owners are 0:0, mtimes 0 and inodes count from 1, so the same calls always give a
//! byte-identical archive.

use std::fmt::Write as _;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;
const TRAILER: &str = "TRAILER!!!";

/// A newc archive under construction. Entries are written in call order, so a directory must be
/// added before the entries inside it.
#[derive(Clone, Debug)]
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    pub fn new() -> Self {
        Archive {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory, `S_IFDIR | mode`.
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.entry(path, S_IFDIR | (mode & 0o7777), 2, [0, 0], &[]);
    }

    /// A regular file, `S_IFREG | mode`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, S_IFREG | (mode & 0o7777), 1, [0, 0], data);
    }

    /// A character device node, `S_IFCHR | mode`, with `major:minor` in the rdev fields.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | (mode & 0o7777), 1, [major, minor], &[]);
    }

    /// A symbolic link (mode 0777) whose data is `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, [0, 0], target.as_bytes());
    }

    /// Appends the `TRAILER!!!` entry and pads the archive to a multiple of 512 bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.push(0, 0, 1, [0, 0], TRAILER, &[]);
        self.bytes.resize(self.bytes.len().next_multiple_of(512), 0);
        self.bytes
    }

    /// # Panics
    /// On an empty path (after stripping `/` at either end), a NUL in it, or data over 4 GiB.
    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: [u32; 2], data: &[u8]) {
        let name = path.trim_matches('/');
        let ok = !name.is_empty() && !name.contains('\0') && name != TRAILER;
        assert!(ok, "bad cpio path {path:?}");
        self.next_ino += 1;
        self.push(self.next_ino - 1, mode, nlink, rdev, name, data);
    }

    /// One header + name + data; the archive is 4-aligned before and after.
    fn push(&mut self, ino: u32, mode: u32, nlink: u32, rdev: [u32; 2], name: &str, data: &[u8]) {
        let filesize = u32::try_from(data.len()).expect("cpio newc entries are limited to 4 GiB");
        let namesize = u32::try_from(name.len() + 1).expect("cpio name too long");
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdev[0], rdev[1], namesize, 0,
        ];
        let mut header = String::from("070701");
        for field in fields {
            write!(header, "{field:08X}").expect("writing to a String cannot fail");
        }
        let out = &mut self.bytes;
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// (header offset, name, mode, data) of every entry, walking the archive like the kernel.
    fn entries(bytes: &[u8]) -> Vec<(usize, String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(&bytes[pos..pos + 6], b"070701", "magic at {pos}");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&bytes[pos + 6 + 8 * i..pos + 14 + 8 * i]).unwrap();
                usize::from_str_radix(hex, 16).unwrap()
            };
            let (mode, filesize, namesize) = (field(1) as u32, field(6), field(11));
            let name = &bytes[pos + 110..pos + 110 + namesize];
            assert_eq!(name.last(), Some(&0));
            let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
            let data_at = (pos + 110 + namesize).next_multiple_of(4);
            let data = bytes[data_at..data_at + filesize].to_vec();
            out.push((pos, name.clone(), mode, data));
            pos = (data_at + filesize).next_multiple_of(4);
            if name == TRAILER {
                assert!(
                    bytes[pos..].iter().all(|&b| b == 0),
                    "zeros after the trailer"
                );
                return out;
            }
        }
    }

    fn sample() -> Vec<u8> {
        let mut a = Archive::new();
        a.dir("/dev", 0o755);
        a.char_dev("dev/console", 0o600, 5, 1);
        a.dir("bin", 0o755);
        a.file("bin/init", 0o755, b"#!/bin/sh\necho hi\n");
        a.file("empty", 0o644, b"");
        a.symlink("init", "bin/init");
        a.finish()
    }

    #[test]
    fn tiny_archive_exact_bytes() {
        let mut a = Archive::new();
        a.dir("d", 0o755);
        a.file("d/f", 0o644, b"hi");
        let z = "00000000";
        // dir: ino 1, mode 040755, nlink 2, namesize 2; 110 + 2 = 112 needs no padding.
        let dir = format!("07070100000001000041ED{z}{z}00000002{z}{z}{z}{z}{z}{z}00000002{z}d\0");
        // file: ino 2, mode 0100644, nlink 1, filesize 2, namesize 4; 114 -> 116, data 2 -> 4.
        let file =
            format!("07070100000002000081A4{z}{z}00000001{z}00000002{z}{z}{z}{z}00000004{z}");
        let file = file + "d/f\0\0\0hi\0\0";
        // trailer: ino 0, mode 0, nlink 1, namesize 11; 121 -> 124.
        let end = format!("070701{z}{z}{z}{z}00000001{z}{z}{z}{z}{z}{z}0000000B{z}TRAILER!!!\0");
        let mut want = [dir, file, end, "\0\0\0".into()].concat().into_bytes();
        assert_eq!(want.len(), 112 + 120 + 124);
        want.resize(512, 0);
        assert_eq!(a.finish(), want);
    }

    #[test]
    fn deterministic() {
        assert_eq!(sample(), sample());
        assert_eq!(Archive::new().finish(), Archive::default().finish());
    }

    #[test]
    fn headers_aligned_and_trailer_last() {
        let bytes = sample();
        assert_eq!(bytes.len() % 512, 0);
        let all = entries(&bytes);
        assert!(all.iter().all(|(pos, ..)| pos % 4 == 0));
        let names: Vec<&str> = all.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(
            names.join(","),
            "dev,dev/console,bin,bin/init,empty,init,TRAILER!!!"
        );
        let modes: Vec<u32> = all.iter().map(|e| e.2).collect();
        let want = [0o40755, 0o20600, 0o40755, 0o100755, 0o100644, 0o120777, 0];
        assert_eq!(modes, want);
        assert_eq!(all[3].3, b"#!/bin/sh\necho hi\n");
        assert_eq!(all[5].3, b"bin/init");
        let rdev = &bytes[all[1].0 + 6 + 8 * 9..][..16];
        assert_eq!(rdev, b"0000000500000001", "rdev 5:1");
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bpfcase-cpio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        dir
    }

    fn cpio(args: &[&str], archive: &Path, cwd: &Path) -> String {
        let stdin = std::fs::File::open(archive).unwrap();
        let mut cmd = Command::new("cpio");
        let out = cmd
            .args(args)
            .current_dir(cwd)
            .stdin(stdin)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cpio {args:?}: {err}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn gnu_cpio_reads_it() {
        let present = Command::new("cpio").arg("--version").output();
        if !present.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped the cpio(1) check: no `cpio` command (apt-get install cpio)");
            return;
        }
        let dir = scratch();
        let archive = dir.join("a.cpio");
        std::fs::write(&archive, sample()).unwrap();
        let listing = cpio(&["-itv", "--quiet"], &archive, &dir);
        let lines: Vec<&str> = listing.lines().collect();
        let types: String = lines.iter().map(|l| &l[..1]).collect();
        assert_eq!(types, "dcd--l", "{listing}");
        let names = "dev,dev/console,bin,bin/init,empty,init -> bin/init".split(',');
        for (line, name) in lines.iter().zip(names) {
            assert!(line.ends_with(&format!(" {name}")), "{line}");
        }
        assert!(lines[1].starts_with("crw------- ") && lines[1].contains(" 5, "));

        // Extraction without root: no device node.
        let mut a = Archive::new();
        a.dir("d", 0o755);
        a.file("d/f", 0o640, b"payload\n");
        a.symlink("link", "d/f");
        std::fs::write(&archive, a.finish()).unwrap();
        let out = dir.join("out");
        cpio(
            &["-id", "--quiet", "--no-absolute-filenames"],
            &archive,
            &out,
        );
        assert_eq!(std::fs::read(out.join("d/f")).unwrap(), b"payload\n");
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("d/f")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
