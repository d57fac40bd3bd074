//! Pure parsing of apt-cache output: `apt-cache show` stanzas ([`PkgInfo`]), `Depends` fields,
//! and the kernel package names and versions of a series in `apt-cache search` output.

use std::collections::BTreeSet;

use super::spec::valid_series;

/// An `Installed-Size` (KiB) below this means a metapackage without a kernel image.
const IMAGE_MIN_KIB: u64 = 4096;

/// One stanza of `apt-cache show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PkgInfo {
    pub(super) package: String,
    pub(super) version: String,
    /// KiB.
    installed_size: u64,
    /// Bytes of the .deb.
    size: u64,
    pub(super) depends: String,
}

impl PkgInfo {
    /// Within one version, higher is better: holds an image, unsigned (the plain build), smaller
    /// download.
    pub(super) fn preference(&self) -> (bool, bool, std::cmp::Reverse<u64>) {
        (
            self.installed_size >= IMAGE_MIN_KIB,
            self.package.contains("unsigned"),
            std::cmp::Reverse(self.size),
        )
    }
}

pub(super) fn parse_show(text: &str) -> Vec<PkgInfo> {
    let mut out = Vec::new();
    let mut cur = PkgInfo::default();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !cur.package.is_empty() && !cur.version.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur = PkgInfo::default();
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let v = v.trim();
        match k {
            "Package" => cur.package = v.to_string(),
            "Version" => cur.version = v.to_string(),
            "Installed-Size" => cur.installed_size = v.parse().unwrap_or(0),
            "Size" => cur.size = v.parse().unwrap_or(0),
            "Depends" => cur.depends = v.to_string(),
            _ => {}
        }
    }
    out
}

/// The linux-binary packages in a `Depends` field, with the exact version when `(= v)`.
pub(super) fn binary_deps(depends: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for alt in depends.split([',', '|']) {
        let alt = alt.trim();
        let name = alt.split([' ', '(']).next().unwrap_or("");
        if !name.starts_with("linux-binary") {
            continue;
        }
        let version = alt
            .split_once('(')
            .and_then(|(_, r)| r.trim_end_matches(')').trim().strip_prefix('='))
            .map(|v| v.trim().to_string());
        out.push((name.to_string(), version));
    }
    out
}

/// The series a kernel package name belongs to, for `linux-(image|binary|binary-unsigned)-
/// <series>[.-]…cloud-amd64[-unsigned]` names (not `-dbg`).
fn candidate_series(name: &str) -> Option<&str> {
    if name.contains("-dbg") {
        return None;
    }
    let rest = ["linux-binary-unsigned-", "linux-binary-", "linux-image-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    if !(rest.ends_with("cloud-amd64") || rest.ends_with("cloud-amd64-unsigned")) {
        return None;
    }
    let major = rest.find(|c: char| !c.is_ascii_digit())?;
    let after_dot = rest[major..].strip_prefix('.')?;
    let minor = after_dot.find(|c: char| !c.is_ascii_digit())?;
    let len = major + 1 + minor;
    let series = &rest[..len];
    (valid_series(series) && rest[len..].starts_with(['.', '-'])).then_some(series)
}

/// Package names of a series from `apt-cache search` output (`name - description` lines).
pub(super) fn filter_candidates(search: &str, series: &str) -> Vec<String> {
    search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| candidate_series(n) == Some(series))
        .map(String::from)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The series named in `apt-cache search` output, numerically ordered.
