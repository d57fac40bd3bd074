//! Case layer: the JSON case format, its validation with located errors (file:line:col and
//! field path), and the expansion of a case's matrix into instances with stable ids.
//!
//! Owns: parsing and every check that can be made without a kernel. Must not: touch the kernel
//! or know how a step is compiled; it hands out fully typed `Instance`s.

mod args;
mod asm;
pub mod compare;
mod instance;
pub mod kernel;
pub mod layout;
mod locate;
mod mapdef;
mod model;
mod names;
mod object;
mod prog;
mod resolve;
mod shape;
mod syntax;
pub mod trigger;
pub mod value;

use std::fmt;
use std::path::{Path, PathBuf};

pub use instance::{
    step_names, Arg, AsmStep, Buf, BufFill, Call, Cond, Func, GlobalValue, Instance, Legacy,
    MapSpec, ObjectStep, Observe, OpSpec, OwnerArg, OwnerRef, Ret, Rule, StepSpec, UserValue,
    ValueSize, Width,
};
pub use kernel::{KernelReq, KernelSeries};
pub use locate::{FieldPath, Seg};
pub use model::CaseFile;

/// A parsed, validated case file and its instances.
#[derive(Debug)]
pub struct Case {
    /// Path as given by the user.
    pub file: PathBuf,
    /// Name used in ids and snapshot names.
    pub name: String,
    pub about: String,
    pub instances: Vec<Instance>,
}

/// A case that cannot run, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    pub file: PathBuf,
    /// 1-based; 0 when the position is unknown (e.g. the file could not be read).
    pub line: usize,
    pub column: usize,
    /// Field path, `.` for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        } else if self.path == "." {
            // The file as a whole (it cannot be read or listed): no position, no field.
            return write!(f, ": {}", self.message);
        }
        write!(f, ": {}: {}", self.path, self.message)
    }
}

impl std::error::Error for CaseError {}

/// Reads and validates a case file.
pub fn load(file: &Path) -> Result<Case, CaseError> {
    let bytes = std::fs::read(file).map_err(|e| CaseError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        path: ".".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse_bytes(file, &bytes)
}

/// Validates a case from the bytes of its file: UTF-8 first, then as [`parse`].
pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<Case, CaseError> {
    let src = syntax::utf8(bytes).map_err(|e| {
        let before = std::str::from_utf8(&bytes[..e.offset]).unwrap_or_default();
        text_error(file, before, e)
    })?;
    parse(file, src)
}

fn text_error(file: &Path, src: &str, e: syntax::TextError) -> CaseError {
    let (line, column) = syntax::position(src, e.offset);
    CaseError {
        file: file.to_path_buf(),
        line,
        column,
        path: e.path.to_string(),
        message: e.message,
    }
}

/// Validates a case from its text; `file` only names it in errors and gives the default name.
pub fn parse(file: &Path, src: &str) -> Result<Case, CaseError> {
    syntax::check(src).map_err(|e| text_error(file, src, e))?;
    let de = &mut serde_json::Deserializer::from_str(src);
    let parsed: Result<CaseFile, _> = serde_path_to_error::deserialize(de);
    let cf = match parsed {
        Ok(cf) => cf,
        Err(e) => {
            let field_path = field_path(e.path());
            let inner = e.into_inner();
            let message = shape::plain(strip_position(&inner.to_string()));
            // serde_json points just past the offending token, in bytes; point at the value
            // (or, for an error about a key, the key) itself.
            let located = match inner.classify() {
                serde_json::error::Category::Data => {
                    let at_key = shape::KEY_ERRORS.iter().any(|k| message.starts_with(k));
                    locate::locate(src, &field_path, at_key)
                }
                _ => None,
            };
            let (line, column) =
                located.unwrap_or_else(|| serde_position(src, inner.line(), inner.column()));
            return Err(CaseError {
                file: file.to_path_buf(),
                line,
                column,
                path: field_path.to_string(),
                message,
            });
        }
    };
    let name = cf.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "case".into())
    });
    let instances = resolve::expand(&cf, &name).map_err(|(path, at_key, message)| {
        let (line, column) = locate::locate(src, &path, at_key).unwrap_or((0, 0));
        CaseError {
            file: file.to_path_buf(),
            line,
            column,
            path: path.to_string(),
            message,
        }
    })?;
    Ok(Case {
        file: file.to_path_buf(),
        name,
        about: cf.about,
        instances,
    })
}

/// serde_json's position (1-based line; column: bytes of that line read, 0 before the
/// first) as a line and a 1-based column in characters.
fn serde_position(src: &str, line: usize, column: usize) -> (usize, usize) {
    let start: usize = src
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut at = (start + column.saturating_sub(1)).min(src.len());
    while !src.is_char_boundary(at) {
        at -= 1;
    }
    syntax::position(src, at)
}

/// The path serde_path_to_error tracked; it ends where it lost track (an error while a key
/// was read is the object's).
fn field_path(p: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    let mut out = FieldPath::root();
    for seg in p.iter() {
        out = match seg {
            Segment::Seq { index } => out.index(*index),
            Segment::Map { key } | Segment::Enum { variant: key } => out.key(key),
            Segment::Unknown => break,
        };
    }
    out
}

/// serde_json appends " at line L column C"; the location is reported separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The JSON Schema of the case format, generated from the serde types.
pub fn schema() -> String {
    let schema = schemars::schema_for!(CaseFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    s.push('\n');
    s
}

/// Collects `*.json` case files under the given paths (files are taken as they are, folders
/// recursively, sorted), skipping `case.schema.json`.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CaseError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| CaseError {
                file: p.clone(),
                line: 0,
                column: 0,
                path: ".".into(),
                message: format!("cannot list: {e}"),
            })?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(CaseError {
                file: p.clone(),
                line: 0,
                column: 0,
                path: ".".into(),
                message: "no such file or directory".into(),
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json")
            && p.file_name().is_some_and(|n| n != "case.schema.json")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Tests: case text `src` is refused at field `path` with a message containing `msg`.
#[cfg(test)]
fn assert_refused(src: &str, path: &str, msg: &str) {
    let e = parse(Path::new("t.json"), src).expect_err("the case must be refused");
    assert_eq!(e.path, path, "{src}: {}", e.message);
    assert!(e.message.contains(msg), "{src}: {}", e.message);
}

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod owner_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trigger_tests;
#[cfg(test)]
mod typed_tests;
