//! Privileges are never mistaken for kernel facts, tested against the running kernel as root
//! by taking privileges away from child processes:
//!
//! - the command line as `nobody`, and as root with CAP_PERFMON and CAP_SYS_ADMIN dropped from
//!   the bounding set before exec: every host-mode command stops before running anything, names
//!   the missing capability once, points at `bpfcase vm`, and exits with 3;
//! - libbpf's lines stay off stderr unless `-v` or `BPFCASE_LOG` asks for them;
//! - the library (`exec::Env`, no up-front check) run by this test binary itself in a child:
//!   with CAP_PERFMON dropped, every observation is root's or `refused(… without CAP_PERFMON …)`,
//!   never another `rejected` or `unsupported`; as `nobody`, every instance is refused, none is
//!   unsupported.
//!
//! Without root (or where the kernel refuses BPF to root) the tests report themselves ignored.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bpfcase::case::{self, Case};
use bpfcase::exec::{Env, Observation, Outcome, Res, EXIT_MISSING_PRIVILEGES};
use bpfcase::report;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Set in the child: what to drop after loading the cases (`none` or `nobody`).
const CHILD: &str = "BPFCASE_PRIVILEGES_CHILD";
const CHILD_CASES: &str = "BPFCASE_PRIVILEGES_CASES";
const NOBODY: u32 = 65534;
const CAP_SYS_ADMIN: i32 = 21;
const CAP_PERFMON: i32 = 38;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace exists")
}

fn cases_dir() -> PathBuf {
    workspace().join("cases")
}

/// How a child loses its privileges.
#[derive(Clone, Copy)]
enum Loss {
    /// Runs as root with every capability.
    Nothing,
    /// CAP_PERFMON and CAP_SYS_ADMIN leave the bounding set before exec: root keeps the rest.
    Perfmon,
    /// Becomes `nobody` (no groups): no capability at all.
    Nobody,
}

/// Takes the privileges away in the forked child, before it execs.
fn drop_privileges(cmd: &mut Command, loss: Loss) {
    match loss {
        Loss::Nothing => {}
        Loss::Perfmon => {
            // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    for cap in [CAP_PERFMON, CAP_SYS_ADMIN] {
                        if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                })
            };
        }
        // std clears the supplementary groups when root changes uid.
        Loss::Nobody => {
            cmd.uid(NOBODY).gid(NOBODY);
        }
    }
}

/// Runs `bpfcase` with `args`, its privileges dropped. As `nobody` it is exec'd through an fd
/// opened here, so that the build directory need not be reachable by `nobody`.
fn bpfcase(args: &[&str], loss: Loss, env: &[(&str, &str)]) -> Result<Output, Failed> {
    let bin = std::fs::File::open(env!("CARGO_BIN_EXE_bpfcase"))
        .map_err(|e| Failed::from(format!("cannot open bpfcase: {e}")))?;
    let path = match loss {
        Loss::Nobody => format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&bin)),
        _ => env!("CARGO_BIN_EXE_bpfcase").to_string(),
    };
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env_remove("BPFCASE_LOG")
        .envs(env.iter().copied());
    drop_privileges(&mut cmd, loss);
    let out = cmd
        .output()
        .map_err(|e| Failed::from(format!("cannot start bpfcase {args:?}: {e}")))?;
    std::mem::drop(bin);
    Ok(out)
}

/// The one message of a host-mode command without privileges, checked.
fn assert_refused_up_front(args: &[&str], out: &Output, lacks: &str) -> Result<(), Failed> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = out.status.code();
    let fail = |what: &str| Failed::from(format!("bpfcase {args:?}: {what}:\n{stderr}"));
    if status != Some(i32::from(EXIT_MISSING_PRIVILEGES)) {
        return Err(fail(&format!("exit {status:?}, not 3")));
    }
    if stderr.matches("bpfcase: ").count() != 1 {
        return Err(fail("not one message"));
    }
    if !stderr.starts_with(&format!("bpfcase: this process lacks {lacks}:")) {
        return Err(fail(&format!("does not say it lacks {lacks} first")));
    }
    if !stderr.contains("`bpfcase vm") || !stderr.contains("needs no privileges") {
        return Err(fail("does not point at `bpfcase vm`"));
    }
    if stderr.contains("libbpf") {
        return Err(fail("libbpf's lines on stderr"));
    }
    Ok(())
}

