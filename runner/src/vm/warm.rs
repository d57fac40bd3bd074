//! Warm starts. The first guest of a kernel (with given settings) boots an initramfs without
//! cases; its runner says `ready` and waits on its input port. bpfcase then saves the guest
//! over QMP (`migrate` into a file, see `snapshot`), lets it go on (`cont`) and sends it the
//! cases. Later guests of that kernel restore the saved state (`-incoming defer`, then
//! `migrate-incoming`: ≈ 0.3 s instead of a 2.5–4.5 s boot under TCG) and get their cases
//! the same way. The guest runs exactly the code a cold boot runs, from the same state, so
//! its observations are the same.
//!
//! A saved guest that is stale, damaged or does not restore means a cold boot (which saves it
//! anew), with a note. Warm starts are off with `--cold` or `BPFCASE_WARM=0`, and while
//! another process saves the same guest (that guest boots cold).
//!
//! Owns: the save and restore handshakes. Must not: interpret what the guest sends (that is
//! `watch`), or keep anything but the saved guests (that is `snapshot`).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::qmp::Qmp;
use super::snapshot::{self, Key, Lookup, Pending, Snapshot};
use super::watch::{self, Handshake, Sizes, Watched};
use super::{frame, io, qemu, Progress, VmError};

/// How a guest started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Booted (nothing saved).
    Cold,
    /// Booted, then saved for later warm starts.
    Saved,
    /// Restored from a saved guest.
    Warm,
}

impl Start {
    pub fn name(self) -> &'static str {
        match self {
            Start::Cold => "cold",
            Start::Saved => "saved",
            Start::Warm => "warm",
        }
    }
}

/// The longest socket path a `sockaddr_un` takes, with room to spare.
const SOCKET_PATH_MAX: usize = 100;
/// How long restoring or saving a guest may take at most (the watchdog may end it sooner).
const HANDSHAKE: Duration = Duration::from_secs(120);
/// The name QEMU knows the state file by (`getfd`).
const STATE_FD: &str = "bpfcase-state";

/// What a warm start needs from `vm`.
pub(super) struct Ask<'a> {
    pub guest: qemu::Guest,
    pub kernel_sha256: &'a str,
    pub init: &'a [u8],
    pub delivery: Vec<u8>,
    pub cache: &'a Path,
    pub work: &'a Path,
    pub timeout: Duration,
    pub sizes: Sizes,
    pub progress: &'a dyn Fn(Progress),
    /// Names the kernel in notes.
    pub who: String,
}

/// A guest that started through this module.
pub(super) struct Outcome {
    pub run: Watched,
    pub start: Start,
}

/// Runs the guest warm (restored, or booted and saved), or says why not: None means boot it
/// cold as before. Notes go to `notes` either way.
pub(super) fn boot(ask: Ask<'_>, notes: &mut Vec<String>) -> Result<Option<Outcome>, VmError> {
    let Some(qemu_version) = qemu_version(&ask.guest.qemu) else {
        return Ok(None);
    };
    let control = qemu::Control {
        qmp: ask.work.join("qmp.sock"),
        input: ask.work.join("in.sock"),
        incoming: false,
    };
    let long = [&control.qmp, &control.input]
        .iter()
        .any(|p| p.as_os_str().len() > SOCKET_PATH_MAX);
    if long {
        notes.push(format!(
            "{}: no warm start: the work directory's path is too long for a socket ({}); a \
             shorter TMPDIR helps",
            ask.who,
            ask.work.display()
        ));
        return Ok(None);
    }
    let key = Key {
        kernel_sha256: ask.kernel_sha256.to_string(),
        runner_sha256: snapshot::hex(&Sha256::digest(ask.init)),
        qemu_version,
        args: key_args(&ask.guest),
    };
    let mut why_cold = None;
    let t0 = Instant::now();
    let found = snapshot::lookup(ask.cache, &key);
    tracing::debug!(target: "warm", "{}: key and lookup in {:?}", ask.who, t0.elapsed());
    match found {
        Lookup::Hit(snap) => {
            let path = snap.path.clone();
            match restore(&ask, &control, snap)? {
                Ok(run) => {
                    notes.push(format!(
                        "{}: warm start from {} (--cold boots afresh)",
                        ask.who,
                        path.display()
                    ));
                    return Ok(Some(Outcome {
                        run,
                        start: Start::Warm,
                    }));
                }
                Err(e) => why_cold = Some(format!("{} did not restore: {e}", path.display())),
            }
        }
        Lookup::Miss => {}
        Lookup::Unusable(why) => why_cold = Some(why),
    }
    if let Some(why) = why_cold {
        notes.push(format!("{}: the saved guest {why}; booting cold", ask.who));
    }
    let pending = match Pending::begin(ask.cache, &key) {
        Ok(Some(p)) => p,
        // Another process is saving this guest: this one boots as before.
        Ok(None) => return Ok(None),
        Err(e) => {
            notes.push(format!("{}: no warm start: {e}", ask.who));
            return Ok(None);
        }
    };
    let g = base_guest(&ask, &control, false)?;
    let mut d = Driver::new(&ask, &control, Mode::Save(Some(pending)), Vec::new());
    let run = watch::watch(
        &g,
        ask.timeout,
        None,
        &ask.sizes,
        ask.progress,
        Some(&mut d),
    )?;
    let no_input = format!("guest error: {}", super::guest::NO_INPUT);
    if let Some(p) = run.problems.iter().find(|p| p.starts_with(&no_input)) {
        notes.push(format!("{}: no warm start: {p}", ask.who));
        return Ok(None);
    }
    let start = match d.saved.take() {
        Some(Ok((path, bytes, took))) => {
            notes.push(format!(
                "{}: saved the booted guest ({:.0} MB in {:.1} s) as {}: later runs start from \
                 it (--cold boots afresh)",
                ask.who,
                bytes as f64 / 1e6,
                took.as_secs_f64(),
                path.display()
            ));
            Start::Saved
        }
        Some(Err(e)) => {
            notes.push(format!("{}: could not save the booted guest: {e}", ask.who));
            Start::Cold
        }
        None => Start::Cold,
    };
    Ok(Some(Outcome { run, start }))
}

