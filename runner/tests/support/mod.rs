//! Helpers shared by the `bpfcase vm` / `bpfcase fetch` tests: running the binary, finding the
//! processes it left (by a marker in their environment, which every descendant inherits), and
//! signalling it.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bpfcase::vm::kernels::{KernelSpec, Manifest};

/// The environment variable that marks every process a test starts, and their descendants.
pub const MARK: &str = "BPFCASE_TEST_MARK";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace exists")
}

/// The binary, with a fresh marker and no inherited marker.
pub fn bpfcase(mark: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bpfcase"));
    c.env(MARK, mark);
    c
}

/// A marker no other test uses.
pub fn new_mark(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A process carrying a marker: pid, command name, state letter (`Z` for a zombie).
#[derive(Clone, Debug)]
pub struct Marked {
    pub pid: u32,
    pub comm: String,
    pub state: char,
}

/// Every process whose environment holds `MARK=mark`.
pub fn marked(mark: &str) -> Vec<Marked> {
    let needle = format!("{MARK}={mark}\0");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if !env.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // `pid (comm) S …`: comm may hold spaces and parentheses, the state follows the last `)`.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        out.push(Marked {
            pid,
            comm: stat[open + 1..close].to_string(),
            state: stat[close + 1..].trim_start().chars().next().unwrap_or('?'),
        });
    }
    out
}

/// Marked processes that still run (zombies are dead: they only wait for a parent to reap them).
pub fn alive(mark: &str) -> Vec<Marked> {
    marked(mark)
        .into_iter()
        .filter(|p| !matches!(p.state, 'Z' | 'X'))
        .collect()
}

/// Polls `f` until it gives something or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Marked processes still running `limit` after the call (they get that long to die).
pub fn survivors(mark: &str, limit: Duration) -> Vec<Marked> {
    let mut last = Vec::new();
    let gone = poll(limit, || {
        last = alive(mark);
        last.is_empty().then_some(())
    });
    if gone.is_some() {
        Vec::new()
    } else {
        last
    }
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// The guest kernels named by `BPFCASE_KERNELS` (`default` expanded), without `host`.
pub fn guest_kernels() -> Vec<String> {
    let list = std::env::var("BPFCASE_KERNELS").unwrap_or_default();
    let mut out = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if k == "default" {
            out.extend(Manifest::builtin().map(|m| m.default).unwrap_or_default());
        } else if k != "host" {
            out.push(k.to_string());
        }
    }
    out
}

/// `(series, package, version)` of the manifest's pinned Debian kernels.
pub fn pins(m: &Manifest) -> Vec<(String, String, String)> {
    m.debian
        .iter()
        .map(|(s, p)| (s.clone(), p.package.clone(), p.version.clone()))
        .collect()
}

/// The series of a `debian:<series>` spec.
pub fn series(spec: &str) -> Option<String> {
    match spec.parse() {
        Ok(KernelSpec::Debian(s)) => Some(s),
        _ => None,
    }
}

/// Writes an executable script. Call it before starting test threads: a script open for
/// writing while another thread forks cannot be executed for a moment (ETXTBSY).
pub fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("writing a test script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("making a test script executable");
}

/// Entries of a directory (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
