//! Results layer: `results.json`, the one record of a run that every report is rendered from.
//! It holds the selection that ran (case files with their instances), each kernel's identity
//! and every observation made on it with its verdict, so that reports can be re-rendered,
//! merged from shards and compared without running anything again.
//!
//! Owns: the schema-versioned data model, its JSON Schema, reading it back with a clear error,
//! sharding a plan and merging shards. Must not: touch the kernel or render text for people
//! (that is `report`).

mod describe;
mod merge;
mod shard;
#[cfg(test)]
mod tests;

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exec::Observation;
use crate::report::{Check, Summary};

pub use describe::{describe, listing_sizes};
pub use merge::{merge, MergeError};
pub use shard::{Shard, ShardError};

/// The version of this data model. A reader refuses any other major version.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one run (or the merge of a run's shards) observed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The runner that made the observations.
    pub runner: Runner,
    /// What was asked for: every kernel and every case file of the whole run, in order, shards
    /// included. Reports follow this order.
    pub plan: Plan,
    /// The slice of the plan this file covers; absent when it covers the whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The case files that ran, in plan order, with their instances.
    pub cases: Vec<CaseInfo>,
    /// One entry per kernel that ran (or could not), in plan order.
    pub kernels: Vec<KernelRun>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runner {
    pub name: String,
    pub version: String,
}

impl Runner {
    pub fn this() -> Runner {
        Runner {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The kernels (as specs: `host`, `debian:6.1`, a path) and case files (as given) of a run,
/// and the instance filters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub kernels: Vec<String>,
    pub cases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
}

/// One case file: its name (the first segment of instance ids), what it checks, and its
/// instances with what they compile to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseInfo {
    pub name: String,
    /// The file as given on the command line (relative paths stay relative).
    pub file: String,
    pub about: String,
    pub instances: Vec<InstanceInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceInfo {
    pub id: String,
    /// Matrix dimension → value label, in matrix order.
    pub bindings: Vec<(String, String)>,
    /// The program type the case names for its programs.
    pub program_type: String,
    /// The instance's programs, one per program step, as compiled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramInfo>,
}

/// One program step of an instance, as bpfcase compiles it (the same on every kernel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramInfo {
    /// The step's result name (`load`, `load#2`…).
    pub step: String,
    /// Its program type, as a case names it (`fentry`).
    pub program_type: String,
    /// The UAPI program type without `BPF_PROG_TYPE_` (`TRACING`).
    pub uapi_type: String,
    /// The helpers (`bpf_task_storage_get`) and kfuncs (`kfunc bpf_task_release`) it calls,
    /// in first-call order; bpfcase's own bookkeeping calls excluded.
    pub calls: Vec<String>,
    /// The instructions, one per line as `bpfcase show` prints them; for a C program, which
    /// one.
    pub listing: String,
}

/// One kernel: what it is, what happened to it as a whole, and every instance it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelRun {
    pub identity: KernelIdentity,
    /// Why the kernel could not run the cases at all (not found, cannot boot, no BPF or BTF),
    /// when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
    /// Kernel panics, oopses, WARN splats, hangs, guest errors, instances that did not report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Instances selected for this kernel that sent no observation (the guest died first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub did_not_report: Vec<String>,
    /// How long things took. Differs between runs: no report compares it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<Timing>,
    pub summary: Summary,
    /// In plan order: case files in order, instances in matrix order.
    pub instances: Vec<InstanceResult>,
}

/// Which kernel, exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelIdentity {
    /// As given: `host`, `debian:6.1`, a path.
    pub spec: String,
    /// `<major>.<minor>` for a guest, `host-<major>.<minor>` for the running kernel: the
    /// snapshot variant. The spec when the kernel never said which release it is.
    pub label: String,
    /// `uname -r`, when the kernel ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// `uname -v`, when the kernel ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Where it came from, in words ("debian:6.1 = linux-image-… 6.1.192-2", "the running
    /// kernel", a path with its hash).
    pub origin: String,
    /// The Debian package and its version, for a Debian kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
    /// SHA-256 of the kernel image that booted (guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// Whether the kernel exposes BTF (`/sys/kernel/btf/vmlinux`), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btf: Option<bool>,
}

