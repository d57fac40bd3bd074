//! `bpfcase vm` and `bpfcase fetch`: resolve kernels, boot them (a few in parallel), print what
//! each guest observed. Kernels resolve against the manifest built into the binary unless
//! `--manifest` names another, so they resolve the same from any directory. SIGINT, SIGTERM and
//! SIGHUP stop the guests and apt, remove the work directories, and exit with 128 + the signal.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bpfcase::case::{self, Instance};
use bpfcase::exec::Observation;
use bpfcase::report::{self, Summary, Verdict};
use bpfcase::vm::kernels::{self, KernelSpec, Manifest};
use bpfcase::vm::qemu::Accel;
use bpfcase::vm::{self, procs, GuestRun, Options};

use crate::cli::{self, CliError};

/// Which kernel manifest: the default set and the pinned versions.
#[derive(clap::Args)]
pub struct ManifestArg {
    /// A kernel manifest (`kernels.json` format) instead of the one built into bpfcase.
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
}

impl ManifestArg {
    /// The manifest named by `--manifest`, else the built-in one.
    pub fn load(&self) -> Result<Manifest, CliError> {
        match &self.manifest {
            Some(path) => Manifest::load(path)
                .map_err(|e| CliError::kernel("--manifest", &path.display().to_string(), e)),
            None => Manifest::builtin().map_err(|e| CliError::Failed(e.to_string())),
        }
    }
}

#[derive(clap::Args)]
pub struct GuestArgs {
    /// Guest memory in MiB (68 to 1048576).
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = memory)]
    memory: u32,
    /// Guest vCPUs (1 to 255).
    #[arg(long, default_value_t = 1, value_parser = cpus)]
    cpus: u32,
    /// Watchdog: seconds a guest may run before it is killed and reported as hung (1 to 86400).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = timeout)]
    timeout: u64,
    /// kvm or tcg; default: KVM when it boots a kernel here, else TCG.
    #[arg(long, value_parser = ["kvm", "tcg"])]
    accel: Option<String>,
    /// Guests running at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    #[command(flatten)]
    pub append: AppendArg,
    #[command(flatten)]
    manifest: ManifestArg,
}

/// Additions to the guest kernel's command line.
#[derive(clap::Args)]
pub struct AppendArg {
    /// Kernel parameters added to every guest's command line, after bpfcase's own
    /// (`console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off`), so a parameter
    /// given again here wins. Repeatable.
    #[arg(long = "append", value_name = "PARAMS", allow_hyphen_values = true, value_parser = append)]
    pub params: Vec<String>,
}

/// A whole number within a limit of `vm::options`.
fn number<T: std::str::FromStr + Copy>(
    s: &str,
    unit: &str,
    check: impl Fn(T) -> Result<(), String>,
) -> Result<T, String> {
    let n: T = s
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number of {unit}"))?;
    check(n).map(|()| n)
}

fn memory(s: &str) -> Result<u32, String> {
    number(s, "MiB", vm::options::check_memory)
}

fn cpus(s: &str) -> Result<u32, String> {
    number(s, "vCPUs", vm::options::check_cpus)
}

fn timeout(s: &str) -> Result<u64, String> {
    number(s, "seconds", vm::options::check_timeout)
}

fn append(s: &str) -> Result<String, String> {
    vm::options::check_append(s).map(|()| s.to_string())
}

/// Expands `default` and parses the specs; `what` names the argument they came from.
pub fn specs(
    what: &'static str,
    words: &[String],
    m: &Manifest,
) -> Result<Vec<KernelSpec>, CliError> {
    let mut out = Vec::new();
    for w in words {
        if w == "default" {
            for d in &m.default {
                out.push(d.parse().map_err(|e| {
                    CliError::arg(
                        "kernel manifest",
                        "default",
                        format!("default kernel `{d}`: {}", cli::kernel_problem(&e)),
                    )
                })?);
            }
        } else {
            out.push(w.parse().map_err(|e| CliError::kernel(what, w, e))?);
        }
    }
    Ok(out)
}

pub fn fetch(words: &[String], manifest: &ManifestArg) -> Result<ExitCode, CliError> {
    procs::handle_signals();
    let m = manifest.load()?;
    let cache = kernels::cache_dir();
    let mut code = ExitCode::SUCCESS;
    for spec in specs("kernel", words, &m)? {
        match kernels::resolve(&spec, Some(&m), &cache) {
            Ok(Some(k)) => {
                for w in &k.warnings {
                    eprintln!("warning: {spec}: {w}");
                }
                println!("{spec}: {} ({})", k.image.display(), k.origin);
            }
            Ok(None) => println!("{spec}: the running kernel"),
            Err(e) => {
                eprintln!(
                    "bpfcase: {}",
                    CliError::kernel("kernel", &spec.to_string(), e)
                );
                code = ExitCode::from(cli::EXIT_FAILED);
            }
        }
    }
    Ok(code)
}

