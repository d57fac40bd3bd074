//! The bad-input corpus, `runner/tests/bad-cases/`: hand-written broken case files (syntax
//! errors, wrong types, unknown fields, repeated keys, text after the document, lists for
//! objects, matrices that expand to nothing or too much, missing and self-referencing `$dim`s,
//! absurd sizes, bytes that are not UTF-8), each next to a `.err` file holding the one line
//! bpfcase must print on stderr: `bpfcase: <file>:<line>:<column>: <field path>: <message>`,
//! columns in characters.
//!
//! For each file, `bpfcase run` and `bpfcase list` must exit with status 2, print exactly that
//! line and nothing on stdout: nothing ran (`run` prints a header before it runs a case).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-cases")
}

/// The case files of the corpus, sorted.
fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus())
        .expect("the corpus folder is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// `bpfcase <command> <file>` in the corpus folder (so the message names the file alone).
fn check(command: &str, case: &Path) -> Result<(), Failed> {
    let name = case
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("a file name")?;
    let expected = fs::read_to_string(case.with_extension("err"))
        .map_err(|e| format!("{name}: no .err file next to it: {e}"))?;
    let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args([command, name])
        .current_dir(corpus())
        .output()
        .map_err(|e| format!("starting bpfcase: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        return Err(format!("exit status {:?}, not 2; stderr:\n{stderr}", out.status).into());
    }
    if !out.stdout.is_empty() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        return Err(format!("something ran; stdout:\n{stdout}").into());
    }
    if stderr != expected {
        return Err(format!("stderr:\n  got:      {stderr}  expected: {expected}").into());
    }
    Ok(())
}

/// Every `.err` holds one located line, and belongs to a case file.
fn well_formed() -> Result<(), Failed> {
    let mut errs = 0;
    for e in fs::read_dir(corpus()).map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "err") {
            errs += 1;
            if !p.with_extension("json").exists() {
                return Err(format!("{} has no case file", p.display()).into());
            }
            let text = fs::read_to_string(&p).map_err(|e| e.to_string())?;
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let head = format!("bpfcase: {stem}.json:");
            let rest = text
                .strip_prefix(&head)
                .ok_or(format!("{stem}: not `{head}…`"))?;
            let mut parts = rest.splitn(3, ':');
            let located = parts
                .by_ref()
                .take(2)
                .all(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
            if !located || text.lines().count() != 1 || !text.ends_with('\n') {
                return Err(format!("{stem}: not one `file:line:col: path: message` line").into());
            }
        }
    }
    let n = cases().len();
    if n < 30 || errs != n {
        return Err(format!("{n} case files, {errs} .err files").into());
    }
    Ok(())
}

/// Two case files of one name in different folders: refused before anything runs, naming both.
fn same_name_twice() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let case = r#"{ "about": "a", "steps": [ { "prog": [ { "current_task": {} } ] } ] }"#;
    for sub in ["a", "b"] {
        fs::create_dir(dir.path().join(sub)).map_err(|e| e.to_string())?;
        fs::write(dir.path().join(sub).join("same.json"), case).map_err(|e| e.to_string())?;
    }
    for command in ["run", "list"] {
        let out = Command::new(env!("CARGO_BIN_EXE_bpfcase"))
            .args([command, "a", "b"])
            .current_dir(dir.path())
            .output()
            .map_err(|e| format!("starting bpfcase: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = "bpfcase: b/same.json: case `same` has the name of a/same.json (the file name): instance ids must be unique, rename one\n";
        if out.status.code() != Some(2) || !out.stdout.is_empty() || stderr != expected {
            return Err(format!(
                "{command}: status {:?}, stdout {:?}, stderr {stderr:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            )
            .into());
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("corpus_is_well_formed", well_formed),
        Trial::test("same_name_twice", same_name_twice),
    ];
    for case in cases() {
        let stem = case
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for command in ["run", "list"] {
            let case = case.clone();
            trials.push(Trial::test(format!("{command}/{stem}"), move || {
                check(command, &case)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
