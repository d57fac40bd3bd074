//! Consumers of the run pipeline's events on a terminal: the per-kernel text or JSON lines on
//! stdout, printed as each kernel finishes, and a progress display on stderr (only when stderr
//! is a terminal).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bpfcase::pipeline::Event;
use bpfcase::report;
use bpfcase::results::{InstanceResult, KernelRun, VerdictKind};

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Human,
    Json,
    /// One summary line per kernel (for `report`, whose files hold the rest).
    Summary,
}

/// Prints each kernel's block as soon as it and the kernels before it in the plan are done
/// (the output keeps the plan's order); remembers whether anything failed.
pub struct Printer {
    style: Style,
    /// The `about` of each case, by name, for the case headers.
    about: Vec<(String, String, String)>,
    /// The kernels still to print, in plan order, and those done but waiting for an earlier one.
    order: std::collections::VecDeque<usize>,
    done: std::collections::BTreeMap<usize, (Box<KernelRun>, String)>,
    pub failed: bool,
}

impl Printer {
    /// `kernels`: the indexes of the plan's kernels that will run, in order.
    pub fn new(style: Style, cases: &[bpfcase::case::Case], kernels: Vec<usize>) -> Printer {
        Printer {
            style,
            about: cases
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.file.display().to_string(),
                        c.about.clone(),
                    )
                })
                .collect(),
            order: kernels.into(),
            done: Default::default(),
            failed: false,
        }
    }

    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Resolved { spec, warnings, .. } => {
                for w in warnings {
                    eprintln!("warning: {spec}: {w}");
                }
            }
            Event::KernelDone {
                kernel,
                run,
                notes,
                console_tail,
            } => {
                for n in notes {
                    eprintln!("note: {n}");
                }
                self.failed |= kernel_failed(run);
                self.done
                    .insert(*kernel, (run.clone(), console_tail.clone()));
                while let Some((run, console_tail)) =
                    self.order.front().and_then(|k| self.done.remove(k))
                {
                    self.order.pop_front();
                    self.print(&run, &console_tail);
                }
            }
            _ => {}
        }
    }

    fn print(&self, run: &KernelRun, console_tail: &str) {
        let mut out = std::io::stdout().lock();
        match self.style {
            Style::Human => self.human(&mut out, run, console_tail),
            Style::Json => json(&mut out, run, console_tail, &self.about),
            Style::Summary => {
                let _ = writeln!(out, "{}: {}", run.identity.label, headline(run));
            }
        }
        let _ = out.flush();
    }

    fn human(&self, out: &mut dyn Write, run: &KernelRun, console_tail: &str) {
        let id = &run.identity;
        if not_had(run) {
            let _ = writeln!(
                out,
                "## {}: cannot run: {}",
                id.spec,
                run.unusable.as_deref().unwrap_or("?")
            );
            return;
        }
        match run.timings.first() {
            Some(t) if t.accel == "native" => {
                let _ = writeln!(out, "## {} ({})", id.label, id.origin);
            }
            t => {
                let _ = writeln!(
                    out,
                    "## {} ({}; release {}; {}; boot to runner {}; total {:.1} s)",
                    id.label,
                    id.origin,
                    id.release.as_deref().unwrap_or("?"),
                    t.map_or("?".to_string(), |t| match &t.start {
                        Some(start) => format!("{}, {start}", t.accel),
                        None => t.accel.clone(),
                    }),
                    t.and_then(|t| t.boot_s)
                        .map_or("-".into(), |s| format!("{s:.1} s")),
                    t.map_or(0.0, |t| t.total_s)
                );
            }
        }
        if let Some(u) = &run.unusable {
            let _ = writeln!(out, "!! this kernel cannot serve: {u}");
        }
        for p in &run.problems {
            let _ = writeln!(out, "!! {p}");
        }
        if id.release.is_none() || !run.problems.is_empty() {
            if console_tail.trim().is_empty() {
                let _ = writeln!(out, "-- the console is empty");
            } else {
                let _ = writeln!(out, "-- console (last lines):\n{console_tail}\n--");
            }
        }
        let mut current = "";
        for r in &run.instances {
            if r.case != current {
                current = &r.case;
                if let Some((name, file, about)) = self.about.iter().find(|(n, ..)| *n == r.case) {
                    let _ = writeln!(out, "# {name} ({file}): {about}");
                }
            }
            let mark = if r.verdict == VerdictKind::Fail {
                "✗ "
            } else {
                "  "
            };
            let _ = writeln!(out, "{mark}{}", report::line(&r.observation, None));
            for f in &r.failures {
                let _ = writeln!(out, "      {f}");
            }
        }
        if let Some(first) = run.did_not_report.first() {
            let total = run.instances.len() + run.did_not_report.len();
            let _ = writeln!(
                out,
                "!! {} of {total} instances did not report{}",
                run.did_not_report.len(),
                if id.release.is_some() {
                    format!(": the guest stopped during or just before `{first}`")
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(out, "{}: {}", id.label, run.summary);
    }
}

fn json(
    out: &mut dyn Write,
    run: &KernelRun,
    console_tail: &str,
    about: &[(String, String, String)],
) {
    let id = &run.identity;
    if not_had(run) {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "kernel": { "spec": id.spec, "error": run.unusable } })
        );
        return;
    }
    let _ = writeln!(
        out,
        "{}",
        serde_json::json!({ "kernel": {
            "spec": id.spec, "label": id.label, "origin": id.origin, "release": id.release,
            "unusable": run.unusable, "problems": run.problems, "timings": run.timings,
            "console_tail": console_tail,
        } })
    );
    for r in &run.instances {
        let mut rec = record(&id.label, r);
        if let Some((_, file, _)) = about.iter().find(|(n, ..)| *n == r.case) {
            rec["file"] = serde_json::json!(file);
        }
        let _ = writeln!(out, "{rec}");
    }
    let _ = writeln!(
        out,
        "{}",
        serde_json::json!({ "summary": run.summary, "kernel": id.label,
            "did_not_report": run.did_not_report.len(),
            "stopped_at": run.did_not_report.first().filter(|_| id.release.is_some()) })
    );
}

