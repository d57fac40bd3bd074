//! The command line's shared parts: the one error type, [`CliError`], that every command
//! returns (`main` prints it once, as `bpfcase: <message>`, and exits with its status), the
//! selection of cases every command takes, and the commands that run on the host (`run`,
//! `list`, `types`).
//!
//! Owns: turning what the user gave into calls of the library and what went wrong into
//! messages. Must not: know how cases are parsed, compiled or run (the library does), or print
//! an error of a lower layer as it is when it would repeat what the user gave.

mod commands;
mod error;
pub mod output;

use std::path::PathBuf;

use bpfcase::case::{self, Case};

pub use commands::{list, run, types};
pub use error::{kernel_problem, CliError, EXIT_FAILED};

#[derive(clap::Args)]
pub struct Selection {
    /// Case files or folders (default: ./cases).
    pub cases: Vec<PathBuf>,
    /// Keep instances whose id matches this glob (`*` crosses `/`); repeatable.
    #[arg(long)]
    pub filter: Vec<String>,
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
    let mut cases: Vec<case::Case> = Vec::new();
    for f in case::discover(&paths)? {
        let mut c = case::load(&f)?;
        // Instance ids begin with the case's name: two cases of one name would mix their
        // observations in results and reports.
        if let Some(other) = cases.iter().find(|o| o.name == c.name) {
            return Err(case::CaseError {
                file: f.clone(),
                line: 0,
                column: 0,
                path: ".".into(),
                message: format!(
                    "case `{}` has the name of {} (the file name): instance ids must be unique, rename one",
                    c.name,
                    other.file.display()
                ),
            }
            .into());
        }
        if !pats.is_empty() {
            c.instances
                .retain(|i| pats.iter().any(|p| p.matches(&i.id)));
        }
        cases.push(c);
    }
    Ok(cases)
}
