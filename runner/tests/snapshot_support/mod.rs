//! The snapshot assertion of the kernel tests, shared with the test that proves snapshots are
//! never lost: `snapshots/<case>@<label>.snap` under a snapshot folder, compared with insta. In CI
//! (`CI=true`) a new or changed snapshot fails and nothing is written; locally it fails and the
//! new text goes to `<name>.snap.new` for review (`cargo insta review`), the old file unchanged.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use bpfcase::case::Case;
use bpfcase::exec::Observation;
use bpfcase::report;
use libtest_mimic::{Completion, Failed};

/// Snapshot name of a case file: its path under `cases/`, `/` → `__`, without `.json`.
pub fn snapshot_name(rel: &Path) -> String {
    rel.with_extension("").to_string_lossy().replace('/', "__")
}

/// `host-<major>.<minor>` from the running kernel's release.
pub fn host_label() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("host-{}", bpfcase::vm::label(release.trim()))
}

/// Asserts the observations of case `c` (file `cases/<rel>`) on kernel `label` against
/// `<dir>/<name>@<label>.snap`. A mismatch panics (insta); libtest-mimic reports the panic as
/// the test's failure.
pub fn assert_case_snapshot(
    dir: &Path,
    c: &Case,
    rel: &Path,
    label: &str,
    observations: &[Observation],
) -> Result<Completion, Failed> {
    if observations.len() != c.instances.len() {
        return Err(format!(
            "{} of {} instances reported",
            observations.len(),
            c.instances.len()
        )
        .into());
    }
    let text = report::snapshot(c, observations);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_snapshot_suffix(label);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(Path::new("cases").join(rel));
    settings.bind(|| insta::assert_snapshot!(snapshot_name(rel), text));
    Ok(Completion::Completed)
}
