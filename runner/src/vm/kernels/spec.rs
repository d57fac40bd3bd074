//! The `--kernel` syntax: [`KernelSpec`] parsing and display, and the name checks shared with
//! the manifest and the apt queries (series, package names, versions).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::KernelError;

/// What `--kernel` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    /// The running kernel: no image, no guest.
    Host,
    /// A bzImage/vmlinuz file.
    Path(PathBuf),
    /// The newest (or pinned) Debian cloud kernel of a series such as `6.1`.
    Debian(String),
}

impl FromStr for KernelSpec {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<KernelSpec, KernelError> {
        let bad = |why: &str| KernelError::BadSpec {
            spec: s.to_string(),
            why: why.to_string(),
        };
        if s == "host" {
            Ok(KernelSpec::Host)
        } else if let Some(series) = s.strip_prefix("debian:") {
            if series.is_empty() {
                Err(bad(
                    "no series after \"debian:\" (expected e.g. debian:6.1)",
                ))
            } else if !valid_series(series) {
                Err(bad(
                    "the series must be <major>.<minor> digits, e.g. debian:6.1 or debian:7.3",
                ))
            } else {
                Ok(KernelSpec::Debian(series.to_string()))
            }
        } else if s.is_empty() {
            Err(bad(
                "empty (expected host, debian:<series> or a path to a kernel image)",
            ))
        } else {
            Ok(KernelSpec::Path(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Host => f.write_str("host"),
            KernelSpec::Path(p) => write!(f, "{}", p.display()),
            KernelSpec::Debian(s) => write!(f, "debian:{s}"),
        }
    }
}

/// `<major>.<minor>`, both digits.
pub(super) fn valid_series(s: &str) -> bool {
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    s.split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b))
}

/// A Debian package name (`version == false`) or version: safe as a cache directory name too.
pub(super) fn valid_name(s: &str, version: bool) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.bytes().all(|b| {
            b.is_ascii_digit()
                || b.is_ascii_lowercase()
                || b"+-.".contains(&b)
                || (version && (b.is_ascii_uppercase() || b"~:".contains(&b)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing_and_display_round_trip() {
        assert_eq!("host".parse::<KernelSpec>().unwrap(), KernelSpec::Host);
        assert_eq!(
            "debian:6.1".parse::<KernelSpec>().unwrap(),
            KernelSpec::Debian("6.1".into())
        );
        assert_eq!(
            "debian:7.3".parse::<KernelSpec>().unwrap(),
            KernelSpec::Debian("7.3".into())
        );
        assert_eq!(
            "build/arch/x86/boot/bzImage".parse::<KernelSpec>().unwrap(),
            KernelSpec::Path("build/arch/x86/boot/bzImage".into())
        );
        for s in [
            "host",
            "debian:5.10",
            "debian:6.12",
            "/boot/vmlinuz-6.1.0-56-cloud-amd64",
            "./host",
        ] {
            assert_eq!(s.parse::<KernelSpec>().unwrap().to_string(), s);
        }
        for bad in [
            "debian:",
            "debian:6",
            "debian:6.",
            "debian:.1",
            "debian:6.1.2",
            "debian:bookworm",
            "debian:6.x",
            "",
        ] {
            let e = bad.parse::<KernelSpec>().unwrap_err();
            assert!(matches!(e, KernelError::BadSpec { .. }), "{bad}: {e}");
        }
        let e = "debian:".parse::<KernelSpec>().unwrap_err().to_string();
        assert!(e.contains("no series"), "{e}");
    }
}
