//! The kernel cache: where it is, its layout, verified entries and scratch space.
//!
//! ```text
//! <cache>/apt/sources.list            generated: the archive and security mirrors, every suite
//! <cache>/apt/apt.conf                generated: no system hooks, Packages indices only
//! <cache>/apt/lists/                  private package lists (apt-get update: ~10 s, ~80 MB)
//! <cache>/apt/cache/                  private pkgcache.bin (~110 MB) and downloads
//! <cache>/apt/updated                 stamp of the last successful apt-get update (kept 24 h)
//! <cache>/kernels/<package>_<version>/vmlinuz, meta.json   {package, version, sha256}
//! <cache>/tmp/                        downloads and extraction in progress
//! <cache>/locks/apt, <package>_<version>   flock(2) files (`lock`)
//! <cache>/kvm.json                    whether KVM boots guests here (`vm::accel`)
//! ```
//!
//! The `apt/` part belongs to the private apt state (`apt`). A cached image is re-hashed on
//! every use and fetched again when it no longer matches its `meta.json`. Entries are checked
//! and stored under their lock; downloads and extraction happen in registered work directories
//! (`vm::procs`), removed on drop and on SIGINT/SIGTERM.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::apt::LISTS_MAX_AGE;
use super::{check_image, io_err, KernelError};
use crate::vm::procs::{self, WorkDir};

/// $XDG_CACHE_HOME/bpfcase, else $HOME/.cache/bpfcase.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("bpfcase");
    }
    match var("HOME") {
        Some(home) => home.join(".cache").join("bpfcase"),
        None => std::env::temp_dir().join("bpfcase-cache"),
    }
}

/// `<cache>/kernels/<package>_<version>/meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub(super) struct Meta {
    pub(super) package: String,
    pub(super) version: String,
    pub(super) sha256: String,
}

fn entry_dir(cache: &Path, package: &str, version: &str) -> PathBuf {
    cache.join("kernels").join(format!("{package}_{version}"))
}

/// A verified cached image; `Err(why)` when the entry exists but is damaged.
fn cached(cache: &Path, package: &str, version: &str) -> Result<Option<PathBuf>, String> {
    let dir = entry_dir(cache, package, version);
    if !dir.exists() {
        return Ok(None);
    }
    let image = dir.join("vmlinuz");
    let text = fs::read_to_string(dir.join("meta.json")).map_err(|e| format!("meta.json: {e}"))?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| format!("meta.json: {e}"))?;
    if meta.package != package || meta.version != version {
        return Err(format!("meta.json names {} {}", meta.package, meta.version));
    }
    let sha = sha256_file(&image).map_err(|e| format!("vmlinuz: {e}"))?;
    if sha != meta.sha256 {
        return Err(format!(
            "vmlinuz has sha256 {sha}, meta.json records {}",
            meta.sha256
        ));
    }
    check_image(&image).map_err(|e| e.to_string())?;
    Ok(Some(image))
}

/// [`cached`], turning a damaged entry into a warning and removing it.
pub(super) fn cached_checked(
    cache: &Path,
    package: &str,
    version: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<PathBuf>, KernelError> {
    match cached(cache, package, version) {
        Ok(found) => Ok(found),
        Err(why) => {
            warnings.push(format!(
                "cached {package} {version} is damaged ({why}); fetching it again"
            ));
            let dir = entry_dir(cache, package, version);
            fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
            Ok(None)
        }
    }
}

/// Moves an extracted image into its cache entry (atomically: staged, then renamed).
pub(super) fn store(
    cache: &Path,
    package: &str,
    version: &str,
    image: &Path,
) -> Result<PathBuf, KernelError> {
    check_image(image)?;
    let sha256 = sha256_file(image).map_err(io_err(format!("hashing {}", image.display())))?;
    let dir = entry_dir(cache, package, version);
    let kernels = cache.join("kernels");
    fs::create_dir_all(&kernels).map_err(io_err(format!("creating {}", kernels.display())))?;
    let staging =
        procs::work_dir(&format!(".{package}_{version}."), Some(&kernels)).map_err(io_err(
            format!("creating a staging directory in {}", kernels.display()),
        ))?;
    let staging = staging.path();
    let staged = staging.join("vmlinuz");
    if fs::rename(image, &staged).is_err() {
        fs::copy(image, &staged).map_err(io_err(format!("copying {}", image.display())))?;
    }
    let meta = Meta {
        package: package.to_string(),
        version: version.to_string(),
        sha256,
    };
    let json = serde_json::to_string_pretty(&meta).expect("meta serialises") + "\n";
    fs::write(staging.join("meta.json"), json)
        .map_err(io_err(format!("writing {}/meta.json", staging.display())))?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
    }
    fs::rename(staging, &dir).map_err(io_err(format!(
        "renaming {} to {}",
        staging.display(),
        dir.display()
    )))?;
    Ok(dir.join("vmlinuz"))
}

