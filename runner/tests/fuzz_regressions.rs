//! Every input the fuzzer ever crashed on stays fixed: each file of `fuzz/regressions/` goes
//! through the fuzz target's own entry point (`fuzz/src/pipeline.rs`, included here as a
//! module), one test per file, and must not panic. The seed corpus goes through it too: the
//! hand-made seeds in `fuzz/seeds/` (each a valid case, except those named `error*`, which must
//! be rejected) and the shipped cases. And the target's JSON-aware mutator (`fuzz/src/mutate.rs`)
//! keeps JSON JSON. No kernel, no root.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "../../fuzz/src/mutate.rs"]
mod mutate;
#[path = "../../fuzz/src/pipeline.rs"]
mod pipeline;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of a folder, sorted, without its README.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"));
    v.sort();
    v
}

fn replay(file: &Path) -> Result<(), Failed> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    pipeline::pipeline(&data);
    Ok(())
}

/// A seed is worth its place only if it reaches what it was written for: a valid case gets
/// through the parser to the compiler, an `error*` seed exercises the located errors.
fn seed(file: &Path) -> Result<(), Failed> {
    replay(file)?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed = bpfcase::case::parse(file, &text);
    let stem = file
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    match parsed {
        Ok(c) if stem.starts_with("error") => Err(format!(
            "{} is meant to be invalid, but parses into {} instances",
            file.display(),
            c.instances.len()
        )
        .into()),
        Err(e) if !stem.starts_with("error") => Err(format!("seed no longer valid: {e}").into()),
        Ok(c) if c.instances.is_empty() => {
            Err(format!("{} has no instances", file.display()).into())
        }
        _ => Ok(()),
    }
}

/// The byte mutator's stand-in: marks that the JSON-aware mutator passed its turn on.
fn fallback(_: &mut [u8], _: usize, _: usize) -> usize {
    usize::MAX
}

/// A JSON input comes back as JSON, most often changed; the rest goes to the byte mutator.
fn mutator_keeps_json() -> Result<(), Failed> {
    let seed = br#"{"about":"x","maps":{"st":{"type":"task_storage","value_size":8}},"steps":[{"prog":[{"current_task":{}}]}]}"#;
    let before: serde_json::Value = serde_json::from_slice(seed).map_err(|e| e.to_string())?;
    let (mut changed, mut fell_back) = (0, 0);
    for s in 0..400 {
        let mut buf = vec![0u8; 4096];
        buf[..seed.len()].copy_from_slice(seed);
        let n = mutate::mutate(&mut buf, seed.len(), 4096, s, fallback);
        if n == usize::MAX {
            fell_back += 1;
            continue;
        }
        let after: serde_json::Value = serde_json::from_slice(&buf[..n]).map_err(|e| {
            format!(
                "seed {s} gave no JSON ({e}): {:?}",
                String::from_utf8_lossy(&buf[..n])
            )
        })?;
        changed += usize::from(after != before);
    }
    if !(100..=300).contains(&fell_back) || changed < 100 {
        return Err(format!(
            "of 400 mutations {fell_back} fell back and {changed} changed the document"
        )
        .into());
    }
    // Too little room for the document: the byte mutator's turn.
    let mut small = seed.to_vec();
    let n = small.len();
    for s in 0..20 {
        if mutate::mutate(&mut small, n, 10, s, fallback) != usize::MAX {
            return Err(format!("seed {s}: a mutation longer than max_size").into());
        }
    }
    let mut text = *b"{not json";
    if mutate::mutate(&mut text, 9, 9, 1, fallback) != usize::MAX {
        return Err("a text that is not JSON was mutated as JSON".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = repo();
    let mut trials = Vec::new();
    let named = |kind: &str, f: &Path| {
        let name = f
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        format!("{kind}::{name}")
    };
    for f in files(&root.join("fuzz/regressions")) {
        let name = named("regression", &f);
        trials.push(Trial::test(name, move || replay(&f)));
    }
    let seeds = files(&root.join("fuzz/seeds"));
    let seeds_found = seeds.len();
    for f in seeds {
        let name = named("seed", &f);
        trials.push(Trial::test(name, move || seed(&f)));
    }
    trials.push(Trial::test("seed::count", move || {
        if seeds_found < 5 {
            return Err(format!(
                "expected the hand-made seeds in fuzz/seeds/, found {seeds_found}"
            )
            .into());
        }
        Ok(())
    }));
    trials.push(Trial::test("mutator::keeps_json", mutator_keeps_json));
    let shipped = bpfcase::case::discover(&[root.join("cases")]).unwrap_or_default();
    for f in shipped {
        let name = format!(
            "case::{}",
            f.strip_prefix(root.join("cases")).unwrap_or(&f).display()
        );
        trials.push(Trial::test(name, move || replay(&f)));
    }
    libtest_mimic::run(&args, trials).exit();
}
