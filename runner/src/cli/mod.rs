//! The command line of `bpfcase`: the arguments (clap), which command runs, and the one error
//! type, [`CliError`], that every command returns. `main` prints an error once, as
//! `bpfcase: <message>`, and exits with its status.
//!
//! Owns: turning what the user typed into calls of the library and what went wrong into
//! messages. Must not: know how cases are parsed, compiled or run (the library does), or print
//! an error of a lower layer as it is when it would repeat what the user gave.

mod commands;
mod error;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use bpfcase::case::{self, Case};

pub use error::{kernel_problem, CliError, EXIT_FAILED};

use crate::{bench, show, vm_cmd};

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

/// Parses the command line, runs the command, and reports its error, if any.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run { sel, format } => commands::run(&sel, matches!(format, Format::Json)),
        Cmd::List { sel } => commands::list(&sel),
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
        Cmd::Fetch { kernels } => vm_cmd::fetch(&kernels),
        Cmd::Types => {
            print!("{}", commands::types());
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
        } => bench::bench(&sel.cases, &sel.filter, rounds),
        Cmd::Bench {
            rounds,
            kernel: Some(k),
            sel,
        } => bench::bench_vm(&k, &sel.cases, &sel.filter, rounds),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bpfcase: {e}");
            e.exit_code()
        }
    }
}

/// Loads and validates every selected case before anything runs.
pub fn load(paths: &[PathBuf], filters: &[String]) -> Result<Vec<Case>, CliError> {
    let pats: Vec<glob::Pattern> = filters
        .iter()
        .map(|f| {
            glob::Pattern::new(f).map_err(|e| {
                CliError::arg(
                    "--filter",
                    f.as_str(),
                    format!(
                        "not a glob: {} at character {}; `*` matches any text (`/` too), `?` one character, `[[]` a `[`",
                        e.msg,
                        e.pos + 1
                    ),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let paths = if paths.is_empty() {
        let default = PathBuf::from("cases");
        if !default.exists() {
            return Err(CliError::arg(
                "case folder",
                "cases",
                "not found (it is the default when no case file is named): name case files or folders, or run in the folder that holds `cases`",
            ));
        }
        vec![default]
    } else {
        paths.to_vec()
    };
    let mut cases = Vec::new();
    for f in case::discover(&paths)? {
        let mut c = case::load(&f)?;
        if !pats.is_empty() {
            c.instances
                .retain(|i| pats.iter().any(|p| p.matches(&i.id)));
        }
        cases.push(c);
    }
    Ok(cases)
}
