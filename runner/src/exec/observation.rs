//! What one instance did: the data a snapshot line and a report are rendered from. Serializable,
//! so a guest can stream observations back to the host.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The result of one step or operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Res {
    /// Map created; `value_size` when it was measured (`"max"`).
    Created { value_size: Option<u32> },
    /// A call or action that failed with an errno.
    Err { errno: String },
    /// A call or action that succeeded with nothing to show.
    Ok,
    /// The program loaded and ran.
    Loaded,
    /// The kernel lacks what this program needs (kfunc, helper, program type, attach point).
    Unsupported { reason: String },
    /// The environment forbids this program (e.g. EPERM loading its type): errno and what
    /// was refused. The instance's other steps still run.
    Refused { errno: String, what: String },
    /// A step or operation that could not run because something it needs is unsupported or
    /// refused here (its program, or its map: see that result).
    Unavailable,
    /// The program loaded; its type cannot be run here.
    LoadOnly,
    /// A task pointer came back (`bpf_get_current_task_btf`).
    TaskPtr,
    /// A program that stayed attached: how often it ran, and the kernel's count of runs it
    /// skipped to prevent recursion (`recursion_misses` of bpf_prog_info).
    Attached { runs: u64, recursion_misses: u64 },
    /// A program that stayed attached while threads triggered it for a time, overlapping:
    /// whether it ran. How often, how often the kernel skipped it and how often a call failed
    /// depend on the scheduler, and are not recorded.
    AttachedFor { runs: bool },
    /// An operation of such a program: whether it was called.
    CountFor { calls: bool },
    /// An operation of a program that stayed attached: calls, and how many failed (`failure`
    /// names what counts: NULL, or -EBUSY for delete).
    Count {
        calls: u64,
        failures: u64,
        failure: String,
    },
    /// The program loaded but BPF_PROG_TEST_RUN failed.
    RunFailed { errno: String },
    /// The verifier refused the program: errno and its key log line (normalized).
    Rejected { errno: String, line: String },
    /// The case asks for something the compiler cannot express.
    NotCompiled { reason: String },
    /// A pointer came back; the bytes it pointed to (up to 64).
    Ptr { bytes: Vec<u8>, total: u32 },
    /// NULL came back.
    Null,
    /// A pointer came back to storage that may have been created from an uninitialised
    /// buffer: its bytes are stack garbage (possibly kernel addresses) and are not recorded.
    PtrUninit { total: u32 },
    /// Bytes that may come from an uninitialised buffer: not recorded.
    Uninit,
    /// A helper's integer return value.
    Ret { value: i64 },
    /// A nonzero 64-bit result that may be an address, so not recorded.
    Nonzero,
    /// Which branch an `if` took.
    Branch { then: bool },
    /// A value read through a pointer or looked up from user space.
    Value { bytes: Vec<u8> },
    /// A typed value looked up from user space, per field (spin locks left out, pointer
    /// fields only as set or not).
    Fields {
        fields: Vec<(String, crate::case::layout::FieldValue)>,
    },
    /// The operation did nothing because its pointer was NULL.
    SkippedNull,
    /// `bpf_task_from_pid` found no task; the helper was not called.
    NoTask,
    /// An owner's lookup (`bpf_cgroup_from_id`) found none; the helper was not called.
    NoOwner { kind: String },
    /// The program never reached the operation.
    NotReached,
}

/// How an instance ended as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step ran (individual steps may have failed: that is data).
    Ran,
    /// The kernel lacks a prerequisite (map type, program type, helper, kfunc, BTF).
    Unsupported { reason: String },
    /// The environment forbids what the case needs (e.g. EPERM for a program type).
    Refused { errno: String, what: String },
    /// The runner itself failed (a bug or a broken machine), with what it was doing.
    Error { message: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    pub id: String,
    pub outcome: Outcome,
    /// Result name → result, in step order.
    pub results: Vec<(String, Res)>,
    /// (program, the end of its verifier log, kernel addresses redacted) for each program the
    /// verifier rejected. Not part of snapshot lines: the result says the key line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<(String, String)>,
}

impl Observation {
    pub fn result(&self, name: &str) -> Option<&Res> {
        self.results.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }
}
