//! `bpfcase report`, `bpfcase merge` and `bpfcase diff`: the conformance report of a run (or of
//! a results file), the merge of a run's shards, and what changed between two results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bpfcase::pipeline::{self, Plan};
use bpfcase::results::{self, Results, Shard};
use bpfcase::vm::kernels::KernelSpec;
use bpfcase::vm::procs;

use crate::cli::output::{kernel_failed, Printer, Progress, Style};
use crate::cli::{self, CliError, Selection};
use crate::vm_cmd::{self, GuestArgs};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    sel: Selection,
    /// Kernels to run (as for `bpfcase vm`; `manifest` is every kernel of the manifest).
    /// Default: the running kernel when permitted, and every kernel of the manifest.
    #[arg(long = "kernel", value_delimiter = ',')]
    kernels: Vec<String>,
    /// Where the report files go.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    out: PathBuf,
    /// Run only slice I of N (by kernel, then case file) and write its results.json, for
    /// `bpfcase merge`.
    #[arg(long, value_name = "I/N", value_parser = shard)]
    shard: Option<Shard>,
    /// Render the report from this results file instead of running anything.
    #[arg(long, value_name = "RESULTS", conflicts_with_all = ["kernels", "shard", "filter", "cases"])]
    from: Option<PathBuf>,
    /// The submitter named in kcidb.json (KCIDB `origin`: lower-case letters, digits, `_`).
    #[arg(long, value_name = "NAME", default_value = bpfcase::report::kcidb::DEFAULT_ORIGIN, value_parser = origin)]
    origin: String,
    #[command(flatten)]
    guest: GuestArgs,
}

fn origin(s: &str) -> Result<String, String> {
    bpfcase::report::kcidb::check_origin(s).map(|()| s.to_string())
}

fn shard(s: &str) -> Result<Shard, String> {
    s.parse().map_err(|e: results::ShardError| e.to_string())
}

pub fn report(args: &ReportArgs) -> Result<ExitCode, CliError> {
    procs::handle_signals();
    let results = match &args.from {
        Some(path) => read(path)?,
        None => run(args)?,
    };
    let failed = results.kernels.iter().any(kernel_failed);
    write_reports(&args.out, &results, args.shard.is_some(), &args.origin)?;
    Ok(if failed {
        ExitCode::from(cli::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn run(args: &ReportArgs) -> Result<Results, CliError> {
    let loaded = cli::load(&args.sel.cases, &args.sel.filter)?;
    let m = args.guest.manifest()?;
    let mut words = Vec::new();
    if args.kernels.is_empty() {
        match bpfcase::exec::host_unavailable() {
            None => words.push("host".to_string()),
            Some(why) => eprintln!("report: the running kernel is left out: {why}"),
        }
        words.push("manifest".to_string());
    } else {
        words.extend(args.kernels.iter().cloned());
    }
    let specs = vm_cmd::specs("--kernel", &words, &m)?;
    if specs.contains(&KernelSpec::Host) && !args.kernels.is_empty() {
        bpfcase::exec::check_privileges()?;
    }
    let plan = Plan {
        kernels: specs,
        cases: &loaded,
        filters: args.sel.filter.clone(),
        manifest: Some(m),
        options: args.guest.options()?,
        jobs: args.guest.jobs(),
        shard: args.shard,
        explain: cli::kernel_problem,
    };
    let labels: Vec<String> = plan.kernels.iter().map(|k| k.to_string()).collect();
    let mut progress = Progress::new(&labels);
    let order: Vec<usize> = match plan.shard {
        Some(s) => s
            .select(plan.kernels.len(), plan.cases.len())
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
        None => (0..plan.kernels.len()).collect(),
    };
    let mut printer = Printer::new(Style::Summary, &loaded, order);
    Ok(pipeline::run(&plan, &mut |e| {
        progress.event(e);
        progress.suspend(|| printer.event(e));
    }))
}

fn read(path: &Path) -> Result<Results, CliError> {
    Results::read(path)
        .map_err(|e| CliError::arg("results file", path.display().to_string(), e.why))
}

/// Writes `results.json`, its schema and, for a whole run, every report rendered from it.
fn write_reports(dir: &Path, r: &Results, shard_only: bool, origin: &str) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Failed(format!("creating {}: {e}", dir.display())))?;
    let mut files = vec![
        ("results.json".to_string(), r.to_json()),
        ("results.schema.json".to_string(), results::schema()),
    ];
    if !shard_only {
        files.extend(bpfcase::report::files::render(r, origin));
    }
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!("report: wrote {} in {}", names.join(", "), dir.display());
    Ok(())
}

/// `bpfcase merge`: shards into one results file.
pub fn merge(files: &[PathBuf], out: &Path) -> Result<ExitCode, CliError> {
    let mut parts = Vec::new();
    for f in files {
        parts.push((f.display().to_string(), read(f)?));
    }
    let merged = results::merge(&parts).map_err(|e| CliError::Failed(e.to_string()))?;
    std::fs::write(out, merged.to_json())
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", out.display())))?;
    eprintln!(
        "merge: {} files, {} kernels, {} case files → {}",
        files.len(),
        merged.kernels.len(),
        merged.cases.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `bpfcase diff`: the changes as text on stdout; exit 1 when something changed.
pub fn diff(
    a: &Path,
    b: &Path,
    a_kernel: Option<String>,
    b_kernel: Option<String>,
) -> Result<ExitCode, CliError> {
    let (ra, rb) = (read(a)?, read(b)?);
    let sel = bpfcase::report::diff::DiffSel { a_kernel, b_kernel };
    let d = bpfcase::report::diff::diff(&ra, &rb, sel).map_err(|e| {
        CliError::arg(
            "kernels to compare",
            format!("{} {}", a.display(), b.display()),
            e.to_string(),
        )
    })?;
    print!("{}", d.text);
    Ok(if d.changed {
        ExitCode::from(cli::EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
