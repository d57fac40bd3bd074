//! `CliError`: the one error type of the command line. The layers below keep their own kinds
//! (`CaseError`, `KernelError`, …); here each becomes one message that says what the user gave,
//! what is wrong with it and what to do, once, and an exit status.

use std::fmt;
use std::process::ExitCode;

use bpfcase::case::CaseError;
use bpfcase::vm::kernels::KernelError;

/// Exit status: an expectation failed, or the runner could not do its work.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad input (a case file, an argument); nothing ran.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status: the process lacks the privileges the running kernel asks for; nothing ran.
pub const EXIT_MISSING_PRIVILEGES: u8 = bpfcase::exec::EXIT_MISSING_PRIVILEGES;

#[derive(Debug)]
pub enum CliError {
    /// A case file is not valid, located in it: `file:line:col: field.path: message`.
    Case(CaseError),
    /// A value the user gave cannot be used. `what` names it as the user knows it (`--kernel`,
    /// `kernel`, `--filter`, `instance id`), `given` is the value as written, `problem` says
    /// what is wrong and what to do instead.
    Arg {
        what: &'static str,
        given: String,
        problem: String,
    },
    /// The runner could not do what was asked, with what it was doing.
    Failed(String),
    /// Running cases on this kernel needs capabilities this process lacks.
    Privileges(bpfcase::exec::MissingPrivileges),
}

impl CliError {
    pub fn arg(what: &'static str, given: impl Into<String>, problem: impl Into<String>) -> Self {
        CliError::Arg {
            what,
            given: given.into(),
            problem: problem.into(),
        }
    }

    /// A kernel spec or kernel image that cannot be used, or could not be supplied; `what`
    /// names the argument (`--kernel` for `vm` and `bench`, `kernel` for `fetch`).
    pub fn kernel(what: &'static str, given: &str, e: KernelError) -> Self {
        match e {
            KernelError::Manifest { path, why } => CliError::arg(
                "kernel manifest",
                path.display().to_string(),
                format!("not a valid kernel manifest: {why}"),
            ),
            KernelError::BadSpec { .. }
            | KernelError::NotAnImage { .. }
            | KernelError::Missing { .. } => CliError::arg(what, given, kernel_problem(&e)),
            e => CliError::Failed(format!("{what} `{given}`: {}", kernel_problem(&e))),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Case(_) | CliError::Arg { .. } => EXIT_BAD_INPUT,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::Privileges(_) => EXIT_MISSING_PRIVILEGES,
        })
    }
}

/// What is wrong with a kernel, without repeating the spec or path it was given as.
pub fn kernel_problem(e: &KernelError) -> String {
    const GIVE: &str =
        "give a bzImage or vmlinuz file, debian:<series> (e.g. debian:6.1), host or default";
    match e {
        KernelError::BadSpec { why, .. } => why.clone(),
        KernelError::NotAnImage { why, .. } => {
            format!("not a bootable x86 kernel image: {why}; {GIVE}")
        }
        KernelError::Missing { .. } => format!("no such file; {GIVE}"),
        e => e.to_string(),
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Case(e) => write!(f, "{e}"),
            CliError::Arg {
                what,
                given,
                problem,
            } => write!(f, "{what} `{given}`: {problem}"),
            CliError::Failed(m) => f.write_str(m),
            CliError::Privileges(p) => write!(f, "{p}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<bpfcase::exec::MissingPrivileges> for CliError {
    fn from(e: bpfcase::exec::MissingPrivileges) -> Self {
        CliError::Privileges(e)
    }
}

impl From<CaseError> for CliError {
    fn from(e: CaseError) -> Self {
        CliError::Case(e)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn code(e: &CliError) -> ExitCode {
        e.exit_code()
    }

    #[test]
    fn a_bad_kernel_spec_names_the_argument_and_the_value_once() {
        let e = "debian:6".parse::<bpfcase::vm::kernels::KernelSpec>();
        let Err(e) = e else {
            panic!("debian:6 is not a spec")
        };
        let e = CliError::kernel("kernel", "debian:6", e);
        assert_eq!(
            e.to_string(),
            "kernel `debian:6`: the series must be <major>.<minor> digits, e.g. debian:6.1 or debian:7.3"
        );
        assert_eq!(code(&e), ExitCode::from(EXIT_BAD_INPUT));
    }

    #[test]
    fn a_file_that_is_no_kernel_is_named_once_with_what_to_do() {
        let e = CliError::kernel(
            "--kernel",
            "notes.txt",
            KernelError::NotAnImage {
                path: PathBuf::from("notes.txt"),
                why: "no bzImage header".into(),
            },
        );
        let s = e.to_string();
        assert_eq!(s.matches("notes.txt").count(), 1, "{s}");
        assert!(
            s.starts_with(
                "--kernel `notes.txt`: not a bootable x86 kernel image: no bzImage header; give "
            ),
            "{s}"
        );
        let m = CliError::kernel(
            "--kernel",
            "default",
            KernelError::Manifest {
                path: PathBuf::from("kernels.json"),
                why: "EOF while parsing".into(),
            },
        );
        assert_eq!(
            m.to_string(),
            "kernel manifest `kernels.json`: not a valid kernel manifest: EOF while parsing"
        );
    }

    #[test]
    fn exit_statuses_tell_bad_input_from_a_failed_run() {
        let supply = CliError::kernel(
            "kernel",
            "debian:9.9",
            KernelError::UnknownSeries {
                series: "9.9".into(),
                available: vec!["6.1".into()],
            },
        );
        assert_eq!(code(&supply), ExitCode::from(EXIT_FAILED));
        assert_eq!(
            supply.to_string(),
            "kernel `debian:9.9`: no Debian cloud-amd64 kernel package for series 9.9; the archive has 6.1"
        );
        let case = CliError::from(CaseError {
            file: PathBuf::from("a.json"),
            line: 1,
            column: 2,
            path: "about".into(),
            message: "invalid type".into(),
        });
        assert_eq!(case.to_string(), "a.json:1:2: about: invalid type");
        assert_eq!(code(&case), ExitCode::from(EXIT_BAD_INPUT));
    }
}
