//! The serde types of a case file, exactly as written (before matrix expansion). Any leaf may
//! be a `"$name"` reference to a matrix dimension; leaves are therefore kept as JSON values and
//! typed during resolution (see `resolve.rs`). The JSON Schema is generated from these types.
//!
//! Every struct is read from a JSON object only: its derived `Deserialize` is made an inherent
//! `Self::deserialize` (`#[serde(remote = "Self")]`, named for the schema with
//! `#[schemars(rename)]`) and `shape.rs` implements the trait with a visitor that takes maps
//! alone. The derived one would also take a list of the field values in order, which skips
//! the unknown-field check. `Step` and `Op` are read there too, as objects with one key.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Schema-only stand-ins for leaves: what a leaf may hold besides a `"$var"` reference.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NumLeaf {
    /// An integer.
    Int(i128),
    /// An expression (`"0x10"`, `"1<<32"`, `"u64::MAX"`, `"-1"`, `"a | b"`) or a `"$var"`.
    Expr(String),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum BoolLeaf {
    Bool(bool),
    /// A `"$var"`.
    Var(String),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NullableLeaf {
    Null(()),
    Int(i128),
    Text(String),
}

/// One case file: maps, a matrix of parameters, steps that run for every combination, and the
/// documented semantics as expectations.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "CaseFile")]
pub struct CaseFile {
    /// Case name used in instance ids; defaults to the file stem. (Snapshot files are named
    /// after the file's path under `cases/`.)
    #[serde(default)]
    pub name: Option<String>,
    /// What the case checks, in one sentence.
    pub about: String,
    /// Maps the steps use, by name. Created fresh for every instance.
    #[serde(default, deserialize_with = "super::shape::object")]
    pub maps: IndexMap<String, MapDef>,
    /// The program type the `prog` steps are loaded as.
    #[serde(default)]
    pub program: ProgramDef,
    /// Dimensions, each a list of values; the instances are their Cartesian product in the order
    /// written. Steps refer to a dimension as `"$name"`.
    #[serde(default, deserialize_with = "super::shape::object")]
    pub matrix: IndexMap<String, Vec<Value>>,
    /// Combinations left out: an instance is dropped when it matches every dimension of a rule
    /// (a rule's value may be a list of alternatives).
    #[serde(default, deserialize_with = "super::shape::objects")]
    pub exclude: Vec<IndexMap<String, Value>>,
    /// What every instance does, in order.
    pub steps: Vec<Step>,
    /// The documented semantics, checked against each observation.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "MapDef")]
pub struct MapDef {
    /// `task_storage`, `hash`, `array`, `percpu_array`, `sk_storage`, `inode_storage` or
    /// `cgrp_storage`.
    #[serde(rename = "type")]
    #[schemars(with = "NumLeaf")]
    pub kind: Value,
    /// Default 4.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub key_size: Option<Value>,
    /// Bytes; `"max"` is the largest size this kernel accepts (found by bisection), `"max+1"` one more.
    #[schemars(with = "NumLeaf")]
    pub value_size: Value,
    /// Default 0 for local storage maps, 1 otherwise.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub max_entries: Option<Value>,
    /// `map_flags`: a number, names joined by `|` (`"no_prealloc|mmapable"`), or a list of names.
    /// Default `["no_prealloc"]` for local storage maps, none otherwise.
    #[serde(default)]
    #[schemars(with = "Option<Value>")]
    pub flags: Option<Value>,
    /// Give the map BTF for its key (`int`) and value (`unsigned char[value_size]`). Default true.
    #[serde(default)]
    #[schemars(with = "Option<BoolLeaf>")]
    pub btf: Option<Value>,
    /// Storage of the runner's own task before the steps run (task storage only): a value, or
    /// null / `"absent"` for none.
    #[serde(default)]
    #[schemars(with = "Option<NullableLeaf>")]
    pub preset: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "ProgramDef")]
pub struct ProgramDef {
    /// Program type (`bpfcase types` lists them): `syscall`, `raw_tp`, `fentry`, `lsm`, `kprobe`, … or
    /// a `"$dim"`, so that the program type is a matrix dimension.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: Value,
    /// Run `prog` steps with the clang-compiled `progs/<object>.bpf.c` instead of compiling
    /// them (its twin of the compiled programs: one get, delete or current_task per step).
    #[serde(default)]
    pub object: Option<String>,
}

impl Default for ProgramDef {
    fn default() -> Self {
        ProgramDef {
            kind: Value::String("syscall".into()),
            object: None,
        }
    }
}

/// One step of an instance. Exactly one key.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Load a program made of these operations and run it once; or, as an object, a program
    /// of its own type, attached to a function of your choice, that stays attached and counts.
    Prog(ProgBody),
    /// User space: `bpf_map_update_elem` keyed by a pidfd.
    Update(UpdateDef),
    /// User space: `bpf_map_lookup_elem` keyed by a pidfd.
    Lookup(KeyDef),
    /// User space: `bpf_map_delete_elem` keyed by a pidfd.
    Delete(KeyDef),
    /// User space: `bpf_map_get_next_key` from a pidfd key (null: the first key).
    NextKey(NextKeyDef),
    /// Fork a child process that waits; it gets this name.
    Spawn(String),
    /// Let the named child exit; it stays a zombie until reaped.
    Exit(String),
    /// Reap the named child (it must have exited).
    Reap(String),
}

