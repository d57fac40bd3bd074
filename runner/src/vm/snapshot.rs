//! Saved guests for warm starts, kept in `<cache>/warm/`: one file per kernel image and guest
//! settings, `<kernel sha256 …16>-<settings sha256 …16>.vmstate`, holding a 4 KiB header (the
//! [`Key`] it was saved for, the lengths and a SHA-256 of the rest), QEMU's migration stream,
//! and the guest's console up to the save (a restored guest's report must show its boot, as a
//! cold boot's does).
//!
//! A file under the right name whose key differs (saved by another bpfcase build or another
//! QEMU) is stale; one whose hash or length is wrong is damaged: either is removed and the
//! caller boots cold. A file is written in a registered work directory inside `warm/`, then
//! renamed into place, so no reader ever sees part of one and nothing partial outlives
//! bpfcase; checking, storing and removing hold the entry's cache lock. At most [`KEEP`] files
//! stay: the least recently used go first.
//!
//! Owns: the files. Must not: start QEMU or talk to it (that is `warm`).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::kernels::{self, CacheLock};
use super::procs;

/// The directory inside the cache.
pub const DIR: &str = "warm";
/// Saved guests kept (each 65–110 MB): the default kernel set and some variants.
pub const KEEP: usize = 16;
/// The header's size; the migration stream starts right after it.
pub const HEADER: u64 = 4096;
const MAGIC: &[u8] = b"bpfcase warm guest\n";
/// The version of this file format and of the guest's ready/delivery protocol.
const FORMAT: u32 = 1;
/// A save directory older than this belongs to a process that died without removing it.
const ABANDONED: Duration = Duration::from_secs(3600);

/// Everything the saved guest depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub kernel_sha256: String,
    /// SHA-256 of the bpfcase binary: the guest's `/init` and the initramfs it builds.
    pub runner_sha256: String,
    /// The first line of `qemu-system-x86_64 --version`.
    pub qemu_version: String,
    /// The QEMU command line (accelerator, machine, memory, vCPUs, kernel command line,
    /// devices), its per-run paths replaced by placeholders.
    pub args: Vec<String>,
}

impl Key {
    /// The kernel and the settings: what a rebuild of bpfcase or QEMU leaves the same.
    pub fn file_name(&self) -> String {
        let settings = serde_json::json!([FORMAT, self.kernel_sha256, self.args]).to_string();
        let kernel = self.kernel_sha256.get(..16).unwrap_or(&self.kernel_sha256);
        format!("{kernel}-{}.vmstate", &hex(&Sha256::digest(settings))[..16])
    }
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    format: u32,
    key: Key,
    state_len: u64,
    console_len: u64,
    /// Of everything after the header.
    sha256: String,
}

/// A saved guest, checked.
pub struct Snapshot {
    pub path: PathBuf,
    /// Open, positioned at the migration stream.
    pub file: File,
    /// The console of the guest's boot, up to the save.
    pub console: Vec<u8>,
}

pub enum Lookup {
    Hit(Snapshot),
    Miss,
    /// There was one, stale or damaged (now removed): why.
    Unusable(String),
}

/// The saved guest for `key`, if there is a good one.
pub fn lookup(cache: &Path, key: &Key) -> Lookup {
    let path = cache.join(DIR).join(key.file_name());
    let _lock = kernels::warm_lock(cache, &key.file_name());
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
        Err(e) => return Lookup::Unusable(format!("{}: {e}", path.display())),
    };
    match check(&mut file, key) {
        Ok(console) => {
            // Recently used: kept longest.
            let _ = file.set_modified(SystemTime::now());
            match file.seek(SeekFrom::Start(HEADER)) {
                Ok(_) => Lookup::Hit(Snapshot {
                    path,
                    file,
                    console,
                }),
                Err(e) => Lookup::Unusable(format!("{}: {e}", path.display())),
            }
        }
        Err(why) => {
            let _ = fs::remove_file(&path);
            Lookup::Unusable(format!("{} {why}", path.display()))
        }
    }
}

/// Removes the saved guest `s` came from, unless it was replaced since.
pub fn forget(cache: &Path, s: &Snapshot) {
    use std::os::unix::fs::MetadataExt;
    let Some(name) = s.path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let _lock = kernels::warm_lock(cache, &name);
    let same = |a: fs::Metadata, b: fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    if let (Ok(a), Ok(b)) = (fs::metadata(&s.path), s.file.metadata()) {
        if same(a, b) {
            let _ = fs::remove_file(&s.path);
        }
    }
}

