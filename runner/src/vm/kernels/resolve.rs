//! Resolution: a [`KernelSpec`] to a bootable image. A Debian spec goes to its pin in the
//! cache, else to the archive through the private apt state (pin, else newest of the series,
//! following metapackages to the linux-binary package that holds the image), else, when the
//! archive cannot be consulted, to the newest cached image of the series. Cache entries and the
//! private apt state are used under their locks (`lock`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::apt::{is_not_found, newest, Apt};
use super::cache::{cached_checked, sha256_file, store, Meta, Scratch};
use super::image::extract_image;
use super::lock;
use super::packages::{binary_deps, version_in_series, PkgInfo};
use super::spec::valid_series;
use super::{check_image, io_err, Kernel, KernelError, KernelSpec, Manifest, Pin};

/// Resolves a spec to an image, downloading into `cache` when needed. `Host` boots no image:
/// `Ok(None)`. A `Debian` spec uses the manifest's pin for its series when there is one (falling
/// back, with a warning, to the newest of the series when the archive has dropped it), else the
/// newest package version of the series that holds an image. When the archive cannot be
/// consulted at all, the newest cached image of the series is used, with a warning.
pub fn resolve(
    spec: &KernelSpec,
    manifest: Option<&Manifest>,
    cache: &Path,
) -> Result<Option<Kernel>, KernelError> {
    match spec {
        KernelSpec::Host => Ok(None),
        KernelSpec::Path(p) => {
            check_image(p)?;
            let sha = sha256_file(p).map_err(io_err(format!("hashing {}", p.display())))?;
            Ok(Some(Kernel {
                image: p.clone(),
                origin: format!("{} (sha256 {})", p.display(), &sha[..16]),
                package: None,
                image_sha256: sha,
                warnings: Vec::new(),
            }))
        }
        KernelSpec::Debian(series) => {
            if !valid_series(series) {
                return Err(KernelError::BadSpec {
                    spec: spec.to_string(),
                    why: "the series must be <major>.<minor> digits".into(),
                });
            }
            let pin = manifest.and_then(|m| m.debian.get(series));
            resolve_debian(series, pin, cache).map(Some)
        }
    }
}

/// An image in the cache and the exact package version it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fetched {
    package: String,
    version: String,
    image: PathBuf,
}

fn resolve_debian(series: &str, pin: Option<&Pin>, cache: &Path) -> Result<Kernel, KernelError> {
    let mut warnings = Vec::new();
    let got = match pin {
        Some(pin) => {
            let _entry = lock::entry(cache, &pin.package, &pin.version)?;
            cached_checked(cache, &pin.package, &pin.version, &mut warnings)?.map(|image| Fetched {
                package: pin.package.clone(),
                version: pin.version.clone(),
                image,
            })
        }
        None => None,
    };
    let got = match got {
        Some(got) => got,
        None => match from_archive(series, pin, cache, &mut warnings) {
            Ok(got) => got,
            Err(e @ (KernelError::UnknownSeries { .. } | KernelError::NoImage { .. })) => {
                return Err(e)
            }
            // No apt, no mirror, no network: an image of the series already cached will do.
            Err(e) => newest_cached_or(cache, series, e, &mut warnings)?,
        },
    };
    let image_sha256 =
        sha256_file(&got.image).map_err(io_err(format!("hashing {}", got.image.display())))?;
    Ok(Kernel {
        origin: format!("debian:{series} = {} {}", got.package, got.version),
        package: Some((got.package, got.version)),
        image: got.image,
        image_sha256,
        warnings,
    })
}

/// The pinned version when the archive still has it, else the newest of the series.
fn from_archive(
    series: &str,
    pin: Option<&Pin>,
    cache: &Path,
    warnings: &mut Vec<String>,
) -> Result<Fetched, KernelError> {
    // Another bpfcase updating the same lists would make them look empty or half there.
    let _apt = lock::apt(cache)?;
    let mut apt = Apt::open(cache)?;
    apt.ensure_lists(warnings)?;
    let Some(pin) = pin else {
        return newest_of_series(&mut apt, cache, series, warnings);
    };
    let mut found = apt.has_version(&pin.package, &pin.version)?;
    if !found && !apt.updated {
        apt.update(warnings)?;
        found = apt.has_version(&pin.package, &pin.version)?;
    }
    let mut gone = "is no longer in the archive";
    if found {
        match fetch(&apt, cache, &pin.package, &pin.version, 0, warnings) {
            Ok(got) => {
                if got.package != pin.package {
                    warnings.push(format!(
                        "pinned {} {} holds no image; used its dependency {} {} \
                         (pin that instead so the cache works offline)",
                        pin.package, pin.version, got.package, got.version
                    ));
                }
                return Ok(got);
            }
            Err(e) if is_not_found(&e) => gone = "is listed but missing from the mirror (404)",
            Err(e) => return Err(e),
        }
    }
    let got = newest_of_series(&mut apt, cache, series, warnings)?;
    warnings.push(format!(
        "pinned {} {} {gone}; using {} {}",
        pin.package, pin.version, got.package, got.version
    ));
    Ok(got)
}