fn run_as_nobody() -> Result<Completion, Failed> {
    let dir = cases_dir().display().to_string();
    let args = ["run", "--format", "json", &dir];
    let out = bpfcase(&args, Loss::Nobody, &[])?;
    assert_refused_up_front(&args, &out, "CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN")?;
    if !out.stdout.is_empty() {
        return Err(format!(
            "stdout is not empty: {}",
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("a test map create") {
        return Err(format!("says nothing of what the kernel answered:\n{stderr}").into());
    }
    Ok(Completion::Completed)
}

fn host_commands_without_perfmon() -> Result<Completion, Failed> {
    let dir = cases_dir().display().to_string();
    let file = cases_dir().join("task_storage/get_args.json");
    let file = file.display().to_string();
    let id = "get_args/value=null/task=current/flags=0x0";
    let commands: [&[&str]; 4] = [
        &["run", &dir],
        &["show", id, &file],
        &["bench", "--rounds", "1", &file],
        &["vm", "--kernel", "host", &file],
    ];
    for args in commands {
        let out = bpfcase(args, Loss::Perfmon, &[])?;
        assert_refused_up_front(args, &out, "CAP_PERFMON")?;
    }
    Ok(Completion::Completed)
}

fn libbpf_log_is_opt_in() -> Result<Completion, Failed> {
    if bpfcase::progs::object("task_storage").is_none() {
        return Ok(Completion::ignored_with(
            "progs/ was not built (no clang when bpfcase was built): libbpf logs nothing here",
        ));
    }
    let file = cases_dir().join("task_storage/c_program.json");
    let file = file.display().to_string();
    let quiet = bpfcase(&["run", &file], Loss::Nothing, &[])?;
    let verbose = bpfcase(&["-v", "run", &file], Loss::Nothing, &[])?;
    let by_env = bpfcase(
        &["run", &file],
        Loss::Nothing,
        &[("BPFCASE_LOG", "libbpf=debug")],
    )?;
    if !quiet.stderr.is_empty() {
        let e = String::from_utf8_lossy(&quiet.stderr);
        return Err(format!("stderr without -v:\n{e}").into());
    }
    for (how, out) in [("-v", &verbose), ("BPFCASE_LOG=libbpf=debug", &by_env)] {
        let e = String::from_utf8_lossy(&out.stderr);
        if !e.lines().any(|l| l.starts_with("DEBUG libbpf: ")) {
            return Err(format!("no libbpf line with {how}:\n{e}").into());
        }
        if out.stdout != quiet.stdout {
            return Err(format!("{how} changed stdout").into());
        }
    }
    Ok(Completion::Completed)
}

/// The test binary itself: loads the cases, drops what `CHILD` says, runs every instance with
/// the library and prints one JSON line per instance (its snapshot line and observation).
fn child(mode: &str) -> ! {
    bpfcase::bpf::log::init(0);
    let dir = std::env::var(CHILD_CASES).map_or_else(|_| cases_dir(), PathBuf::from);
    let cases: Result<Vec<Case>, _> =
        case::discover(&[dir]).and_then(|files| files.iter().map(|f| case::load(f)).collect());
    let cases = cases.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    });
    if mode == "nobody" {
        // SAFETY: plain syscalls; this process is single-threaded here (no test has started).
        let ok = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(NOBODY, NOBODY, NOBODY) == 0
                && libc::setresuid(NOBODY, NOBODY, NOBODY) == 0
        };
        if !ok {
            eprintln!("cannot become nobody: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
    }
    let mut env = Env::new();
    for c in &cases {
        for inst in &c.instances {
            let obs = env.run(inst);
            let line = report::line(&obs, Some(inst));
            println!(
                "{}",
                serde_json::json!({ "line": line, "observation": obs })
            );
        }
    }
    std::process::exit(0);
}

/// Every instance's (snapshot line, observation) from a child, by instance id.
type Observed = HashMap<String, (String, Observation)>;

fn library(
    loss: Loss,
    cases: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<(Observed, String), Failed> {
    let mode = if matches!(loss, Loss::Nobody) {
        "nobody"
    } else {
        "none"
    };
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| Failed::from(e.to_string()))?);
    cmd.env(CHILD, mode)
        .env_remove("BPFCASE_LOG")
        .envs(env.iter().copied());
    if let Some(c) = cases {
        cmd.env(CHILD_CASES, c);
    }
    // The child drops to nobody itself, after reading the cases.
    if matches!(loss, Loss::Perfmon) {
        drop_privileges(&mut cmd, loss);
    }
    let out = cmd
        .output()
        .map_err(|e| Failed::from(format!("cannot start the child: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("child exit {:?}: {stderr}", out.status.code()).into());
    }
    let mut seen = Observed::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).map_err(|e| Failed::from(format!("bad line {l}: {e}")))?;
        let obs: Observation = serde_json::from_value(v["observation"].clone())
            .map_err(|e| Failed::from(format!("bad observation {l}: {e}")))?;
        let line = v["line"].as_str().unwrap_or_default().to_string();
        seen.insert(obs.id.clone(), (line, obs));
    }
    if seen.is_empty() {
        return Err(format!("the child observed nothing: {stderr}").into());
    }
    Ok((seen, stderr))
}

fn library_without_perfmon() -> Result<Completion, Failed> {
    let (root, _) = library(Loss::Nothing, None, &[])?;
    let (dropped, stderr) = library(Loss::Perfmon, None, &[])?;
    if !stderr.is_empty() {
        return Err(format!("the library wrote to stderr:\n{stderr}").into());
    }
    let mut wrong = Vec::new();
    let mut helper_refused = 0;
    for (id, (root_line, root_obs)) in &root {
        let Some((line, obs)) = dropped.get(id) else {
            wrong.push(format!("{id}: not observed without CAP_PERFMON"));
            continue;
        };
        if line == root_line {
            continue;
        }
        let perfmon = |what: &str| what.contains("without CAP_PERFMON");
        let helper = |what: &str| what.contains("cannot use helper bpf_get_current_task_btf");
        let explained = match &obs.outcome {
            Outcome::Refused { what, .. } if perfmon(what) => {
                helper_refused += usize::from(helper(what));
                true
            }
            // A refused program is that program's result; the other steps still run. Every
            // result that differs from root's is such a refusal, or what follows from one
            // (a lookup of storage the refused program did not create), never a rejection or
            // an unsupported kernel feature of its own.
            Outcome::Ran => {
                let mut refused = 0;
                let own = obs.results.iter().all(|(name, r)| match r {
                    Res::Refused { what, .. } if perfmon(what) => {
                        refused += 1;
                        helper_refused += usize::from(helper(what));
                        true
                    }
                    Res::Rejected { .. } | Res::Unsupported { .. } | Res::Refused { .. } => {
                        root_obs.result(name) == Some(r)
                    }
                    _ => true,
                });
                own && refused > 0
            }
            _ => false,
        };
        if !explained {
            wrong.push(format!(
                "{id}:\n  root:     {root_line}\n  dropped:  {line}"
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "{} instances differ from root without saying refused … CAP_PERFMON:\n{}",
            wrong.len(),
            wrong.join("\n")
        )
        .into());
    }
    if helper_refused == 0 {
        return Err("no load was refused for bpf_get_current_task_btf without CAP_PERFMON".into());
    }
    Ok(Completion::Completed)
}

fn library_as_nobody() -> Result<Completion, Failed> {
    let (seen, stderr) = library(Loss::Nobody, None, &[])?;
    if !stderr.is_empty() {
        return Err(format!("the library wrote to stderr (libbpf?):\n{stderr}").into());
    }
    let mut wrong = Vec::new();
    let mut btf_less = 0;
    for (id, (line, obs)) in &seen {
        let unsupported = obs
            .results
            .iter()
            .any(|(_, r)| matches!(r, Res::Unsupported { .. }));
        match &obs.outcome {
            Outcome::Refused { what, .. } if !unsupported && what.contains("without CAP_BPF") => {
                btf_less += usize::from(id.contains("btf=false"));
            }
            _ => wrong.push(format!("{id}: {line}")),
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "as nobody, {} instances are not refused … without CAP_BPF:\n{}",
            wrong.len(),
            wrong.join("\n")
        )
        .into());
    }
    if btf_less == 0 {
        return Err("no instance with a BTF-less map ran".into());
    }
    Ok(Completion::Completed)
}

fn libbpf_warnings_reach_tracing() -> Result<Completion, Failed> {
    let one = cases_dir().join("task_storage/map_create.json");
    let (_, quiet) = library(Loss::Nobody, Some(&one), &[])?;
    let (_, warned) = library(Loss::Nobody, Some(&one), &[("BPFCASE_LOG", "libbpf=warn")])?;
    if !quiet.is_empty() {
        return Err(format!("libbpf printed without a filter:\n{quiet}").into());
    }
    // libbpf formats "BTF loading error: %s" with the errno's name: the callback ran the
    // format with its arguments.
    if !warned.lines().any(|l| {
        l.trim_start().starts_with("WARN libbpf: ") && l.contains("BTF loading error: -EPERM")
    }) {
        return Err(
            format!("no formatted libbpf warning with BPFCASE_LOG=libbpf=warn:\n{warned}").into(),
        );
    }
    Ok(Completion::Completed)
}

type Test = fn() -> Result<Completion, Failed>;

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
    }
    let args = Arguments::from_args();
    // The parent needs every privilege to take some away.
    let skip = bpfcase::exec::check_privileges().err().map(|e| {
        let e = e.to_string();
        format!("needs root: {}", e.lines().next().unwrap_or_default())
    });
    let tests: [(&str, Test); 6] = [
        ("cli::run_as_nobody", run_as_nobody),
        (
            "cli::host_commands_without_perfmon",
            host_commands_without_perfmon,
        ),
        ("cli::libbpf_log_is_opt_in", libbpf_log_is_opt_in),
        (
            "library::without_perfmon_is_refused",
            library_without_perfmon,
        ),
        ("library::as_nobody_is_refused", library_as_nobody),
        (
            "library::libbpf_warnings_reach_tracing",
            libbpf_warnings_reach_tracing,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let skip = skip.clone();
            Trial::ignorable_test(name, move || match skip {
                Some(reason) => Ok(Completion::ignored_with(reason)),
                None => f(),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