/// The console, when the header and the rest agree with `key`; else what is wrong.
fn check(file: &mut File, key: &Key) -> Result<Vec<u8>, String> {
    let mut head = vec![0u8; HEADER as usize];
    file.read_exact(&mut head)
        .map_err(|_| "is damaged: shorter than its header")?;
    let h = parse_header(&head).ok_or("is damaged: no valid header")?;
    if h.format != FORMAT {
        return Err(format!(
            "is stale: format {} (this bpfcase writes {FORMAT})",
            h.format
        ));
    }
    if h.key.runner_sha256 != key.runner_sha256 {
        return Err("is stale: another bpfcase build saved it".into());
    }
    if h.key.qemu_version != key.qemu_version {
        return Err(format!("is stale: saved with {}", h.key.qemu_version));
    }
    if h.key != *key {
        return Err("is stale: saved for other guest settings".into());
    }
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let want = HEADER + h.state_len + h.console_len;
    if len != want {
        return Err(format!("is damaged: {len} bytes, its header says {want}"));
    }
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut tail = Vec::new();
    let mut at = HEADER;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot be read: {e}"))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        let console_from = (HEADER + h.state_len).saturating_sub(at) as usize;
        if console_from < n {
            tail.extend_from_slice(&buf[console_from..n]);
        }
        at += n as u64;
    }
    if hex(&sha.finalize()) != h.sha256 {
        return Err("is damaged: its contents do not match their SHA-256".into());
    }
    Ok(tail)
}

fn parse_header(head: &[u8]) -> Option<Header> {
    let body = head.strip_prefix(MAGIC)?;
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    serde_json::from_slice(&body[..end]).ok()
}

fn encode_header(h: &Header) -> Option<Vec<u8>> {
    let mut v = MAGIC.to_vec();
    v.extend(serde_json::to_vec(h).ok()?);
    if v.len() >= HEADER as usize {
        return None;
    }
    v.resize(HEADER as usize, 0);
    Some(v)
}

/// A guest being saved: the file QEMU writes its state into, in a work directory of its own.
pub struct Pending {
    cache: PathBuf,
    key: Key,
    file: File,
    tmp: PathBuf,
    _dir: procs::WorkDir,
    _saving: CacheLock,
}

impl Pending {
    /// Starts saving a guest for `key`; None when another process is saving one for it now.
    pub fn begin(cache: &Path, key: &Key) -> Result<Option<Pending>, String> {
        let Some(saving) =
            kernels::try_warm_save(cache, &key.file_name()).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let warm = cache.join(DIR);
        fs::create_dir_all(&warm).map_err(|e| format!("creating {}: {e}", warm.display()))?;
        sweep(&warm);
        let dir = procs::work_dir(".save-", Some(&warm))
            .map_err(|e| format!("creating a directory in {}: {e}", warm.display()))?;
        let tmp = dir.path().join(key.file_name());
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        file.seek(SeekFrom::Start(HEADER))
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(Some(Pending {
            cache: cache.to_path_buf(),
            key: key.clone(),
            file,
            tmp,
            _dir: dir,
            _saving: saving,
        }))
    }

    /// The file QEMU writes the migration stream into (from the current offset).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Adds the console and the header, moves the file into place, and keeps at most
    /// [`KEEP`]; the path and its size.
    pub fn finish(mut self, console: &[u8]) -> Result<(PathBuf, u64), String> {
        let err = |e: io::Error| format!("{}: {e}", self.tmp.display());
        let end = self.file.seek(SeekFrom::End(0)).map_err(err)?;
        let state_len = end.saturating_sub(HEADER);
        if state_len == 0 {
            return Err("QEMU wrote no state".into());
        }
        self.file.write_all(console).map_err(err)?;
        self.file.seek(SeekFrom::Start(HEADER)).map_err(err)?;
        let mut sha = Sha256::new();
        io::copy(&mut self.file, &mut sha).map_err(err)?;
        let h = Header {
            format: FORMAT,
            key: self.key.clone(),
            state_len,
            console_len: console.len() as u64,
            sha256: hex(&sha.finalize()),
        };
        let head = encode_header(&h).ok_or("the snapshot header does not fit")?;
        self.file.seek(SeekFrom::Start(0)).map_err(err)?;
        self.file.write_all(&head).map_err(err)?;
        let path = self.cache.join(DIR).join(self.key.file_name());
        {
            let _lock = kernels::warm_lock(&self.cache, &self.key.file_name());
            fs::rename(&self.tmp, &path)
                .map_err(|e| format!("moving it to {}: {e}", path.display()))?;
        }
        prune(&self.cache, KEEP);
        Ok((path, HEADER + state_len + console.len() as u64))
    }
}