/// When the archive cannot be consulted: the newest cached image of the series, with a warning,
/// or the original error.
fn newest_cached_or(
    cache: &Path,
    series: &str,
    err: KernelError,
    warnings: &mut Vec<String>,
) -> Result<Fetched, KernelError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    if let Ok(dir) = fs::read_dir(cache.join("kernels")) {
        for e in dir.flatten() {
            let Ok(text) = fs::read_to_string(e.path().join("meta.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_str::<Meta>(&text) else {
                continue;
            };
            if version_in_series(&meta.version, series) {
                entries.push((meta.package, meta.version));
            }
        }
    }
    while let Some(i) = newest(entries.iter().map(|e| e.1.as_str())).ok().flatten() {
        let (package, version) = entries.swap_remove(i);
        let _entry = lock::entry(cache, &package, &version)?;
        if let Some(image) = cached_checked(cache, &package, &version, warnings)? {
            warnings.push(format!(
                "could not consult the Debian archive ({err}); using the cached {package} {version}"
            ));
            return Ok(Fetched {
                package,
                version,
                image,
            });
        }
    }
    Err(err)
}

/// The newest package version of a series that holds an image, fetched into the cache.
fn newest_of_series(
    apt: &mut Apt,
    cache: &Path,
    series: &str,
    warnings: &mut Vec<String>,
) -> Result<Fetched, KernelError> {
    let mut infos = apt.candidates(series)?;
    if infos.is_empty() && !apt.updated {
        apt.update(warnings)?;
        infos = apt.candidates(series)?;
    }
    let mut versions: Vec<String> = infos
        .iter()
        .map(|p| p.version.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut last_no_image = None;
    let mut missing_files = 0;
    while let Some(i) = newest(versions.iter().map(String::as_str))? {
        let version = versions.swap_remove(i);
        let mut group: Vec<&PkgInfo> = infos.iter().filter(|p| p.version == version).collect();
        group.sort_by(|a, b| {
            b.preference()
                .cmp(&a.preference())
                .then(a.package.cmp(&b.package))
        });
        for p in group {
            match fetch(apt, cache, &p.package, &p.version, 0, warnings) {
                Ok(got) => return Ok(got),
                Err(e @ KernelError::NoImage { .. }) => last_no_image = Some(e),
                // The index names a file the mirror does not have: try the next candidate,
                // but not forever (a broken mirror is an error).
                Err(e) if is_not_found(&e) && missing_files < 3 => {
                    missing_files += 1;
                    warnings.push(format!(
                        "{} {} is listed but the mirror does not have it (404); skipped",
                        p.package, p.version
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(e) = last_no_image {
        return Err(e);
    }
    Err(KernelError::UnknownSeries {
        series: series.to_string(),
        available: apt.available_series().unwrap_or_default(),
    })
}

/// An exact package version's image: from the cache, else downloaded, extracted and cached.
/// A package without an image is followed to the linux-binary package it depends on.
fn fetch(
    apt: &Apt,
    cache: &Path,
    package: &str,
    version: &str,
    depth: u32,
    warnings: &mut Vec<String>,
) -> Result<Fetched, KernelError> {
    let found = |image| Fetched {
        package: package.to_string(),
        version: version.to_string(),
        image,
    };
    let entry = lock::entry(cache, package, version)?;
    if let Some(image) = cached_checked(cache, package, version, warnings)? {
        return Ok(found(image));
    }
    let scratch = Scratch::new(cache)?;
    let deb = apt.download(package, version, scratch.path())?;
    if let Some(image) = extract_image(&deb, &scratch.path().join("x"))? {
        return Ok(found(store(cache, package, version, &image)?));
    }
    drop(scratch);
    drop(entry);
    let no_image = || KernelError::NoImage {
        package: package.to_string(),
        version: version.to_string(),
    };
    if depth > 0 {
        return Err(no_image());
    }
    let info = apt
        .show(&[package.to_string()])?
        .into_iter()
        .find(|p| p.version == version)
        .ok_or_else(no_image)?;
    for (dep, dep_version) in binary_deps(&info.depends) {
        let dep_version = dep_version.unwrap_or_else(|| version.to_string());
        match fetch(apt, cache, &dep, &dep_version, depth + 1, warnings) {
            Ok(got) => return Ok(got),
            Err(KernelError::NoImage { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(no_image())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{fake_image, TempDir};
    use super::*;

    #[test]
    fn resolve_paths_and_host() {
        let dir = TempDir::new();
        let good = dir.0.join("bzImage");
        fs::write(&good, fake_image(8192)).unwrap();
        assert_eq!(resolve(&KernelSpec::Host, None, &dir.0).unwrap(), None);
        let k = resolve(&KernelSpec::Path(good.clone()), None, &dir.0)
            .unwrap()
            .unwrap();
        assert_eq!(k.image, good);
        let sha = sha256_file(&good).unwrap();
        assert_eq!(
            k.origin,
            format!("{} (sha256 {})", good.display(), &sha[..16])
        );
        assert!(k.warnings.is_empty());
        assert!(matches!(
            resolve(&KernelSpec::Path(dir.0.join("none")), None, &dir.0),
            Err(KernelError::Missing { .. })
        ));
    }

    #[test]
    #[ignore = "downloads a Debian kernel through apt from the mirror in the machine's apt configuration"]
    fn fetches_debian_6_1() {
        let dir = TempDir::new();
        let k = resolve(&KernelSpec::Debian("6.1".into()), None, &dir.0)
            .unwrap()
            .unwrap();
        check_image(&k.image).unwrap();
        assert!(k.origin.starts_with("debian:6.1 = linux-"), "{}", k.origin);
        // Second time: from the cache, same image.
        let again = resolve(&KernelSpec::Debian("6.1".into()), None, &dir.0)
            .unwrap()
            .unwrap();
        assert_eq!(again.image, k.image);
    }
}
