//! The kernel manifest, `kernels.json`: the default set of kernels and exact Debian pins. The
//! repository's `kernels.json` is compiled into the binary ([`Manifest::builtin`]), so kernels
//! resolve the same from any directory; `--manifest PATH` loads another ([`Manifest::load`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::spec::{valid_name, valid_series};
use super::{KernelError, KernelSpec};

/// kernels.json: the default set and exact pins.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub default: Vec<String>,
    pub debian: BTreeMap<String, Pin>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub package: String,
    pub version: String,
}

/// The repository's manifest, as built.
const BUILTIN: &str = include_str!("../../../../kernels.json");

impl Manifest {
    /// The manifest compiled into this binary (the repository's `kernels.json`).
    pub fn builtin() -> Result<Manifest, KernelError> {
        Manifest::parse(BUILTIN).map_err(|why| KernelError::Manifest {
            path: "kernels.json (built in)".into(),
            why,
        })
    }

    pub fn load(path: &Path) -> Result<Manifest, KernelError> {
        let text = fs::read_to_string(path).map_err(|e| KernelError::Manifest {
            path: path.to_path_buf(),
            why: format!("cannot read: {e}"),
        })?;
        Manifest::parse(&text).map_err(|why| KernelError::Manifest {
            path: path.to_path_buf(),
            why,
        })
    }

    fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for d in &m.default {
            d.parse::<KernelSpec>()
                .map_err(|e| format!("default entry {d:?}: {e}"))?;
        }
        for (series, pin) in &m.debian {
            if !valid_series(series) {
                return Err(format!(
                    "debian key {series:?} is not a <major>.<minor> series"
                ));
            }
            if !valid_name(&pin.package, false) {
                return Err(format!(
                    "debian.{series}.package {:?} is not a Debian package name",
                    pin.package
                ));
            }
            if !valid_name(&pin.version, true) {
                return Err(format!(
                    "debian.{series}.version {:?} is not a Debian version",
                    pin.version
                ));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::*;

    #[test]
    fn manifest_parsing() {
        let text = r#"{
            "default": ["debian:6.1", "host"],
            "debian": { "6.1": { "package": "linux-image-6.1.0-56-cloud-amd64-unsigned", "version": "6.1.192-2" },
                        "7.3": { "package": "linux-binary-unsigned-7.3.4+deb13-cloud-amd64", "version": "7.3.4-1~bpo13+1" } }
        }"#;
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.default, ["debian:6.1", "host"]);
        assert_eq!(m.debian["7.3"].version, "7.3.4-1~bpo13+1");
        let back: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);

        let bad = |t: &str| Manifest::parse(t).unwrap_err();
        assert!(bad(r#"{"default": [], "debian": {}, "extra": 1}"#).contains("extra"));
        assert!(bad(r#"{"default": ["debian:x"], "debian": {}}"#).contains("debian:x"));
        assert!(
            bad(r#"{"default": [], "debian": {"6": {"package": "a", "version": "1"}}}"#)
                .contains("series")
        );
        assert!(
            bad(r#"{"default": [], "debian": {"6.1": {"package": "../x", "version": "1"}}}"#)
                .contains("package")
        );
        assert!(
            bad(r#"{"default": [], "debian": {"6.1": {"package": "a", "version": "1/2"}}}"#)
                .contains("version")
        );
        assert!(bad(r#"{"default": []"#).contains("line"));

        let dir = TempDir::new();
        let path = dir.0.join("kernels.json");
        fs::write(&path, text).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), m);
        let e = Manifest::load(&dir.0.join("nope.json")).unwrap_err();
        assert!(matches!(e, KernelError::Manifest { .. }), "{e}");
        assert!(e.to_string().contains("nope.json"), "{e}");
    }

    #[test]
    fn the_repository_manifest_is_built_in() {
        let m = Manifest::builtin().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels.json");
        assert_eq!(Manifest::load(&repo).unwrap(), m);
        assert!(!m.default.is_empty());
        for d in &m.default {
            if let Ok(KernelSpec::Debian(s)) = d.parse() {
                assert!(m.debian.contains_key(&s), "default {d} has no pin");
            }
        }
    }
}