/// Removes the least recently used saved guests beyond `keep`.
fn prune(cache: &Path, keep: usize) {
    let mut files: Vec<(SystemTime, PathBuf)> = fs::read_dir(cache.join(DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".vmstate"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for (_, p) in files.into_iter().take(excess) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let _lock = name.map(|n| kernels::warm_lock(cache, &n));
        let _ = fs::remove_file(&p);
    }
}

/// Removes save directories left by processes that died while saving.
fn sweep(warm: &Path) {
    for e in fs::read_dir(warm).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED);
        if old && e.file_name().to_string_lossy().starts_with(".save-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(runner: &str) -> Key {
        Key {
            kernel_sha256: "ab".repeat(32),
            runner_sha256: runner.into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
            args: vec!["-m".into(), "512M".into()],
        }
    }

    /// Saves `state` as QEMU would write it.
    fn save(cache: &Path, k: &Key, state: &[u8], console: &[u8]) -> PathBuf {
        let p = Pending::begin(cache, k).unwrap().unwrap();
        p.file().write_all(state).unwrap();
        p.finish(console).unwrap().0
    }

    fn hit(l: Lookup) -> Snapshot {
        match l {
            Lookup::Hit(s) => s,
            Lookup::Miss => panic!("a miss"),
            Lookup::Unusable(w) => panic!("unusable: {w}"),
        }
    }

    fn unusable(l: Lookup) -> String {
        match l {
            Lookup::Unusable(w) => w,
            _ => panic!("not unusable"),
        }
    }

    #[test]
    fn saved_then_found_with_console_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("r1");
        assert!(matches!(lookup(dir.path(), &k), Lookup::Miss));
        let path = save(dir.path(), &k, b"QEVM state", b"[ 0.1] boot\n");
        assert_eq!(path, dir.path().join(DIR).join(k.file_name()));
        let mut s = hit(lookup(dir.path(), &k));
        assert_eq!(s.console, b"[ 0.1] boot\n");
        let mut rest = String::new();
        s.file.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "QEVM state[ 0.1] boot\n");
        // Nothing else is left in the directory (the save directory is gone).
        let names: Vec<_> = fs::read_dir(dir.path().join(DIR))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(names.len(), 1);
        // Another guest setting: another file; another build: the same file, stale.
        let mut other = k.clone();
        other.args.push("-smp".into());
        assert_ne!(other.file_name(), k.file_name());
        assert_eq!(key("r2").file_name(), k.file_name());
        let w = unusable(lookup(dir.path(), &key("r2")));
        assert!(w.contains("another bpfcase build"), "{w}");
        assert!(!path.exists(), "a stale guest is removed");
    }

    #[test]
    fn damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("r1");
        let path = save(dir.path(), &k, &[7u8; 3 << 20], b"console");
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER as usize + (2 << 20)] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(unusable(lookup(dir.path(), &k)).contains("SHA-256"));
        let path = save(dir.path(), &k, b"state", b"");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(unusable(lookup(dir.path(), &k)).contains("its header says"));
        fs::write(&path, b"garbage").unwrap();
        assert!(unusable(lookup(dir.path(), &k)).contains("shorter than its header"));
        fs::write(&path, vec![b'x'; 5000]).unwrap();
        assert!(unusable(lookup(dir.path(), &k)).contains("no valid header"));
    }

    #[test]
    fn one_saver_at_a_time_and_forget_spares_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("r1");
        let first = Pending::begin(dir.path(), &k).unwrap().unwrap();
        assert!(Pending::begin(dir.path(), &k).unwrap().is_none());
        first.file().write_all(b"one").unwrap();
        first.finish(b"").unwrap();
        let s = hit(lookup(dir.path(), &k));
        save(dir.path(), &k, b"two", b"");
        forget(dir.path(), &s);
        assert!(matches!(lookup(dir.path(), &k), Lookup::Hit(_)));
        let s = hit(lookup(dir.path(), &k));
        forget(dir.path(), &s);
        assert!(matches!(lookup(dir.path(), &k), Lookup::Miss));
        let empty = Pending::begin(dir.path(), &k).unwrap().unwrap();
        assert!(empty.finish(b"").unwrap_err().contains("no state"));
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..3 {
            let mut k = key("r1");
            k.args.push(i.to_string());
            paths.push(save(dir.path(), &k, b"s", b""));
            let t = SystemTime::now() - Duration::from_secs(100 - i);
            File::options()
                .write(true)
                .open(&paths[i as usize])
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune(dir.path(), 2);
        assert!(!paths[0].exists() && paths[1].exists() && paths[2].exists());
    }
}