/// A temporary directory under `<cache>/tmp`, removed on drop (and on SIGINT/SIGTERM).
pub(super) struct Scratch(WorkDir);

impl Scratch {
    /// Also removes what killed runs (SIGKILL) left there more than a day ago.
    pub(super) fn new(cache: &Path) -> Result<Scratch, KernelError> {
        let tmp = cache.join("tmp");
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > LISTS_MAX_AGE) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        fs::create_dir_all(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let dir = procs::work_dir("fetch-", Some(&tmp))
            .map_err(io_err(format!("creating a directory in {}", tmp.display())))?;
        Ok(Scratch(dir))
    }

    pub(super) fn path(&self) -> &Path {
        self.0.path()
    }
}

pub(super) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::test_util::{fake_image, TempDir};
    use super::super::{resolve, KernelSpec, Manifest, Pin};
    use super::*;

    #[test]
    fn meta_round_trip_and_offline_pinned_resolve() {
        let dir = TempDir::new();
        let cache = dir.0.join("cache");
        let image = dir.0.join("vmlinuz");
        fs::write(&image, fake_image(10_000)).unwrap();
        let (package, version) = ("linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2");
        let stored = store(&cache, package, version, &image).unwrap();
        assert_eq!(
            stored,
            cache.join("kernels/linux-image-6.1.0-56-cloud-amd64-unsigned_6.1.192-2/vmlinuz")
        );
        let meta: Meta =
            serde_json::from_str(&fs::read_to_string(stored.with_file_name("meta.json")).unwrap())
                .unwrap();
        assert_eq!(
            meta,
            Meta {
                package: package.into(),
                version: version.into(),
                sha256: sha256_file(&stored).unwrap()
            }
        );
        assert_eq!(cached(&cache, package, version), Ok(Some(stored.clone())));
        assert_eq!(cached(&cache, package, "6.1.190-1"), Ok(None));

        // A pin whose image is cached: no apt at all (no private apt state is even created).
        let manifest = Manifest {
            default: vec!["debian:6.1".into()],
            debian: BTreeMap::from([(
                "6.1".to_string(),
                Pin {
                    package: package.into(),
                    version: version.into(),
                },
            )]),
        };
        let k = resolve(&KernelSpec::Debian("6.1".into()), Some(&manifest), &cache)
            .unwrap()
            .unwrap();
        assert_eq!(k.image, stored);
        assert_eq!(
            k.origin,
            "debian:6.1 = linux-image-6.1.0-56-cloud-amd64-unsigned 6.1.192-2"
        );
        assert!(k.warnings.is_empty());
        assert!(!cache.join("apt").exists());
        assert!(!cache.join("tmp").exists());

        // A damaged entry is reported, not used.
        let mut bytes = fs::read(&stored).unwrap();
        bytes[5000] ^= 1;
        fs::write(&stored, bytes).unwrap();
        let why = cached(&cache, package, version).unwrap_err();
        assert!(why.contains("sha256"), "{why}");
        let mut warnings = Vec::new();
        assert_eq!(
            cached_checked(&cache, package, version, &mut warnings).unwrap(),
            None
        );
        assert!(warnings[0].contains("damaged"), "{warnings:?}");
        assert!(!entry_dir(&cache, package, version).exists());
    }

    #[test]
    fn cache_dir_follows_xdg() {
        // Only reads the environment; the expected value is computed the same way.
        let expected = match std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
        {
            Some(x) if x.is_absolute() => x.join("bpfcase"),
            _ => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".cache/bpfcase"),
                None => std::env::temp_dir().join("bpfcase-cache"),
            },
        };
        assert_eq!(cache_dir(), expected);
        assert!(cache_dir().ends_with("bpfcase") || cache_dir().ends_with("bpfcase-cache"));
    }
}