/// What one kernel gave: a guest run, the host run, or why it could not run.
enum KernelResult {
    Guest(Box<GuestRun>),
    Host {
        label: String,
        records: Vec<(usize, serde_json::Value)>,
    },
    Failed(String),
}

pub fn vm(
    words: &[String],
    cases: &[PathBuf],
    filters: &[String],
    json: bool,
    args: &GuestArgs,
) -> Result<ExitCode, CliError> {
    // Before any thread starts: every thread inherits the blocked signals.
    procs::handle_signals();
    // Validate everything before booting anything.
    let loaded = cli::load(cases, filters)?;
    let files: Vec<PathBuf> = loaded.iter().map(|c| c.file.clone()).collect();
    let m = args.manifest.load()?;
    let specs = specs("--kernel", words, &m)?;
    if specs.contains(&KernelSpec::Host) {
        bpfcase::exec::check_privileges()?;
    }
    let opts = Options {
        memory_mb: args.memory,
        cpus: args.cpus,
        timeout: Duration::from_secs(args.timeout),
        accel: args
            .accel
            .as_deref()
            .map(|a| if a == "kvm" { Accel::Kvm } else { Accel::Tcg }),
        cache: Some(kernels::cache_dir()),
        append: args.append.params.clone(),
    };
    // The flags were checked one by one; together they make one kernel command line.
    opts.check()
        .map_err(|e| CliError::arg("--append", args.append.params.join(" "), e))?;
    // Kernel supply runs one at a time (apt); guests run `jobs` at a time.
    let cache = kernels::cache_dir();
    let mut resolved = Vec::new();
    for spec in &specs {
        resolved.push(match kernels::resolve(spec, Some(&m), &cache) {
            Ok(k) => {
                for w in k.iter().flat_map(|k| &k.warnings) {
                    eprintln!("warning: {spec}: {w}");
                }
                Ok(k)
            }
            Err(e) => Err(cli::kernel_problem(&e)),
        });
    }
    let results: Vec<Mutex<Option<KernelResult>>> =
        specs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..args.jobs.clamp(1, specs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = resolved.get(i) else { break };
                let r = match r {
                    Err(e) => KernelResult::Failed(e.clone()),
                    Ok(None) => continue, // the host: below, on the main thread
                    Ok(Some(k)) => match vm::boot(k, &files, filters, &opts) {
                        Ok(g) => KernelResult::Guest(Box::new(g)),
                        Err(e) => KernelResult::Failed(e.to_string()),
                    },
                };
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
        // Meanwhile the host runs natively on the main thread ("current" = "self").
        for (i, spec) in specs.iter().enumerate() {
            if *spec == KernelSpec::Host {
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(host_run(&loaded));
            }
        }
    });
    let results: Vec<Option<KernelResult>> = results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();

    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for ((spec, r), k) in specs.iter().zip(results).zip(&resolved) {
        let r = r.unwrap_or_else(|| KernelResult::Failed("not run".into()));
        if let KernelResult::Guest(g) = &r {
            for n in &g.notes {
                eprintln!("note: {n}");
            }
        }
        let warnings = match k {
            Ok(Some(k)) => k.warnings.as_slice(),
            _ => &[],
        };
        failed |= print_kernel(&mut out, spec, &r, warnings, &loaded, json);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn host_run(loaded: &[case::Case]) -> KernelResult {
    let mut env = bpfcase::exec::Env::new();
    let mut records = Vec::new();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = case::KernelSeries::from_release(&release);
    for (i, c) in loaded.iter().enumerate() {
        for inst in &c.instances {
            let obs = env.run(inst);
            let v = report::verdict(inst, &obs, kernel);
            records.push((i, report::json_line(inst, &obs, &v)));
        }
    }
    KernelResult::Host {
        label: format!("host-{}", vm::label(release.trim())),
        records,
    }
}

/// Prints one kernel's results; true when something failed (an expectation, an instance that
/// ended in `error(…)`, a guest problem, a kernel that cannot serve).
fn print_kernel(
    out: &mut dyn Write,
    spec: &KernelSpec,
    r: &KernelResult,
    warnings: &[String],
    loaded: &[case::Case],
    json: bool,
) -> bool {
    let (label, records, mut failed) = match r {
        KernelResult::Failed(e) => {
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "kernel": { "spec": spec.to_string(), "error": e } })
                );
            } else {
                let _ = writeln!(out, "## {spec}: cannot run: {e}");
            }
            return true;
        }
        KernelResult::Host { label, records } => {
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "kernel": { "spec": spec.to_string(), "label": label, "origin": "the running kernel" } })
                );
            } else {
                let _ = writeln!(out, "## {label} (the running kernel)");
            }
            (label.clone(), records, false)
        }
        KernelResult::Guest(g) => {
            // A guest that never said hello has no release: it goes by its spec.
            let label = g.label().unwrap_or_else(|| spec.to_string());
            let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0);
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "kernel": {
                        "spec": spec.to_string(), "label": label, "origin": g.origin,
                        "release": g.hello.as_ref().map(|h| h.release.clone()),
                        "accel": g.accel.name(), "initramfs_s": secs(Some(g.initramfs)),
                        "boot_to_hello_s": secs(g.boot_to_hello), "total_s": secs(Some(g.total)),
                        "problems": g.problems, "unusable": g.unusable, "console_tail": g.console_tail,
                        "warnings": warnings,
                    } })
                );
            } else {
                let _ = writeln!(
                    out,
                    "## {label} ({}; release {}; {}; boot to runner {}; total {:.1} s)",
                    g.origin,
                    g.hello.as_ref().map_or("?", |h| h.release.as_str()),
                    g.accel.name(),
                    g.boot_to_hello
                        .map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64())),
                    g.total.as_secs_f64()
                );
                if let Some(u) = &g.unusable {
                    let _ = writeln!(out, "!! this kernel cannot serve: {u}");
                }
                for p in &g.problems {
                    let _ = writeln!(out, "!! {p}");
                }
                if g.hello.is_none() || !g.problems.is_empty() {
                    if g.console_tail.trim().is_empty() {
                        let _ = writeln!(out, "-- the console is empty");
                    } else {
                        let _ = writeln!(out, "-- console (last lines):\n{}\n--", g.console_tail);
                    }
                }
            }
            (
                label,
                &g.records,
                g.unusable.is_some() || !g.problems.is_empty(),
            )
        }
    };
    // The series the observations come from: the guest's release, or the running kernel's.
    let kernel = match r {
        KernelResult::Guest(g) => g.hello.as_ref().map(|h| h.release.clone()),
        _ => std::fs::read_to_string("/proc/sys/kernel/osrelease").ok(),
    }
    .and_then(|release| case::KernelSeries::from_release(&release));
    let mut summary = Summary::default();
    let mut current = usize::MAX;
    for (file, rec) in records.iter() {
        let Some(c) = loaded.get(*file) else { continue };
        let Ok(obs) = serde_json::from_value::<Observation>(rec["observation"].clone()) else {
            continue;
        };
        let inst: Option<&Instance> = c.instances.iter().find(|i| i.id == obs.id);
        let v = inst.map_or(Verdict::NoRule, |i| report::verdict(i, &obs, kernel));
        summary.add(&obs, &v);
        failed |= matches!(v, Verdict::Fail(_));
        if json {
            let mut rec = rec.clone();
            rec["kernel"] = serde_json::json!(label);
            rec["file"] = serde_json::json!(c.file.display().to_string());
            let _ = writeln!(out, "{rec}");
            continue;
        }
        if *file != current {
            current = *file;
            let _ = writeln!(out, "# {} ({}): {}", c.name, c.file.display(), c.about);
        }
        let mark = if matches!(v, Verdict::Fail(_)) {
            "✗ "
        } else {
            "  "
        };
        let _ = writeln!(out, "{mark}{}", report::line(&obs, inst));
        if let Verdict::Fail(fails) = &v {
            for f in fails {
                let _ = writeln!(out, "      {f}");
            }
        }
    }
    // As for `bpfcase run`: an instance the runner could not carry out fails the run.
    failed |= summary.errors > 0;
    let mut missing = missing(records, loaded);
    if matches!(r, KernelResult::Guest(g) if g.hello.is_none()) {
        // Nothing ran: no instance was being run when the guest stopped.
        missing.first = None;
    }
    failed |= missing.count > 0;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "summary": summary, "kernel": label,
                "did_not_report": missing.count, "stopped_at": missing.first })
        );
    } else {
        if missing.count > 0 {
            let _ = writeln!(
                out,
                "!! {} of {} instances did not report{}",
                missing.count,
                loaded.iter().map(|c| c.instances.len()).sum::<usize>(),
                missing.first.as_ref().map_or(String::new(), |id| format!(
                    ": the guest stopped during or just before `{id}`"
                ))
            );
        }
        let _ = writeln!(out, "{label}: {summary}");
    }
    failed
}

/// The selected instances that did not report, and the first of them in the order the guest
/// runs them (case files in order, instances in order): the one it was running or about to.
struct Missing {
    count: usize,
    first: Option<String>,
}

fn missing(records: &[(usize, serde_json::Value)], loaded: &[case::Case]) -> Missing {
    let reported: std::collections::HashSet<(usize, &str)> = records
        .iter()
        .filter_map(|(f, r)| Some((*f, r["observation"]["id"].as_str()?)))
        .collect();
    let mut m = Missing {
        count: 0,
        first: None,
    };
    for (f, c) in loaded.iter().enumerate() {
        for i in &c.instances {
            if !reported.contains(&(f, i.id.as_str())) {
                m.count += 1;
                m.first.get_or_insert_with(|| i.id.clone());
            }
        }
    }
    m
}
