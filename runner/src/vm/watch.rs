//! Watching one QEMU process: start it, follow the results port until the guest is done, dies
//! or overstays the watchdog, then collect its frames and what went wrong. A warm start's
//! handshake ([`Handshake`]) runs in the same loop, before the runner's hello.
//!
//! Owns: the watch loop and the collection of one guest's frames. Must not: choose how the
//! guest starts (that is `vm` and `warm`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::diagnose::{self, End};
use super::guest::{Hello, ObsFrame};
use super::{frame, io, kernels, procs, qemu, squeeze, Progress, VmError, PROGRESS_EVERY};
use crate::report::Summary;
use crate::results::Breakdown;

/// What a guest that is saved or restored does before the runner's hello (see `warm`).
pub(super) trait Handshake {
    /// Called every few milliseconds until the hello arrives, with the results port's bytes so
    /// far, until `deadline` (the watchdog).
    fn poll(&mut self, results: &[u8], deadline: Instant);
    /// Whether the guest is beyond help (its restore failed): QEMU is stopped.
    fn stop(&self) -> bool;
    /// The console of the guest before this QEMU process (a restored guest's boot).
    fn console_before(&self) -> &[u8];
}

/// What the diagnosis needs to know about memory: the guest's, the initramfs's and the
/// kernel's.
pub(super) struct Sizes {
    pub memory_mb: u32,
    pub initramfs_bytes: u64,
    pub kernel: Option<kernels::BootHeader>,
}

pub(super) struct Watched {
    pub hello: Option<Hello>,
    pub records: Vec<(usize, serde_json::Value)>,
    pub summary: Option<Summary>,
    /// Where the runner's time went, as the guest measured it.
    pub breakdown: Option<Breakdown>,
    pub problems: Vec<String>,
    pub console: String,
    pub boot_to_hello: Option<Duration>,
    /// What QEMU printed.
    pub stderr: String,
}

/// Runs QEMU until it exits, the watchdog fires, or (with `probe`) no hello came in time.
pub(super) fn watch(
    g: &qemu::Guest,
    timeout: Duration,
    probe: Option<Duration>,
    sizes: &Sizes,
    progress: &dyn Fn(Progress),
    mut handshake: Option<&mut dyn Handshake>,
) -> Result<Watched, VmError> {
    let _ = std::fs::remove_file(&g.console);
    let _ = std::fs::remove_file(&g.results);
    let start = Instant::now();
    // A registered child: it dies with this process, and a signal to this process stops it.
    let mut child = procs::spawn(
        qemu::command(g)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    )
    .map_err(io(format!("starting {}", g.qemu.display())))?;
    let mut boot_to_hello = None;
    let (mut observed, mut counted_at) = (0, start);
    let end = loop {
        if let Some(st) = child.try_wait().map_err(io("waiting for QEMU"))? {
            break End::Exited(st);
        }
        let elapsed = start.elapsed();
        if boot_to_hello.is_none() {
            let bytes = std::fs::read(&g.results).unwrap_or_default();
            if frame::decode(&bytes).0.iter().any(|f| f.kind == "hello") {
                boot_to_hello = Some(elapsed);
                progress(Progress::Booted);
            } else if let Some(h) = handshake.as_deref_mut() {
                h.poll(&bytes, start + timeout);
                if h.stop() {
                    child.kill();
                    break End::Probe;
                }
            } else if probe.is_some_and(|p| elapsed > p) {
                child.kill();
                break End::Probe;
            }
        } else if counted_at.elapsed() > PROGRESS_EVERY {
            counted_at = Instant::now();
            let bytes = std::fs::read(&g.results).unwrap_or_default();
            let n = frame::decode(&bytes)
                .0
                .iter()
                .filter(|f| f.kind == "obs" || f.kind == squeeze::KIND)
                .count();
            if n != observed {
                observed = n;
                progress(Progress::Observed(n));
            }
        }
        if boot_to_hello.is_some() && finished(&g.results) {
            // Every result is in: the guest's power-off adds nothing but time.
            child.kill();
            break End::Finished;
        }
        if elapsed > timeout {
            child.kill();
            break End::Watchdog(timeout);
        }
        std::thread::sleep(Duration::from_millis(if boot_to_hello.is_some() {
            20
        } else {
            5
        }));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.child().stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let bytes = std::fs::read(&g.results).unwrap_or_default();
    let mut console = handshake
        .as_deref()
        .map_or_else(Vec::new, |h| h.console_before().to_vec());
    console.extend(std::fs::read(&g.console).unwrap_or_default());
    let console = String::from_utf8_lossy(&console).into_owned();
    let (frames, truncated) = frame::decode(&bytes);
    let mut w = Watched {
        hello: None,
        records: Vec::new(),
        summary: None,
        breakdown: None,
        problems: Vec::new(),
        console,
        boot_to_hello,
        stderr: stderr.clone(),
    };
    let mut inflater = squeeze::Inflater::default();
    fn observation(payload: &[u8], w: &mut Watched) {
        match serde_json::from_slice::<ObsFrame>(payload) {
            Ok(o) => w.records.push((o.file, o.line)),
            Err(e) => w
                .problems
                .push(format!("unreadable observation frame: {e}")),
        }
    }
    for f in frames {
        match f.kind.as_str() {
            "hello" => w.hello = serde_json::from_slice(&f.payload).ok(),
            "obs" => observation(&f.payload, &mut w),
            squeeze::KIND => match inflater.chunk(&f.payload) {
                Ok(json) => observation(&json, &mut w),
                Err(e) => w.problems.push(e),
            },
            "done" => w.summary = serde_json::from_slice(&f.payload).ok(),
            "timing" => w.breakdown = serde_json::from_slice(&f.payload).ok(),
            // A guest to be saved has booted (see `warm`); its hello follows its cases.
            "ready" => {}
            "error" => w.problems.push(format!(
                "guest error: {}",
                String::from_utf8_lossy(&f.payload)
            )),
            other => w.problems.push(format!("unknown frame kind `{other}`")),
        }
    }
    if truncated {
        w.problems
            .push("the result stream ends inside a frame: the guest died while writing".into());
    }
    let facts = diagnose::Facts {
        end,
        stderr: &stderr,
        console: &w.console,
        elapsed,
        hello: w.hello.is_some(),
        done: w.summary.is_some(),
        memory_mb: sizes.memory_mb,
        initramfs_bytes: sizes.initramfs_bytes,
        kernel: sizes.kernel,
        cmdline: &qemu::cmdline(&g.append),
    };
    let mut problems = diagnose::problems(&facts);
    problems.append(&mut w.problems);
    w.problems = problems;
    Ok(w)
}

/// Whether the results file holds the final `done` frame (checked cheaply on its tail first).
fn finished(results: &Path) -> bool {
    let bytes = std::fs::read(results).unwrap_or_default();
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(14).any(|w| w == b"@@bpfcase done")
        && frame::decode(&bytes).0.iter().any(|f| f.kind == "done")
}
