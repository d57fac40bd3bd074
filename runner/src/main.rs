//! `bpfcase`: run JSON cases against the running kernel or kernels booted in QEMU, list them,
//! show what one compiles to. This file holds the arguments (clap) and which command runs;
//! `cli` the error type, the case selection and the host commands, `vm_cmd` and `bench` the
//! commands that drive guests, `show` one instance.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use cli::Selection;

mod bench;
mod bench_matrix;
mod cli;
mod report_cmd;
mod show;
mod vm_cmd;

#[derive(Parser)]
#[command(
    name = "bpfcase",
    version,
    about = "Conformance test runner for eBPF helpers"
)]
struct Cli {
    /// Log to stderr (libbpf's lines too): -v debug, -vv trace; BPFCASE_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run cases on the running kernel (needs root: CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, or
    /// CAP_SYS_ADMIN; exit status 3 without them).
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
        /// (the running kernel, natively), `default` (the manifest's default set) or
        /// `manifest` (every kernel of the manifest).
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
    /// Run the cases on the host (when permitted) and every kernel of the manifest, and write
    /// the conformance report: results.json (every observation, the input of every other
    /// file), conformance.md, conformance.html, junit.xml, kcidb.json, ebpf-docs.yaml.
    Report(report_cmd::ReportArgs),
    /// Join results files (the shards of one run) into one.
    Merge {
        /// Results files, e.g. the `results.json` of each `report --shard I/N`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The merged results file.
        #[arg(long, value_name = "FILE", default_value = "results.json")]
        out: PathBuf,
    },
    /// What changed between two results files: two runs (kernels paired by label) or two
    /// kernels (one in each file, or chosen with --a/--b). Exit status 1 when something did.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// The kernel of A to compare (label or spec, e.g. 6.1 or debian:6.1).
        #[arg(long = "a", value_name = "KERNEL")]
        a_kernel: Option<String>,
        /// The kernel of B to compare.
        #[arg(long = "b", value_name = "KERNEL")]
        b_kernel: Option<String>,
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
        /// With --kernel: added to the guest kernel's command line.
        #[command(flatten)]
        append: vm_cmd::AppendArg,
        /// The whole matrix instead: the running kernel (when permitted) and every kernel of the
        /// manifest (or those --kernel names, comma-separated), one run; wall time and where
        /// each kernel's time went.
        #[arg(long)]
        matrix: bool,
        /// With --matrix: guests running at the same time.
        #[arg(long, default_value_t = 3)]
        jobs: usize,
    },
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
    bpfcase::bpf::log::init(cli.verbose);
    let r = match cli.cmd {
        Cmd::Run { sel, format } => cli::run(&sel, matches!(format, Format::Json)),
        Cmd::List { sel } => cli::list(&sel),
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
        Cmd::Report(args) => report_cmd::report(&args),
        Cmd::Merge { files, out } => report_cmd::merge(&files, &out),
        Cmd::Diff {
            a,
            b,
            a_kernel,
            b_kernel,
        } => report_cmd::diff(&a, &b, a_kernel, b_kernel),
        Cmd::Fetch { kernels, manifest } => vm_cmd::fetch(&kernels, &manifest),
        Cmd::Types => {
            print!("{}", cli::types());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Schema => {
            print!("{}", bpfcase::case::schema());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            matrix: true,
            kernel,
            sel,
            manifest,
            jobs,
            ..
        } => bench_matrix::matrix(
            &sel,
            &kernel
                .map(|k| k.split(',').map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
            jobs,
            &manifest,
        ),
        Cmd::Bench {
            kernel: None,
            append,
            ..
        } if !append.params.is_empty() => Err(cli::CliError::arg(
            "--append",
            append.params.join(" "),
            "adds to a guest kernel's command line: give --kernel too",
        )),
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
            append,
            ..
        } => bench::bench_vm(&k, &sel.cases, &sel.filter, rounds, &manifest, &append),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bpfcase: {e}");
            e.exit_code()
        }
    }
}
