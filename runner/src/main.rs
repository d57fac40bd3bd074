//! `bpfcase`: run JSON cases against the running kernel, list them, show what one compiles to.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use bpfcase::case::{self, Case, CaseError};
use bpfcase::exec::Env;
use bpfcase::report::{self, Summary, Verdict};

mod bench;
mod show;
mod vm_cmd;

#[derive(Parser)]
#[command(
    name = "bpfcase",
    version,
    about = "Conformance test runner for eBPF helpers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run cases on the running kernel (needs root: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN).
    Run {
        #[command(flatten)]
        sel: Selection,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// List instance ids.
    List {
        #[command(flatten)]
        sel: Selection,
    },
    /// Show one instance: its programs as instructions, maps, BTF, result layout and parameters, and
    /// (with root) the verifier log and the observation.
    Show {
        /// An instance id, or a glob that matches exactly one.
        id: String,
        /// Case files or folders (default: ./cases).
        cases: Vec<PathBuf>,
    },
    /// Boot kernels in QEMU and run the cases inside them; needs no root.
    Vm {
        /// `debian:<series>` (e.g. debian:6.1), a kernel image path (bzImage/vmlinuz), `host`
        /// (the running kernel, natively), or `default` (the manifest's default set).
        /// Repeatable; comma-separated lists work too.
        #[arg(long = "kernel", required = true, value_delimiter = ',')]
        kernels: Vec<String>,
        #[command(flatten)]
        sel: Selection,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        #[command(flatten)]
        guest: vm_cmd::GuestArgs,
    },
    /// Download kernels into the cache (for offline use later) and print what they are.
    Fetch {
        /// `debian:<series>`, a path, or `default`.
        #[arg(required = true, value_delimiter = ',')]
        kernels: Vec<String>,
        #[command(flatten)]
        manifest: vm_cmd::ManifestArg,
    },
    /// List the program types a case can name, how each runs, and whether the helper's
    /// documentation lists it.
    Types,
    /// Print the JSON Schema of case files.
    Schema,
    /// Measure the cost of one instance against the raw libbpf-sys floor; with --kernel, a
    /// guest's boot-to-result, its cost per extra instance and the initramfs build.
    Bench {
        /// Rounds over the selected instances (or guest boots per measurement).
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Benchmark guests of this kernel instead of the running kernel.
        #[arg(long)]
        kernel: Option<String>,
        #[command(flatten)]
        sel: Selection,
        #[command(flatten)]
        manifest: vm_cmd::ManifestArg,
    },
}

#[derive(clap::Args)]
pub struct Selection {
    /// Case files or folders (default: ./cases).
    pub cases: Vec<PathBuf>,
    /// Keep instances whose id matches this glob (`*` crosses `/`); repeatable.
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A line per instance, expectation failures, a summary.
    Human,
    /// One JSON observation per line, then a summary object.
    Json,
}

fn main() -> ExitCode {
    // Output piped into `head` ends the process quietly, as for any Unix tool, instead of
    // panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if bpfcase::vm::guest::is_init() {
        bpfcase::vm::guest::main();
    }
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run { sel, format } => run(&sel, format),
        Cmd::List { sel } => list(&sel),
        Cmd::Show { id, cases } => show::show(&id, &cases),
        Cmd::Vm {
            kernels,
            sel,
            format,
            guest,
        } => vm_cmd::vm(
            &kernels,
            &sel.cases,
            &sel.filter,
            matches!(format, Format::Json),
            &guest,
        ),
        Cmd::Fetch { kernels, manifest } => vm_cmd::fetch(&kernels, &manifest),
        Cmd::Types => {
            println!(
                "{:<16} {:>4}  {:<11} {:<26} runs by",
                "type", "id", "documented", "attaches to"
            );
            for p in bpfcase::tables::PROG_TYPES {
                println!(
                    "{:<16} {:>4}  {:<11} {:<26} {:?}{}",
                    p.name,
                    p.id,
                    if p.documented { "yes" } else { "no" },
                    p.attach_btf.unwrap_or("-"),
                    p.run,
                    if p.sleepable { ", sleepable" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Schema => {
            print!("{}", case::schema());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            rounds,
            kernel: None,
            sel,
            ..
        } => bench::bench(&sel.cases, &sel.filter, rounds),
        Cmd::Bench {
            rounds,
            kernel: Some(k),
            sel,
            manifest,
        } => bench::bench_vm(&k, &sel.cases, &sel.filter, rounds, &manifest),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bpfcase: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads and validates every selected case before anything runs.
pub fn load(paths: &[PathBuf], filters: &[String]) -> Result<Vec<Case>, CaseError> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("cases")]
    } else {
        paths.to_vec()
    };
    let mut cases = Vec::new();
    for f in case::discover(&paths)? {
        let mut c = case::load(&f)?;
        if !filters.is_empty() {
            let pats: Vec<glob::Pattern> = filters
                .iter()
                .map(|f| glob::Pattern::new(f))
                .collect::<Result<_, _>>()
                .map_err(|e| CaseError {
                    file: PathBuf::from("--filter"),
                    line: 0,
                    column: 0,
                    path: ".".into(),
                    message: format!("bad glob: {e}"),
                })?;
            c.instances
                .retain(|i| pats.iter().any(|p| p.matches(&i.id)));
        }
        cases.push(c);
    }
    Ok(cases)
}

fn list(sel: &Selection) -> Result<ExitCode, CaseError> {
    let mut out = std::io::stdout().lock();
    for c in load(&sel.cases, &sel.filter)? {
        for i in &c.instances {
            let _ = writeln!(out, "{}", i.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(sel: &Selection, format: Format) -> Result<ExitCode, CaseError> {
    let cases = load(&sel.cases, &sel.filter)?;
    let mut env = Env::new();
    let mut summary = Summary::default();
    let mut out = std::io::stdout().lock();
    for c in &cases {
        if c.instances.is_empty() {
            continue;
        }
        if let Format::Human = format {
            let _ = writeln!(out, "# {} ({}): {}", c.name, c.file.display(), c.about);
        }
        for inst in &c.instances {
            let obs = env.run(inst);
            let v = report::verdict(inst, &obs);
            summary.add(&obs, &v);
            match format {
                Format::Human => {
                    let mark = match &v {
                        Verdict::Fail(_) => "✗ ",
                        _ => "  ",
                    };
                    let _ = writeln!(out, "{mark}{}", report::line(&obs, Some(inst)));
                    if let Verdict::Fail(fails) = &v {
                        for f in fails {
                            let _ = writeln!(out, "      {f}");
                        }
                    }
                }
                Format::Json => {
                    let _ = writeln!(out, "{}", report::json_line(inst, &obs, &v));
                }
            }
        }
    }
    match format {
        Format::Human => {
            let _ = writeln!(out, "{summary}");
        }
        Format::Json => {
            let _ = writeln!(out, "{}", serde_json::json!({ "summary": summary }));
        }
    }
    Ok(if summary.expect_fail > 0 || summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
