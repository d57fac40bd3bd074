//! The commands that run on the host: `run`, `list` and `types`.

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use bpfcase::case::KernelSeries;
use bpfcase::exec::Env;
use bpfcase::report::{self, Summary, Verdict};

use super::{load, CliError, Selection, EXIT_FAILED};

pub fn list(sel: &Selection) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout().lock();
    for c in load(&sel.cases, &sel.filter)? {
        for i in &c.instances {
            let _ = writeln!(out, "{}", i.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(sel: &Selection, json: bool) -> Result<ExitCode, CliError> {
    let cases = load(&sel.cases, &sel.filter)?;
    bpfcase::exec::check_privileges()?;
    let mut env = Env::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| KernelSeries::from_release(&r));
    let mut summary = Summary::default();
    let mut out = std::io::stdout().lock();
    let selected: Vec<&bpfcase::case::Case> =
        cases.iter().filter(|c| !c.instances.is_empty()).collect();
    let mut current = String::new();
    bpfcase::pipeline::run_instances(&mut env, &selected, &mut |c, inst, obs| {
        if !json && current != c.name {
            current.clone_from(&c.name);
            let _ = writeln!(out, "# {} ({}): {}", c.name, c.file.display(), c.about);
        }
        let v = report::verdict(inst, &obs, kernel);
        summary.add(&obs, &v);
        if json {
            let _ = writeln!(out, "{}", report::json_line(inst, &obs, &v));
            return;
        }
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
    });
    if json {
        let _ = writeln!(out, "{}", serde_json::json!({ "summary": summary }));
    } else {
        let _ = writeln!(out, "{summary}");
    }
    Ok(if summary.expect_fail > 0 || summary.errors > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The table `bpfcase types` prints: a row per program type, how it runs in words.
pub fn types() -> String {
    let mut s = format!(
        "{:<16} {:>4}  {:<11} how it runs\n",
        "type", "id", "documented"
    );
    for p in bpfcase::tables::PROG_TYPES {
        let _ = writeln!(
            s,
            "{:<16} {:>4}  {:<11} {}",
            p.name,
            p.id,
            if p.documented { "yes" } else { "no" },
            p.how_it_runs(None)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn types_are_listed_in_words() {
        let t = super::types();
        assert!(t.starts_with("type "), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("tracepoint ")
                && l.ends_with(
                    "  yes         attach to tracepoint syscalls/sys_enter_getpid, trigger: getpid()"
                )),
            "{t}"
        );
        assert_eq!(t.lines().count(), bpfcase::tables::PROG_TYPES.len() + 1);
        assert!(
            !t.contains("AttachTrigger") && !t.contains("TestRun"),
            "{t}"
        );
    }
}