impl KernelIdentity {
    /// The kernel series (`6.1`) when the kernel said its release.
    pub fn series(&self) -> Option<String> {
        self.release.as_deref().map(crate::vm::label)
    }
}

/// Time spent on one kernel by one run (a sharded kernel has one per shard).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// `kvm`, `tcg`, or `native` for the running kernel.
    pub accel: String,
    /// How a guest started: `cold` (booted), `saved` (booted, then saved for warm starts) or
    /// `warm` (restored from a saved guest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Building the initramfs (guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_s: Option<f64>,
    /// QEMU start to the runner's hello (guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_s: Option<f64>,
    /// Everything, from start to the last observation.
    pub total_s: f64,
    /// Where the runner's own time went, as it measured it (inside the guest for a guest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
}

/// Where a runner's time went on one kernel: receiving its cases, each phase of the instances,
/// each case file, and sending observations back. Seconds, as the runner's clock measured them
/// (a guest's clock runs at the emulated machine's pace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// Receiving the cases, from their first byte to their last (a warm start's delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_s: Option<f64>,
    /// Writing observation frames to the results port, until each left the port (guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_s: Option<f64>,
    /// Whether programs were kept on trampolines to spare attachments their registration:
    /// `on`, `off`, or `measuring` (too few attachments to decide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors: Option<String>,
    /// The instances' time per phase (`compile`, `btf`, `maps`, `load`, `run`, `observe`,
    /// `close`), in that order.
    pub phases: Vec<PhaseTime>,
    /// Each case file's instances, in the order they ran.
    pub cases: Vec<CaseTime>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseTime {
    pub phase: String,
    pub s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseTime {
    pub case: String,
    pub instances: usize,
    pub s: f64,
}

/// One instance on one kernel: what happened and how it compares with the case's rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceResult {
    /// The case file's name (first segment of the id).
    pub case: String,
    pub observation: Observation,
    pub verdict: VerdictKind,
    /// `name: expected P, got R (because …)` for each rule that does not hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Every rule of the instance and how it fared on this kernel (held, not held, or not
    /// applicable: a kernel condition that does not match, a step that could not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Pass,
    Fail,
    NoRule,
    NotRun,
}

impl Results {
    /// Every observation of every kernel, as JSON with a trailing newline: stable for the same
    /// results (fields in declaration order).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("results serialize");
        s.push('\n');
        s
    }

    /// Reads a results file, refusing what is not one or has another major schema version.
    pub fn read(path: &Path) -> Result<Results, ReadError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReadError {
            file: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|why| ReadError {
            file: path.display().to_string(),
            why,
        })
    }

    pub fn parse(text: &str) -> Result<Results, String> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("line {} column {}: not JSON: {e}", e.line(), e.column()))?;
        match v.get("schema_version").and_then(|v| v.as_u64()) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(format!(
                    "schema version {n}; this bpfcase reads version {SCHEMA_VERSION}"
                ))
            }
            None => return Err("not a bpfcase results file (no `schema_version`)".into()),
        }
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("at {path}: {}", e.into_inner())
        })
    }

    /// The selected instances of this file that have an observation on kernel `k`, by id.
    pub fn instance<'a>(&'a self, k: &'a KernelRun, id: &str) -> Option<&'a InstanceResult> {
        k.instances.iter().find(|r| r.observation.id == id)
    }
}

/// A results file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {why}")]
pub struct ReadError {
    pub file: String,
    pub why: String,
}

/// The JSON Schema of `results.json`.
pub fn schema() -> String {
    let s = schemars::schema_for!(Results);
    let mut t = serde_json::to_string_pretty(&s).expect("the schema serializes");
    t.push('\n');
    t
}
