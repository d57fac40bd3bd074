//! Warm starts give the observations of a cold boot, byte for byte. With a guest kernel (the
//! first `BPFCASE_KERNELS` names, or `BPFCASE_WARM_KERNEL`; otherwise these report themselves
//! ignored), each in a cache of its own (the kernel image given by path, as `bpfcase fetch`
//! finds it in the suite's cache, so nothing downloads):
//!
//! - the whole suite cold (`--cold`: nothing is saved), then twice warm: the first boots and
//!   saves the guest, the second restores it — each says so in a note — and all three report
//!   the same observations; the cache then holds one saved guest and nothing partial;
//! - a saved guest whose bytes were damaged is found out, removed, the guest boots cold with a
//!   note and is saved anew, with the cold boot's observations; the next run restores it;
//! - a saved guest whose header is right but whose QEMU state is garbage (its hash made to
//!   match) does not restore: a note says so, the guest boots cold, and the results stand.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use sha2::{Digest, Sha256};
use support::*;

/// A few instances of one case file: enough to compare, quick to run.
const FILTER: &str = "get_flags/flags=0x[01]/*";
/// The saved guest's header size (`vm::snapshot::HEADER`).
const HEADER: usize = bpfcase::vm::snapshot::HEADER as usize;

fn kernel() -> Option<String> {
    std::env::var("BPFCASE_WARM_KERNEL")
        .ok()
        .or_else(|| guest_kernels().into_iter().next())
}

/// The image of `spec`, from the suite's cache (`bpfcase fetch`).
fn image(spec: &str) -> Result<PathBuf, Failed> {
    let out = bpfcase(&new_mark("fetch")).args(["fetch", spec]).output()?;
    let stdout = text(&out.stdout);
    let path = stdout
        .trim_end()
        .strip_prefix(&format!("{spec}: "))
        .and_then(|rest| rest.rsplit_once(" (").map(|(p, _)| p))
        .ok_or_else(|| format!("bpfcase fetch {spec}: {stdout}{}", text(&out.stderr)))?;
    Ok(PathBuf::from(path))
}

/// One `bpfcase vm` run: its observation lines, and its notes.
struct Run {
    observations: Vec<String>,
    notes: Vec<String>,
}

fn vm(cache: &Path, image: &Path, flags: &[&str]) -> Result<Run, Failed> {
    let out: Output = bpfcase(&new_mark("warm"))
        .args(["vm", "--accel", "tcg", "--format", "json", "--kernel"])
        .arg(image)
        .args(flags)
        .arg(workspace().join("cases"))
        .env("XDG_CACHE_HOME", cache)
        .env_remove("BPFCASE_WARM")
        .env_remove("BPFCASE_QEMU")
        .output()?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let kernel = stdout.lines().next().unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(kernel)
        .map_err(|e| format!("no kernel record ({e}): {stdout}{stderr}"))?;
    let problems = &record["kernel"]["problems"];
    if problems.as_array().is_none_or(|p| !p.is_empty()) {
        return Err(format!("problems: {problems} ({stderr})").into());
    }
    let observations: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains("\"observation\""))
        .map(String::from)
        .collect();
    if observations.is_empty() {
        return Err(format!("no observations: {stdout}{stderr}").into());
    }
    let notes = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("note: "))
        .map(String::from)
        .collect();
    Ok(Run {
        observations,
        notes,
    })
}

fn has(r: &Run, what: &str) -> Result<(), Failed> {
    if r.notes.iter().any(|n| n.contains(what)) {
        Ok(())
    } else {
        Err(format!("no note says `{what}`: {:?}", r.notes).into())
    }
}

fn same(cold: &Run, other: &Run, what: &str) -> Result<(), Failed> {
    if cold.observations == other.observations {
        return Ok(());
    }
    let diff = cold
        .observations
        .iter()
        .zip(&other.observations)
        .find(|(a, b)| a != b)
        .map_or_else(
            || {
                format!(
                    "{} vs {} observations",
                    cold.observations.len(),
                    other.observations.len()
                )
            },
            |(a, b)| format!("\n  cold: {a}\n  {what}: {b}"),
        );
    Err(format!("{what} differs from the cold boot: {diff}").into())
}

/// The files in the cache's `warm` directory.
fn saved(cache: &Path) -> Vec<String> {
    let mut e = entries(&cache.join("bpfcase/warm"));
    e.sort();
    e
}