/// A `prog` step: a list of operations, or a program with its own settings.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum ProgBody {
    Ops(Vec<Op>),
    // Boxed: its leaves stay JSON values until resolution, which makes it large.
    Program(Box<ProgStep>),
}

/// By the JSON shape (an array or an object), so that errors inside keep their exact path
/// (an untagged enum would only say that no variant matched).
impl<'de> Deserialize<'de> for ProgBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = ProgBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of operations, or an object with `ops`")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ProgBody, A::Error> {
                Vec::<Op>::deserialize(SeqAccessDeserializer::new(seq)).map(ProgBody::Ops)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ProgBody, A::Error> {
                ProgStep::deserialize(MapAccessDeserializer::new(map))
                    .map(|p| ProgBody::Program(Box::new(p)))
            }
        }
        d.deserialize_any(Shape)
    }
}

impl ProgBody {
    pub fn ops(&self) -> &[Op] {
        match self {
            ProgBody::Ops(o) => o,
            ProgBody::Program(p) => &p.ops,
        }
    }
}

/// A program with settings of its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgStep {
    /// Program type of this step (default: the case's), or a `"$dim"`.
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<String>")]
    pub kind: Option<Value>,
    /// For fentry/fexit/fmod_ret/lsm/tp_btf: the kernel function (or `btf_trace_*`) to attach
    /// to instead of the type's default target, or a `"$dim"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub attach_to: Option<Value>,
    /// Stay attached while the following steps run, counting what each operation got, until
    /// the instance ends; then report the counts and the program's `recursion_misses`.
    /// Default false.
    #[serde(default)]
    #[schemars(with = "Option<BoolLeaf>")]
    pub stay: Option<Value>,
    /// The operations (or `asm`; one of the two).
    #[serde(default)]
    pub ops: Vec<Op>,
    /// The program as instructions in the verifier log's text form (a list of lines, or one
    /// string of lines), instead of `ops`: `["r0 = 0", "exit"]`. Its results are `load` and
    /// `retval`, the program's return value (for the types that run by a test run). Syntax:
    /// README, "Raw instructions".
    #[serde(default)]
    #[schemars(with = "Option<AsmText>")]
    pub asm: Option<Value>,
    /// Instead of `ops`: a BPF C program of `progs/` by name (`"selftests/task_local_storage"`),
    /// loaded with libbpf, its programs attached by their `SEC` when `type` is an attached type
    /// and made to run as `type` runs. Results: `load`, one per program (its name), `retval`
    /// for test-run types, and the `observe`d globals.
    #[serde(default)]
    pub object: Option<String>,
    /// The object's programs to load, by function name (default: all of them).
    #[serde(default)]
    pub programs: Vec<String>,
    /// Globals of the object set before load (`.rodata`, `.data` or `.bss`): name → a number, a
    /// `"$dim"`, or `"tid"` (the runner's thread as `task->pid` sees it).
    #[serde(default, deserialize_with = "super::shape::object")]
    #[schemars(with = "IndexMap<String, NumLeaf>")]
    pub globals: IndexMap<String, Value>,
    /// How often the programs are made to run while attached (the type's trigger) or by a
    /// test run; default 1.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub runs: Option<Value>,
    /// Globals written after the programs ran and before they are detached, through the
    /// object's memory-mapped `.data`/`.bss` (no system call the programs would see), as a
    /// selftest writes `skel->bss->x = 0`: name → value, as in `globals`.
    #[serde(default, deserialize_with = "super::shape::object")]
    #[schemars(with = "IndexMap<String, NumLeaf>")]
    pub reset: IndexMap<String, Value>,
    /// What to read back after the run, each a result of that name rendered as a number: a
    /// global, or `PROG.recursion_misses` (the runs of a program the kernel skipped to prevent
    /// recursion, from `bpf_prog_info`).
    #[serde(default)]
    pub observe: Vec<String>,
}

/// Schema-only: the text of an `asm` program.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum AsmText {
    /// Lines separated by `\n`.
    Text(String),
    /// One line (or several, separated by `\n`) per item.
    Lines(Vec<String>),
}