/// Restores `snap` and runs the cases in it: Err when the guest never came back (the saved
/// guest is then removed).
fn restore(
    ask: &Ask<'_>,
    control: &qemu::Control,
    snap: Snapshot,
) -> Result<Result<Watched, String>, VmError> {
    // QEMU loads the same initramfs as at the save (the guest is past using it).
    let g = base_guest(ask, control, true)?;
    let mut d = Driver::new(ask, control, Mode::Restore(&snap), snap.console.clone());
    let run = watch::watch(
        &g,
        ask.timeout,
        None,
        &ask.sizes,
        ask.progress,
        Some(&mut d),
    )?;
    if run.hello.is_some() {
        return Ok(Ok(run));
    }
    snapshot::forget(ask.cache, &snap);
    let qemu_said: Vec<&str> = run
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let why = match (d.failed.take(), run.problems.first()) {
        _ if !qemu_said.is_empty() => format!("QEMU said: {}", qemu_said.join("; ")),
        (Some(f), _) => f,
        (None, p) => format!("the runner never answered ({})", p.map_or("", |p| p)),
    };
    Ok(Err(why))
}

/// The guest with the initramfs without cases (written into the work directory) and the
/// control sockets.
fn base_guest(ask: &Ask<'_>, c: &qemu::Control, incoming: bool) -> Result<qemu::Guest, VmError> {
    let image = super::base_initramfs(ask.init).finish();
    let mut g = ask.guest.clone();
    g.initrd = ask.work.join("initrd-base.cpio");
    std::fs::write(&g.initrd, image).map_err(io("writing the initramfs"))?;
    g.control = Some(qemu::Control {
        incoming,
        ..c.clone()
    });
    Ok(g)
}

/// The QEMU command line that decides the guest's state: this run's paths replaced.
fn key_args(g: &qemu::Guest) -> Vec<String> {
    let template = qemu::Guest {
        qemu: "qemu".into(),
        kernel: "KERNEL".into(),
        initrd: "INITRD".into(),
        console: "CONSOLE".into(),
        results: "RESULTS".into(),
        control: Some(qemu::Control {
            qmp: "QMP".into(),
            input: "INPUT".into(),
            incoming: false,
        }),
        ..g.clone()
    };
    qemu::command(&template)
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// `qemu --version`'s first line, asked once per QEMU binary.
fn qemu_version(qemu: &Path) -> Option<String> {
    static KNOWN: Mutex<Vec<(PathBuf, Option<String>)>> = Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, v)) = known.iter().find(|(q, _)| q == qemu) {
        return v.clone();
    }
    let v = super::accel::key(qemu).map(|k| k.qemu_version);
    known.push((qemu.to_path_buf(), v.clone()));
    v
}

enum Mode<'a> {
    /// Waiting for `ready`, then saving into this file.
    Save(Option<Pending>),
    /// Restoring from this saved guest.
    Restore(&'a Snapshot),
}

