//! The machine's apt sources (`/etc/apt/sources.list`, `sources.list.d/*.list` and `*.sources`),
//! read by pure deb822 and one-line parsers, classified into the Debian archive and security
//! mirrors, and the private sources list generated from them.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::{io_err, KernelError};

/// The keyring every private source is verified with.
pub(super) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Suites of the archive mirror in the private sources list: every Debian kernel era at once.
const ARCHIVE_SUITES: &[&str] = &[
    "bullseye",
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
    "experimental",
];
/// Suites of the security mirror in the private sources list.
const SECURITY_SUITES: &[&str] = &["bullseye-security", "bookworm-security", "trixie-security"];
/// Where the machine's apt configuration lives.
pub(super) const APT_ETC: &str = "/etc/apt";
/// Debian codenames and aliases, so a suite such as `bookworm-updates` is recognised as Debian's.
const DEBIAN_SUITES: &[&str] = &[
    "buzz",
    "rex",
    "bo",
    "hamm",
    "slink",
    "potato",
    "woody",
    "sarge",
    "etch",
    "lenny",
    "squeeze",
    "wheezy",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "experimental",
    "rc-buggy",
    "stable",
    "testing",
    "unstable",
    "oldstable",
    "oldoldstable",
];

/// One `deb` source from the apt configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    uri: String,
    suites: Vec<String>,
}

/// The mirrors the private sources list uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Mirrors {
    pub(super) archive: Option<String>,
    pub(super) security: Option<String>,
}

/// `sources.list`, then `sources.list.d/*` in name order, as (file name, contents). Files that
/// apt would not read are filtered later by [`mirrors_from`].
pub(super) fn read_apt_sources(etc: &Path) -> Result<Vec<(String, String)>, KernelError> {
    let mut files = Vec::new();
    let main = etc.join("sources.list");
    if main.is_file() {
        let text =
            fs::read_to_string(&main).map_err(io_err(format!("reading {}", main.display())))?;
        files.push(("sources.list".to_string(), text));
    }
    let parts = etc.join("sources.list.d");
    if let Ok(dir) = fs::read_dir(&parts) {
        let mut names: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            if !(name.ends_with(".list") || name.ends_with(".sources")) {
                continue;
            }
            let path = parts.join(&name);
            let text =
                fs::read_to_string(&path).map_err(io_err(format!("reading {}", path.display())))?;
            files.push((name, text));
        }
    }
    Ok(files)
}

/// The Debian archive and security mirrors among apt source files (first wins); files whose
/// names end in neither `.list` nor `.sources` are ignored, as apt does.
pub(super) fn mirrors_from(files: &[(String, String)]) -> Mirrors {
    let mut m = Mirrors::default();
    for (name, text) in files {
        let sources = if name.ends_with(".sources") {
            parse_deb822(text)
        } else if name.ends_with(".list") {
            parse_one_line(text)
        } else {
            continue;
        };
        for s in sources {
            if s.uri.starts_with("cdrom:") {
                continue;
            }
            let uri = s.uri.trim_end_matches('/').to_string();
            if m.archive.is_none() && s.suites.iter().any(|x| is_debian_suite(x)) {
                m.archive = Some(uri);
            } else if m.security.is_none()
                && !s.suites.is_empty()
                && s.suites.iter().all(|x| is_security_suite(x))
            {
                m.security = Some(uri);
            }
        }
    }
    m
}

fn strip_any<'a>(s: &'a str, suffixes: &[&str]) -> &'a str {
    suffixes.iter().find_map(|x| s.strip_suffix(x)).unwrap_or(s)
}

/// `bookworm`, `bookworm-updates`, `trixie-backports`, `sid`, `stable`, …
fn is_debian_suite(suite: &str) -> bool {
    let base = strip_any(
        suite,
        &[
            "-backports-sloppy",
            "-backports",
            "-proposed-updates",
            "-updates",
        ],
    );
    DEBIAN_SUITES.contains(&base)
}

/// `bookworm-security` (and the old `buster/updates`).
fn is_security_suite(suite: &str) -> bool {
    let base = strip_any(suite, &["-security", "/updates"]);
    base != suite && DEBIAN_SUITES.contains(&base)
}

/// deb822 `.sources`: stanzas separated by blank lines, `#` comments, continuation lines.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    let mut flush = |fields: &mut BTreeMap<String, String>| {
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
        let enabled = !matches!(
            get("enabled").trim().to_ascii_lowercase().as_str(),
            "no" | "false" | "0"
        );
        if enabled && get("types").split_whitespace().any(|t| t == "deb") {
            let suites: Vec<String> = get("suites").split_whitespace().map(String::from).collect();
            for uri in get("uris").split_whitespace() {
                out.push(Source {
                    uri: uri.to_string(),
                    suites: suites.clone(),
                });
            }
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields);
            last = None;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            fields.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    flush(&mut fields);
    out
}