/// A kernel that could not be had (not found, not an image): nothing ran, no guest started.
fn not_had(run: &KernelRun) -> bool {
    run.instances.is_empty() && run.identity.release.is_none() && run.timings.is_empty()
}

/// The JSON line of one instance, as `run --format json` prints it.
pub fn record(kernel: &str, r: &InstanceResult) -> serde_json::Value {
    let verdict = match r.verdict {
        VerdictKind::Pass => serde_json::json!("pass"),
        VerdictKind::Fail => serde_json::json!({ "fail": r.failures }),
        VerdictKind::NoRule => serde_json::json!("no-rule"),
        VerdictKind::NotRun => serde_json::json!("not-run"),
    };
    serde_json::json!({ "kernel": kernel, "case": r.case, "observation": r.observation, "verdict": verdict })
}

/// Whether a kernel's run fails the command: an expectation that does not hold, an instance
/// the runner could not carry out, a kernel problem, a kernel that cannot serve, instances
/// that did not report.
pub fn kernel_failed(run: &KernelRun) -> bool {
    run.unusable.is_some()
        || !run.problems.is_empty()
        || !run.did_not_report.is_empty()
        || run.summary.errors > 0
        || run.summary.expect_fail > 0
}

fn headline(run: &KernelRun) -> String {
    match &run.unusable {
        Some(u) => format!("cannot serve: {u}"),
        None => {
            let mut s = run.summary.to_string();
            for t in &run.timings {
                let port = |what: &str, s: Option<f64>| {
                    s.map_or_else(String::new, |s| format!(" ({what} {s:.1} s)"))
                };
                let b = t.breakdown.as_ref();
                s.push_str(&match t.boot_s {
                    Some(boot) => format!(
                        "; {} {}: boot {boot:.1} s{}, cases {:.1} s{}, total {:.1} s",
                        t.accel,
                        t.start.as_deref().unwrap_or(""),
                        port("cases in", b.and_then(|b| b.delivery_s)),
                        (t.total_s - boot).max(0.0),
                        port("observations out", b.and_then(|b| b.transport_s)),
                        t.total_s
                    ),
                    None => format!("; {}: {:.1} s", t.accel, t.total_s),
                });
            }
            for p in &run.problems {
                s.push_str(&format!("\n  !! {p}"));
            }
            s
        }
    }
}

/// The progress display: one bar per running kernel (instances done / total, elapsed), drawn
/// on stderr only when it is a terminal.
pub struct Progress {
    multi: Option<indicatif::MultiProgress>,
    bars: Vec<(usize, indicatif::ProgressBar)>,
    labels: Vec<String>,
}

impl Progress {
    pub fn new(kernels: &[String]) -> Progress {
        let multi = std::io::stderr()
            .is_terminal()
            .then(indicatif::MultiProgress::new);
        Progress {
            multi,
            bars: Vec::new(),
            labels: kernels.to_vec(),
        }
    }

    fn bar(&self, k: usize) -> Option<&indicatif::ProgressBar> {
        self.bars.iter().find(|(i, _)| *i == k).map(|(_, b)| b)
    }

    pub fn event(&mut self, e: &Event) {
        let Some(multi) = &self.multi else { return };
        match e {
            Event::Started { kernel, instances } => {
                let b = multi.add(indicatif::ProgressBar::new(*instances as u64));
                let style = indicatif::ProgressStyle::with_template(
                    "{prefix:>14} {bar:30} {pos:>4}/{len:4} {elapsed:>4} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                b.set_style(style);
                b.set_prefix(self.labels.get(*kernel).cloned().unwrap_or_default());
                b.set_message("booting");
                b.enable_steady_tick(Duration::from_millis(200));
                self.bars.push((*kernel, b));
            }
            Event::Booted { kernel } => {
                if let Some(b) = self.bar(*kernel) {
                    b.set_message("running");
                }
            }
            Event::Progress { kernel, done } => {
                if let Some(b) = self.bar(*kernel) {
                    b.set_message("running");
                    b.set_position(*done as u64);
                }
            }
            Event::KernelDone { kernel, run, .. } => {
                if let Some(b) = self.bar(*kernel) {
                    b.set_position(run.instances.len() as u64);
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    /// Prints a line above the bars (or plainly without them).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}