/// The one saved guest of a cache.
fn saved_file(cache: &Path) -> Result<PathBuf, Failed> {
    match saved(cache).as_slice() {
        [one] if one.ends_with(".vmstate") => Ok(cache.join("bpfcase/warm").join(one)),
        other => Err(format!("not one saved guest: {other:?}").into()),
    }
}

fn cold_then_warm(image: &Path) -> Result<(), Failed> {
    let cache = tempfile::tempdir()?;
    let cold = vm(cache.path(), image, &["--cold"])?;
    if cold.observations.len() < 100 {
        return Err(format!("only {} observations", cold.observations.len()).into());
    }
    assert_eq!(saved(cache.path()), Vec::<String>::new(), "--cold saved");
    let first = vm(cache.path(), image, &[])?;
    has(&first, "saved the booted guest")?;
    same(&cold, &first, "the run that saved the guest")?;
    let file = saved_file(cache.path())?;
    let warm = vm(cache.path(), image, &[])?;
    has(&warm, "warm start from")?;
    same(&cold, &warm, "the warm start")?;
    // Restoring leaves the saved guest as it was.
    assert_eq!(saved_file(cache.path())?, file);
    Ok(())
}

/// A cache with a saved guest and the cold boot's observations.
fn saved_guest(image: &Path) -> Result<(tempfile::TempDir, Run, PathBuf), Failed> {
    let cache = tempfile::tempdir()?;
    let cold = vm(cache.path(), image, &["--cold", "--filter", FILTER])?;
    let first = vm(cache.path(), image, &["--filter", FILTER])?;
    has(&first, "saved the booted guest")?;
    same(&cold, &first, "the run that saved the guest")?;
    let file = saved_file(cache.path())?;
    Ok((cache, cold, file))
}

/// After the damaged guest: a cold boot with the cold observations that saved it anew, then
/// a warm start.
fn recovers(cache: &Path, image: &Path, cold: &Run, note: &str) -> Result<(), Failed> {
    let again = vm(cache, image, &["--filter", FILTER])?;
    has(&again, note)?;
    has(&again, "booting cold")?;
    has(&again, "saved the booted guest")?;
    same(cold, &again, "the cold boot after the damaged guest")?;
    let warm = vm(cache, image, &["--filter", FILTER])?;
    has(&warm, "warm start from")?;
    same(cold, &warm, "the warm start from the guest saved anew")
}

fn damaged_bytes(image: &Path) -> Result<(), Failed> {
    let (cache, cold, file) = saved_guest(image)?;
    let mut bytes = std::fs::read(&file)?;
    let mid = HEADER + (bytes.len() - HEADER) / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes)?;
    recovers(cache.path(), image, &cold, "is damaged")
}

fn garbage_state(image: &Path) -> Result<(), Failed> {
    let (cache, cold, file) = saved_guest(image)?;
    let mut bytes = std::fs::read(&file)?;
    // Garbage where QEMU's stream begins, and a header whose hash agrees with it.
    for (i, b) in bytes[HEADER..HEADER + 4096].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let magic = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no magic line")?
        + 1;
    let end = bytes[..HEADER]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(HEADER);
    let mut h: serde_json::Value = serde_json::from_slice(&bytes[magic..end])?;
    let sha: String = Sha256::digest(&bytes[HEADER..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    h["sha256"] = sha.into();
    let h = serde_json::to_vec(&h)?;
    bytes[magic..end].fill(0);
    bytes[magic..magic + h.len()].copy_from_slice(&h);
    std::fs::write(&file, &bytes)?;
    recovers(cache.path(), image, &cold, "did not restore")
}

/// A test of one kernel image.
type Test = fn(&Path) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let tests: [(&str, Test); 3] = [
        ("cold_then_warm_observe_the_same", cold_then_warm),
        ("damaged_saved_guest_boots_cold", damaged_bytes),
        ("unrestorable_saved_guest_boots_cold", garbage_state),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            Trial::ignorable_test(name, move || {
                let Some(spec) = kernel() else {
                    return Ok(Completion::ignored_with(
                        "needs a guest kernel: set BPFCASE_KERNELS (scripts/test does)",
                    ));
                };
                f(&image(&spec)?).map(|()| Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