/// One-line `deb [options] URI suite [components…]`.
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut tokens = line.split_whitespace();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut next = tokens.next();
        if next.is_some_and(|t| t.starts_with('[')) {
            while let Some(t) = next {
                next = tokens.next();
                if t.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (next, tokens.next()) {
            out.push(Source {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

/// The private sources list: every suite of the archive and security mirrors, component main.
pub(super) fn private_sources_list(m: &Mirrors) -> Option<String> {
    let archive = m.archive.as_deref()?;
    let mut s = String::from(
        "# Generated by bpfcase from the machine's apt configuration; private to this cache.\n",
    );
    let mut add = |uri: &str, suites: &[&str]| {
        for suite in suites {
            s.push_str(&format!("deb [signed-by={KEYRING}] {uri} {suite} main\n"));
        }
    };
    add(archive, ARCHIVE_SUITES);
    if let Some(security) = m.security.as_deref() {
        add(security, SECURITY_SUITES);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_sources() {
        let s = parse_deb822(DEB822);
        assert_eq!(
            s,
            [
                Source {
                    uri: "http://mirror.example/debian/".into(),
                    suites: vec!["bookworm".into(), "bookworm-updates".into()]
                },
                Source {
                    uri: "http://mirror.example/debian-security".into(),
                    suites: vec!["bookworm-security".into()]
                },
            ]
        );
        let files = [("debian.sources".to_string(), DEB822.to_string())];
        assert_eq!(
            mirrors_from(&files),
            Mirrors {
                archive: Some("http://mirror.example/debian".into()),
                security: Some("http://mirror.example/debian-security".into()),
            }
        );
        // Disabled stanzas, deb-src only, embedded keys (continuation lines), odd case.
        let other = "\
Types: deb
URIs: http://other.example/debian
Suites: bookworm
Enabled: no

types: deb-src
uris: http://src.example/debian
suites: bookworm

Types: deb
URIs: http://keyed.example/debian
Suites: trixie
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 xyz
 -----END PGP PUBLIC KEY BLOCK-----
";
        let s = parse_deb822(other);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].uri, "http://keyed.example/debian");
        assert_eq!(s[0].suites, ["trixie"]);
    }

    #[test]
    fn one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib
deb [ trusted=yes ] http://mirror.example/debian bookworm-updates main # trailing
deb http://security.mirror.example/debian-security bookworm-security main
deb https://vendor.example/apt cloud-sdk-bookworm main
";
        let s = parse_one_line(text);
        let uris: Vec<_> = s
            .iter()
            .map(|s| (s.uri.as_str(), s.suites[0].as_str()))
            .collect();
        assert_eq!(
            uris,
            [
                ("http://mirror.example/debian", "bookworm"),
                ("http://mirror.example/debian", "bookworm-updates"),
                (
                    "http://security.mirror.example/debian-security",
                    "bookworm-security"
                ),
                ("https://vendor.example/apt", "cloud-sdk-bookworm"),
            ]
        );
        let files = [("sources.list".to_string(), text.to_string())];
        assert_eq!(
            mirrors_from(&files),
            Mirrors {
                archive: Some("http://mirror.example/debian".into()),
                security: Some("http://security.mirror.example/debian-security".into()),
            }
        );
    }

    #[test]
    fn mirror_classification_and_ignored_files() {
        let vendor = "deb https://vendor.example/apt cloud-sdk-bookworm main\n".to_string();
        let nodistro = "Types: deb\nURIs: https://node.example/node_20.x\nSuites: nodistro\nComponents: main\n".to_string();
        let disabled = "deb http://disabled.example/debian bookworm main\n".to_string();
        let files = vec![
            ("google-cloud-sdk.list".to_string(), vendor),
            ("nodesource.sources".to_string(), nodistro),
            ("old.list.disabled-by-farm".to_string(), disabled.clone()),
            (
                "x.sources.disabled-by-farm".to_string(),
                "Types: deb\nURIs: http://d.example/debian\nSuites: sid\n".into(),
            ),
        ];
        assert_eq!(mirrors_from(&files), Mirrors::default());
        let mut files = files;
        files.push(("debian.sources".to_string(), DEB822.to_string()));
        let m = mirrors_from(&files);
        assert_eq!(m.archive.as_deref(), Some("http://mirror.example/debian"));
        assert!(private_sources_list(&Mirrors::default()).is_none());

        assert!(is_debian_suite("bookworm") && is_debian_suite("bookworm-updates"));
        assert!(
            is_debian_suite("trixie-backports")
                && is_debian_suite("sid")
                && is_debian_suite("stable")
        );
        assert!(!is_debian_suite("bookworm-security") && !is_debian_suite("cloud-sdk-bookworm"));
        assert!(!is_debian_suite("nodistro") && !is_debian_suite("jammy"));
        assert!(is_security_suite("bookworm-security") && is_security_suite("buster/updates"));
        assert!(!is_security_suite("bookworm") && !is_security_suite("jammy-security"));

        // Security only: no archive, so no private list.
        let only_security = [(
            "s.list".to_string(),
            "deb http://mirror.example/debian-security bookworm-security main\n".to_string(),
        )];
        let m = mirrors_from(&only_security);
        assert_eq!(m.archive, None);
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn private_list_names_every_suite() {
        let m = Mirrors {
            archive: Some("http://mirror.example/debian".into()),
            security: Some("http://mirror.example/debian-security".into()),
        };
        let list = private_sources_list(&m).unwrap();
        let lines: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), ARCHIVE_SUITES.len() + SECURITY_SUITES.len());
        assert_eq!(
            lines[0],
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bullseye main"
        );
        assert!(lines.contains(&"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian experimental main"));
        assert!(lines.contains(&"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian-security trixie-security main"));
        // Round trip through the one-line parser.
        let parsed = parse_one_line(&list);
        assert_eq!(parsed.len(), lines.len());
        let without_security = private_sources_list(&Mirrors {
            security: None,
            ..m
        })
        .unwrap();
        assert!(!without_security.contains("-security"));
    }
}
