//! Whether KVM boots guests here. `/dev/kvm` opening is not enough: some hosts accept KVM
//! guests and never run them (a nested hypervisor such as PVM), and that is known only by
//! trying, which costs the hello timeout (10 s). The verdict is measured once per machine and
//! kept in `<cache>/kvm.json`, keyed by what decides it: the host kernel release and the QEMU
//! version. A change of either measures again.
//!
//! Owns: the verdict, in this process and on disk. Must not: start guests (that is `vm`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::procs;

/// Where the verdict is kept, inside the cache directory.
pub const FILE: &str = "kvm.json";

/// What decides whether KVM boots guests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// `uname -r` of the host.
    pub host_release: String,
    /// The first line of `qemu-system-x86_64 --version`.
    pub qemu_version: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host {}, {}", self.host_release, self.qemu_version)
    }
}

/// `<cache>/kvm.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    key: Key,
    kvm_boots: bool,
}

/// The key of this machine, or None when QEMU does not say its version.
pub fn key(qemu: &Path) -> Option<Key> {
    let uts = nix::sys::utsname::uname().ok()?;
    let out = procs::output(
        Command::new(qemu)
            .arg("--version")
            .stdin(Stdio::null())
            .env("LC_ALL", "C"),
    )
    .ok()?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && out.status.success())?;
    Some(Key {
        host_release: uts.release().to_string_lossy().into_owned(),
        qemu_version: version,
    })
}

/// The kept verdict for `key`, if one was measured.
pub fn load(cache: &Path, key: &Key) -> Option<bool> {
    let text = fs::read_to_string(cache.join(FILE)).ok()?;
    let r: Record = serde_json::from_str(&text).ok()?;
    (r.key == *key).then_some(r.kvm_boots)
}

/// Keeps a verdict (written whole, then renamed: readers never see half a file).
pub fn store(cache: &Path, key: &Key, kvm_boots: bool) -> io::Result<()> {
    fs::create_dir_all(cache)?;
    let r = Record {
        key: key.clone(),
        kvm_boots,
    };
    let text = serde_json::to_string_pretty(&r).map_err(io::Error::other)? + "\n";
    let tmp = cache.join(format!(".{FILE}.{}", std::process::id()));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, cache.join(FILE))
}

/// What this process knows: looked up once, then updated by what guests show.
struct State {
    key: Option<Key>,
    kvm_boots: Option<bool>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// How the next guest starts when no accelerator was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// KVM is known not to boot guests here, or there is no usable /dev/kvm.
    Tcg,
    /// Try KVM within the hello timeout (it booted guests here before, or nobody knows yet).
    TryKvm,
}

/// The plan for a guest: from this process's knowledge, else the kept verdict.
pub fn plan(qemu: &Path, cache: Option<&Path>) -> Plan {
    if !super::qemu::kvm_available() {
        return Plan::Tcg;
    }
    let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let st = st.get_or_insert_with(|| {
        let key = key(qemu);
        let kvm_boots = match (&key, cache) {
            (Some(k), Some(c)) => load(c, k),
            _ => None,
        };
        State { key, kvm_boots }
    });
    match st.kvm_boots {
        Some(false) => Plan::Tcg,
        Some(true) | None => Plan::TryKvm,
    }
}

/// Records what a guest showed: KVM booted it, or KVM did not and TCG then did (a kernel that
/// boots under neither says nothing about KVM). Returns a note for the user when the verdict
/// changed, naming where it is kept.
pub fn learned(cache: Option<&Path>, kvm_boots: bool) -> Option<String> {
    let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let st = st.as_mut()?;
    if st.kvm_boots == Some(kvm_boots) {
        return None;
    }
    st.kvm_boots = Some(kvm_boots);
    let kept: Option<PathBuf> = match (&st.key, cache) {
        (Some(k), Some(c)) => store(c, k, kvm_boots).ok().map(|()| c.join(FILE)),
        _ => None,
    };
    let where_ = match (&st.key, kept) {
        (Some(k), Some(p)) => format!(" (kept in {} for {k})", p.display()),
        _ => String::new(),
    };
    Some(if kvm_boots {
        format!("KVM boots guests here{where_}")
    } else {
        format!("KVM accepted the guest but did not start it, TCG did: guests use TCG here{where_}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_kept_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let k = Key {
            host_release: "6.18.0".into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
        };
        assert_eq!(load(&cache, &k), None);
        store(&cache, &k, false).unwrap();
        assert_eq!(load(&cache, &k), Some(false));
        let text = fs::read_to_string(cache.join(FILE)).unwrap();
        assert!(text.contains("\"kvm_boots\": false"), "{text}");
        // Another host kernel or another QEMU: not known.
        let other_host = Key {
            host_release: "6.19.0".into(),
            ..k.clone()
        };
        assert_eq!(load(&cache, &other_host), None);
        let other_qemu = Key {
            qemu_version: "QEMU emulator version 9.0".into(),
            ..k.clone()
        };
        assert_eq!(load(&cache, &other_qemu), None);
        store(&cache, &k, true).unwrap();
        assert_eq!(load(&cache, &k), Some(true));
        // No stray temporary files; a damaged file is no verdict.
        let names: Vec<_> = fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        fs::write(cache.join(FILE), "{").unwrap();
        assert_eq!(load(&cache, &k), None);
    }

    #[test]
    fn key_from_a_qemu_that_says_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'QEMU emulator version 1.2.3 (test)'\necho 'Copyright'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the script was open makes exec fail with ETXTBSY
        // for a moment: try again.
        let k = (0..50)
            .find_map(|_| {
                key(&fake).or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .unwrap();
        assert_eq!(k.qemu_version, "QEMU emulator version 1.2.3 (test)");
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(k.host_release, release.trim());
        assert_eq!(key(&dir.path().join("absent")), None);
    }
}