pub(super) fn available_series(search: &str) -> Vec<String> {
    let set: BTreeSet<(u32, u32)> = search
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(candidate_series)
        .filter_map(|s| {
            let (a, b) = s.split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    set.into_iter().map(|(a, b)| format!("{a}.{b}")).collect()
}

/// Whether a Debian package version is of a series: `6.1.192-2`, `7.3~rc7-1~exp1`, not `6.12.1-1`.
pub(super) fn version_in_series(version: &str, series: &str) -> bool {
    let upstream = version.split_once(':').map_or(version, |(_, v)| v);
    upstream
        .strip_prefix(series)
        .is_some_and(|r| r.is_empty() || r.starts_with(['.', '-', '~', '+']))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: &str = "\
linux-binary-7.3-cloud-amd64 - Linux 7.3-rc7 for x86-64 cloud (kernel image)
linux-binary-7.3.4+deb13-cloud-amd64 - Linux 7.3.4 for x86-64 cloud (kernel image)
linux-binary-unsigned-7.3.4+deb13-cloud-amd64 - Linux 7.3.4 for x86-64 cloud (unsigned kernel image)
linux-image-7.3.4+deb13-cloud-amd64 - Linux 7.3.4 for x86-64 cloud
linux-image-7.3.4+deb13-cloud-amd64-dbg - Debug symbols for linux-image-7.3.4+deb13-cloud-amd64
linux-image-7.30.1+deb13-cloud-amd64 - hypothetical
linux-image-5.10.0-46-cloud-amd64 - Linux 5.10 for x86-64 cloud (signed)
linux-image-5.10.0-46-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-6.1-cloud-amd64 - Linux for x86-64 cloud (meta-package)
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-0.deb11.52-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.12.118+deb13-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.16.12+deb13-cloud-amd64 - Linux 6.16 for x86-64 cloud (signed)
linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-headers-6.1.0-56-cloud-amd64 - Header files
linux-image-cloud-amd64 - Linux for x86-64 cloud (meta-package)
";

    #[test]
    fn candidates_from_search_output() {
        assert_eq!(
            filter_candidates(SEARCH, "7.3"),
            [
                "linux-binary-7.3-cloud-amd64",
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-binary-unsigned-7.3.4+deb13-cloud-amd64",
                "linux-image-7.3.4+deb13-cloud-amd64",
            ]
        );
        assert_eq!(
            filter_candidates(SEARCH, "6.1"),
            [
                "linux-image-6.1-cloud-amd64",
                "linux-image-6.1.0-0.deb11.52-cloud-amd64",
                "linux-image-6.1.0-56-cloud-amd64-unsigned",
            ]
        );
        assert_eq!(
            filter_candidates(SEARCH, "6.12"),
            ["linux-image-6.12.118+deb13-cloud-amd64-unsigned"]
        );
        assert_eq!(
            filter_candidates(SEARCH, "5.10"),
            [
                "linux-image-5.10.0-46-cloud-amd64",
                "linux-image-5.10.0-46-cloud-amd64-unsigned"
            ]
        );
        assert!(filter_candidates(SEARCH, "6.2").is_empty());
        assert_eq!(
            available_series(SEARCH),
            ["5.10", "6.1", "6.12", "6.16", "7.3", "7.30"]
        );

        assert!(version_in_series("6.1.192-2", "6.1"));
        assert!(version_in_series("6.1.180-1~deb11u1", "6.1"));
        assert!(version_in_series("7.3~rc7-1~exp1", "7.3"));
        assert!(version_in_series("7.3.4-1~bpo13+1", "7.3"));
        assert!(version_in_series("1:6.1.5-1", "6.1"));
        assert!(!version_in_series("6.12.118-1", "6.1"));
        assert!(!version_in_series("16.1-1", "6.1"));
    }

    const SHOW: &str = "\
Package: linux-image-7.3.4+deb13-cloud-amd64
Source: linux-signed-amd64 (7.3.4+1~bpo13+1)
Version: 7.3.4-1~bpo13+1
Installed-Size: 15
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)
Description: Linux 7.3.4 for x86-64 cloud
 This package depends on the kernel image.
 .
 Installed-Size: not a field
Size: 1928

Package: linux-binary-unsigned-7.3.4+deb13-cloud-amd64
Source: linux
Version: 7.3.4-1~bpo13+1
Installed-Size: 13651
Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)
Size: 13602692

Package: linux-binary-7.3.4+deb13-cloud-amd64
Version: 7.3.4-1~bpo13+1
Installed-Size: 13652
Size: 13604064
";

    #[test]
    fn show_output_and_preferences() {
        let infos = parse_show(SHOW);
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[0].installed_size, 15);
        assert_eq!(infos[0].size, 1928);
        assert_eq!(
            infos[1].package,
            "linux-binary-unsigned-7.3.4+deb13-cloud-amd64"
        );
        assert_eq!(infos[2].depends, "");
        let mut group: Vec<&PkgInfo> = infos.iter().collect();
        group.sort_by(|a, b| {
            b.preference()
                .cmp(&a.preference())
                .then(a.package.cmp(&b.package))
        });
        let order: Vec<&str> = group.iter().map(|p| p.package.as_str()).collect();
        assert_eq!(
            order,
            [
                "linux-binary-unsigned-7.3.4+deb13-cloud-amd64",
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-image-7.3.4+deb13-cloud-amd64",
            ]
        );
        assert_eq!(
            binary_deps(&infos[0].depends),
            [(
                "linux-binary-7.3.4+deb13-cloud-amd64".to_string(),
                Some("7.3.4-1~bpo13+1".to_string())
            )]
        );
        assert_eq!(
            binary_deps("linux-binary-7.3-cloud-amd64, kmod"),
            [("linux-binary-7.3-cloud-amd64".to_string(), None)]
        );
        assert!(binary_deps("kmod, linux-base (>= 4.3~)").is_empty());
    }
}