/// An operation inside a program. Exactly one key.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `bpf_task_storage_get(map, task, value, flags)`; a non-NULL result is read back (up to 64 bytes).
    Get(GetDef),
    /// `bpf_task_storage_delete(map, task)`.
    Delete(DeleteDef),
    /// `bpf_get_current_task_btf()` alone: `ptr` or `NULL`.
    CurrentTask(NameDef),
    /// Read through the pointer an earlier `get` returned.
    Read(ReadDef),
    /// Write through the pointer an earlier `get` returned.
    Write(WriteDef),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "GetDef")]
pub struct GetDef {
    pub map: String,
    /// `"current"`, null, `"scalar"`, or a child's name.
    #[schemars(with = "NullableLeaf")]
    pub task: Value,
    /// null, a value (`"0x…"`, `"fill:0xNN"`), `"small"` or `"uninit"`. Default null.
    #[serde(default)]
    #[schemars(with = "NullableLeaf")]
    pub value: Value,
    /// A u64 (`0`, `1`, `"1<<63"`, …) or `"runtime:N"` (written by user space before the run: unknown to the verifier).
    #[schemars(with = "NumLeaf")]
    pub flags: Value,
    /// Name of the result in observations and expectations (default `get`).
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "DeleteDef")]
pub struct DeleteDef {
    pub map: String,
    #[schemars(with = "NullableLeaf")]
    pub task: Value,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "NameDef")]
pub struct NameDef {
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "ReadDef")]
pub struct ReadDef {
    /// The name of an earlier `get`.
    pub from: String,
    /// Byte offset into the value. Default 0.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub offset: Option<Value>,
    /// Bytes to read (1, 2, 4 or 8). Default 8.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub size: Option<Value>,
    /// Skip the read when the pointer is NULL. Default true; false asks the verifier.
    #[serde(default)]
    #[schemars(with = "Option<BoolLeaf>")]
    pub null_check: Option<Value>,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "WriteDef")]
pub struct WriteDef {
    /// The name of an earlier `get`.
    pub to: String,
    /// The number to store.
    #[schemars(with = "NumLeaf")]
    pub value: Value,
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub offset: Option<Value>,
    /// Bytes to write (1, 2, 4 or 8). Default 8.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub size: Option<Value>,
    #[serde(default)]
    #[schemars(with = "Option<BoolLeaf>")]
    pub null_check: Option<Value>,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "UpdateDef")]
pub struct UpdateDef {
    pub map: String,
    /// `"self"`, a child's name, `"not_pidfd"`, `"closed_fd"`.
    #[schemars(with = "String")]
    pub task: Value,
    #[schemars(with = "NumLeaf")]
    pub value: Value,
    /// `"any"` (default), `"noexist"`, `"exist"`, `"lock"` or a number.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub flags: Option<Value>,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "KeyDef")]
pub struct KeyDef {
    pub map: String,
    #[schemars(with = "String")]
    pub task: Value,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "NextKeyDef")]
pub struct NextKeyDef {
    pub map: String,
    /// A key as for `lookup`, or null for the first key.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub task: Value,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

// Schema-only: `Expect::when` is read as a map (a dimension may have any name but `kernel`).
/// The conditions of an `expect` entry: matrix dimensions, and the kernel series.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct When {
    /// Not a dimension (no dimension may be named `kernel`): the rule applies only on kernels of
    /// the series this admits, a comma-separated list of clauses that must all hold, each
    /// `>=`, `>`, `<=`, `<` or `=` and a series (`">=6.4"`, `"<6.16"`, `"=6.12"`), a bare series
    /// (`"6.12"`), or an inclusive range (`"6.1 - 6.12"`). A series is `<major>.<minor>`, with no
    /// patch level. On a kernel of unknown series the rule does not apply.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kernel: String,
    /// Matrix dimension → value, or a list of values (any of them).
    #[serde(flatten)]
    dims: IndexMap<String, Value>,
}

/// A documented rule: for the instances matching `when`, each named result must match its
/// pattern (`*` and `?` wildcards) as rendered in the observation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "Expect")]
pub struct Expect {
    /// Matrix dimension → value, or a list of values (any of them), and `kernel` → a
    /// requirement on the kernel series. Empty: every instance on every kernel.
    #[serde(default, deserialize_with = "super::shape::object")]
    #[schemars(with = "When")]
    pub when: IndexMap<String, Value>,
    /// Result name (`load`, `get`, `lookup#2`, a map name for its creation…) → pattern.
    #[serde(deserialize_with = "super::shape::object")]
    pub then: IndexMap<String, String>,
    /// Where the rule comes from (documentation, commit).
    #[serde(default)]
    pub because: Option<String>,
}
