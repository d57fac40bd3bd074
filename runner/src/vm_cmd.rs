//! `bpfcase vm` and `bpfcase fetch`: resolve kernels, boot them (a few in parallel), print what
//! each guest observed. Kernels resolve against the manifest built into the binary unless
//! `--manifest` names another, so they resolve the same from any directory. SIGINT, SIGTERM and
//! SIGHUP stop the guests and apt, remove the work directories, and exit with 128 + the signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bpfcase::pipeline::{self, Plan};
use bpfcase::vm::kernels::{self, KernelSpec, Manifest};
use bpfcase::vm::qemu::Accel;
use bpfcase::vm::{self, procs, Options};

use crate::cli::output::{Printer, Progress, Style};
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
    /// Guests running at the same time. Guests spend part of their time waiting for RCU grace
    /// periods, so more guests than cores pay: on 2 cores, 3 ran the whole matrix (976
    /// instances, 10 guests and the host, warm) fastest: 91 s, against 110 s with 2 and 95 s
    /// with 4.
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Boot every guest afresh: no warm start from a guest saved after its boot, and none
    /// saved (also BPFCASE_WARM=0).
    #[arg(long)]
    cold: bool,
    #[command(flatten)]
    pub append: AppendArg,
    #[command(flatten)]
    manifest: ManifestArg,
}

/// Additions to the guest kernel's command line.
#[derive(clap::Args)]
pub struct AppendArg {
    /// Kernel parameters added to every guest's command line, after bpfcase's own
    /// (`console=ttyS0 panic=-1 loglevel=5 rdinit=/init mitigations=off cryptomgr.notests
    /// rcupdate.rcu_expedited=1`), so a parameter
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

/// Every kernel of the manifest, oldest series first.
pub fn manifest_kernels(m: &Manifest) -> Vec<String> {
    let mut series: Vec<&String> = m.debian.keys().collect();
    series.sort_by_key(|s| {
        let mut p = s.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0))
    });
    series.iter().map(|s| format!("debian:{s}")).collect()
}

/// Expands `default` (the manifest's default set) and `manifest` (all its kernels) and parses
/// the specs; `what` names the argument they came from.
pub fn specs(
    what: &'static str,
    words: &[String],
    m: &Manifest,
) -> Result<Vec<KernelSpec>, CliError> {
    let mut out = Vec::new();
    for w in words {
        if w == "manifest" {
            for k in manifest_kernels(m) {
                out.push(k.parse().map_err(|e| CliError::kernel(what, &k, e))?);
            }
        } else if w == "default" {
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

impl GuestArgs {
    /// The guest options these flags give, checked together.
    pub fn options(&self) -> Result<Options, CliError> {
        let opts = Options {
            memory_mb: self.memory,
            cpus: self.cpus,
            timeout: Duration::from_secs(self.timeout),
            accel: self
                .accel
                .as_deref()
                .map(|a| if a == "kvm" { Accel::Kvm } else { Accel::Tcg }),
            cache: Some(kernels::cache_dir()),
            append: self.append.params.clone(),
            warm: !self.cold && vm::options::warm_by_default(),
        };
        // The flags were checked one by one; together they make one kernel command line.
        opts.check()
            .map_err(|e| CliError::arg("--append", self.append.params.join(" "), e))?;
        Ok(opts)
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    pub fn manifest(&self) -> Result<Manifest, CliError> {
        self.manifest.load()
    }
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
    let m = args.manifest()?;
    let specs = specs("--kernel", words, &m)?;
    if specs.contains(&KernelSpec::Host) {
        bpfcase::exec::check_privileges()?;
    }
    let plan = Plan {
        kernels: specs,
        cases: &loaded,
        filters: filters.to_vec(),
        manifest: Some(m),
        options: args.options()?,
        jobs: args.jobs,
        shard: None,
        explain: cli::kernel_problem,
    };
    let style = if json { Style::Json } else { Style::Human };
    let mut printer = Printer::new(style, &loaded, (0..plan.kernels.len()).collect());
    let mut progress = Progress::new(
        &plan
            .kernels
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
    );
    pipeline::run(&plan, &mut |e| {
        progress.event(e);
        progress.suspend(|| printer.event(e));
    });
    Ok(if printer.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