/// The handshake of one guest: once (restore: at once; save: after `ready`), the guest is
/// restored or saved and gets its cases.
struct Driver<'a> {
    mode: Mode<'a>,
    qmp: PathBuf,
    input: PathBuf,
    console: PathBuf,
    delivery: Vec<u8>,
    console_before: Vec<u8>,
    done: bool,
    /// Kept open while the guest runs.
    sent: Option<UnixStream>,
    /// A restore that failed: why.
    failed: Option<String>,
    /// A save: where, how big, how long; or why not.
    saved: Option<Result<(PathBuf, u64, Duration), String>>,
}

impl<'a> Driver<'a> {
    fn new(ask: &Ask<'_>, c: &qemu::Control, mode: Mode<'a>, before: Vec<u8>) -> Driver<'a> {
        Driver {
            mode,
            qmp: c.qmp.clone(),
            input: c.input.clone(),
            console: ask.guest.console.clone(),
            delivery: ask.delivery.clone(),
            console_before: before,
            done: false,
            sent: None,
            failed: None,
            saved: None,
        }
    }

    /// Restores the guest (over `q`) and waits until it runs.
    fn restore(&mut self, mut q: Qmp, snap: &Snapshot, deadline: Instant) -> Result<(), String> {
        q.send_fd(snap.file.as_fd(), STATE_FD)?;
        q.execute(
            "migrate-incoming",
            json!({ "uri": format!("fd:{STATE_FD}") }),
        )?;
        loop {
            let st = q.execute("query-status", json!({}))?;
            match st["status"].as_str() {
                Some("running") => return Ok(()),
                Some("inmigrate") | Some("prelaunch") | Some("restore-vm") => {}
                other => return Err(format!("the guest is {}", other.unwrap_or("?"))),
            }
            if Instant::now() > deadline {
                return Err("the restore did not finish in time".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Saves the ready guest into `p`, lets it go on; the saved file and its size.
    fn save(&mut self, p: Pending, deadline: Instant) -> Result<(PathBuf, u64), String> {
        let mut q = Qmp::connect(&self.qmp, deadline)?;
        q.send_fd(p.file().as_fd(), STATE_FD)?;
        q.execute("migrate", json!({ "uri": format!("fd:{STATE_FD}") }))?;
        let outcome = loop {
            let m = q.execute("query-migrate", json!({}))?;
            match m["status"].as_str() {
                Some("completed") => break Ok(()),
                Some(s @ ("failed" | "cancelled")) => {
                    let e = m["error-desc"].as_str().unwrap_or("");
                    break Err(format!("the migration {s} {e}").trim_end().to_string());
                }
                _ if Instant::now() > deadline => {
                    let _ = q.execute("migrate_cancel", json!({}));
                    break Err("the migration did not finish in time".into());
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        // The guest stopped at the save: its console is complete for the saved state.
        let console = std::fs::read(&self.console).unwrap_or_default();
        // The guest goes on whatever became of the save (`cont` on a running guest is no-op).
        let cont = q.execute("cont", json!({}));
        self.deliver()?;
        cont?;
        outcome?;
        p.finish(&console)
    }

    fn deliver(&mut self) -> Result<(), String> {
        let mut s = UnixStream::connect(&self.input)
            .map_err(|e| format!("connecting to the guest's input port: {e}"))?;
        s.write_all(&self.delivery)
            .map_err(|e| format!("sending the cases: {e}"))?;
        self.sent = Some(s);
        Ok(())
    }
}

impl Handshake for Driver<'_> {
    fn poll(&mut self, results: &[u8], deadline: Instant) {
        if self.done {
            return;
        }
        let deadline = deadline.min(Instant::now() + HANDSHAKE);
        if let Mode::Restore(snap) = self.mode {
            // Tried at each poll until QEMU listens: the watch sees a QEMU that exits first.
            let q = match Qmp::try_connect(&self.qmp) {
                Ok(None) => return,
                Ok(Some(q)) => Ok(q),
                Err(e) => Err(e),
            };
            self.done = true;
            let t0 = Instant::now();
            let r = q.and_then(|q| self.restore(q, snap, deadline));
            tracing::debug!(target: "warm", "restored in {:?}", t0.elapsed());
            self.failed = r.and_then(|()| self.deliver()).err();
            return;
        }
        if !frame::decode(results).0.iter().any(|f| f.kind == "ready") {
            return;
        }
        self.done = true;
        let Mode::Save(p) = &mut self.mode else {
            return;
        };
        let Some(p) = p.take() else { return };
        let t0 = Instant::now();
        let r = self.save(p, deadline);
        if self.sent.is_none() {
            // The cases never went out (QMP failed early): the guest still needs them.
            let _ = self.deliver();
        }
        self.saved = Some(r.map(|(path, n)| (path, n, t0.elapsed())));
    }

    fn stop(&self) -> bool {
        self.failed.is_some()
    }

    fn console_before(&self) -> &[u8] {
        &self.console_before
    }
}
