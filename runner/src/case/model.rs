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
enum UserValueLeaf {
    Int(i128),
    /// A pattern (`"0x…"`, `"fill:0xNN"`) or a `"$var"`.
    Text(String),
    /// Field name → value, for a typed value.
    Fields(IndexMap<String, Value>),
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
    /// Required unless `value` gives the fields (then it follows from them; given too, it must agree).
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub value_size: Option<Value>,
    /// A typed value: a struct of named fields, laid out as C lays out a struct. The map's BTF
    /// describes it, user-space steps take and show it per field.
    #[serde(default)]
    pub value: Option<ValueDef>,
    /// Describe the value in BTF as `unsigned char[N]` of this size instead of `value_size`
    /// (a BTF that does not match the map). Needs `btf` and no `value`.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub btf_value_size: Option<Value>,
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

/// A typed map value: its fields in order.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "ValueDef")]
pub struct ValueDef {
    pub fields: Vec<FieldDef>,
}

/// One field of a typed map value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "FieldDef")]
pub struct FieldDef {
    /// A C identifier, unique in the value.
    pub name: String,
    /// `u8`, `u16`, `u32`, `u64`, `s8` … `s64`, an array `u8[16]`, `bpf_spin_lock`,
    /// `kptr task_struct` (a kernel pointer with BTF type tag `kptr`; also `kptr_untrusted`,
    /// `kptr_ref`, `percpu_kptr`), `uptr u8[8]` (a user pointer to a struct of 8 bytes), or a `"$dim"`.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub kind: Value,
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
    Lookup(LookupDef),
    /// User space: `BPF_MAP_LOOKUP_AND_DELETE_ELEM` keyed by a pidfd.
    LookupAndDelete(LookupDef),
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
    /// Create an owner of local storage under a name, `{"cgroup": "a"}`: a cgroup in the
    /// runner's private part of the cgroup2 hierarchy. The name is then a key of user-space
    /// calls (the owner's fd) and a program argument (`{"cgroup": "a"}`).
    #[schemars(with = "IndexMap<String, String>")]
    New(IndexMap<String, String>),
    /// Remove a created owner: a cgroup's directory (the fd the runner holds stays open, as a
    /// process's would). Everything created is removed when the instance ends anyway.
    Free(String),
    /// Move a spawned child into a created cgroup (its programs' `current` is then in it).
    Enter(EnterDef),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "EnterDef")]
pub struct EnterDef {
    /// A child spawned by an earlier step.
    pub child: String,
    /// A cgroup made by an earlier `new` step.
    pub cgroup: String,
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
    /// What makes an attached program run, instead of its type's own trigger (or test run):
    /// `"getpid"`, `"open"`, `"socket"`, `"unlink"` (the runner's thread does it), `"exec"`,
    /// `"exit"` (a fresh child does it), or `{"child": NAME, "do": ACTION}` (a spawned
    /// child does getpid, open, socket, unlink or exit). The program acts only for the task
    /// that triggers it. With `stay`, the trigger runs once after attaching.
    #[serde(default)]
    #[schemars(with = "Option<TriggerLeaf>")]
    pub trigger: Option<Value>,
    /// With `stay`: threads of the runner that trigger the program right after it is attached
    /// (the program then acts for every thread of the runner).
    #[serde(default)]
    pub threads: Option<ThreadsDef>,
    /// For a hook that runs for a task other than the current one (`exit_creds`, run from the
    /// task's last `put_task_struct`, an RCU callback): `{"arg": N}`, the program acts when
    /// the hook's argument N, a `task_struct`, is the triggering task (its pid), in any
    /// context, instead of when the triggering task is current. With `stay`, the runner then
    /// waits up to `wait_ms` (default 2000) for the program's first run before going on.
    #[serde(default, rename = "for")]
    #[schemars(with = "Option<IndexMap<String, NumLeaf>>")]
    pub for_task: Option<Value>,
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
    /// What to read back after the run, each a result of that name. For `ops`:
    /// `"recursion_misses"` adds `<step>.recursion_misses` to a program that runs once (the
    /// runs the kernel skipped to prevent recursion), `"retval"` adds `<step>.retval` to one
    /// that a test run runs (its return value). For an `object`: a global, rendered as a
    /// number, or `PROG.recursion_misses` (from `bpf_prog_info`).
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

/// Schema-only: what a `trigger` may hold.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum TriggerLeaf {
    /// An action of the runner (or of a fresh child), or a `"$var"`.
    Name(String),
    /// An action of a spawned child.
    Child {
        child: String,
        #[serde(rename = "do")]
        action: String,
    },
}

/// Threads that trigger an attached program, for a number of iterations or for a time.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "ThreadsDef")]
pub struct ThreadsDef {
    /// How many threads (1 to 64).
    #[schemars(with = "NumLeaf")]
    pub count: Value,
    /// Pin every thread to this CPU. Default: not pinned.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub cpu: Option<Value>,
    /// Each thread triggers this many times, the threads taking turns: the counts are exact.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub iterations: Option<Value>,
    /// Each thread triggers for this many milliseconds, overlapping the others: only whether
    /// the program ran and each operation was called is reported (`runs>0`, `calls>0`), since
    /// the counts, recursion misses and failures differ from run to run.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub for_ms: Option<Value>,
    /// `"getpid"`, `"open"`, `"socket"` or `"unlink"`. Default: the step's `trigger`, else
    /// the program type's.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub trigger: Option<Value>,
}

/// An operation inside a program. Exactly one key.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `bpf_task_storage_get(map, task, value, flags)` (`bpf_cgrp_storage_get(map, cgroup, …)`
    /// for cgroup storage); a non-NULL result is read back (up to 64 bytes).
    Get(GetDef),
    /// `bpf_task_storage_delete(map, task)` (`bpf_cgrp_storage_delete(map, cgroup)`).
    Delete(DeleteDef),
    /// `bpf_get_current_task_btf()` alone: `ptr` or `NULL`.
    CurrentTask(NameDef),
    /// Read through the pointer an earlier `get` returned.
    Read(ReadDef),
    /// Write through the pointer an earlier `get` returned.
    Write(WriteDef),
    /// Any helper (by its UAPI name, `bpf_task_storage_get`) or kfunc (by its name in the
    /// kernel's BTF) with arguments of any kind.
    Call(CallDef),
    /// Operations that run only when a condition on an earlier result holds (and others when
    /// it does not): `then`, or `else`.
    If(IfDef),
    /// Ends the program with this return value (fmod_ret, LSM).
    #[schemars(with = "NumLeaf")]
    Return(Value),
    /// Adds to the number an earlier pointer result points to (a read, an add and a write:
    /// not atomic).
    Add(WriteDef),
    /// An argument's value as a result of its own, with no call: a pointer walked from a hook
    /// argument (`{"walk": {"arg": 0}, "type": "socket", "fields": ["sk"]}`) that later ops
    /// check (`if nonnull`) and pass on (`{"result": NAME}`).
    Let(LetDef),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "LetDef")]
pub struct LetDef {
    /// Any argument of a `call`.
    #[schemars(with = "ArgLeaf")]
    pub value: Value,
    /// How it is recorded, as for `call` (default `"ptr"`: NULL or ptr).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ret: Option<Value>,
    /// Name of the result (default `let`).
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

/// Schema-only: what a `call` argument may be.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ArgLeaf {
    /// A constant the verifier sees (`0`, `"1<<63"`, `"-1"`; null is 0), `"ctx"` (the
    /// program's context), or a `"$dim"`.
    Const(NullableLeaf),
    /// A source of its own: `{"runtime": N}` (a u64 user space writes before the run, unknown to
    /// the verifier), `{"map": M}`, `{"task": "current" | null | "scalar" | CHILD}` (a child is
    /// found with bpf_task_from_pid and released after the call), `{"pid": CHILD}` (its pid, a
    /// u32 read at run time), `{"buf": PATTERN | "small" | "uninit" | "half", "size": N}` (a
    /// stack buffer; default size: the value size of the call's map), `{"result": NAME,
    /// "offset": N}` (an earlier result's value, plus N bytes), `{"arg": N}` (the hook's
    /// argument N, `((u64 *)ctx)[N]`), `{"plus": ARG, "by": N}` (pointer arithmetic).
    Source(IndexMap<String, Value>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "CallDef")]
pub struct CallDef {
    /// A helper (`bpf_get_current_task`) or, any other name, a kfunc (`bpf_task_acquire`).
    #[serde(rename = "fn")]
    pub func: String,
    /// r1 to r5, in order (at most five).
    #[serde(default)]
    #[schemars(with = "Vec<ArgLeaf>")]
    pub args: Vec<Value>,
    /// How the result is recorded: `"int"` (0, a negative errno by name), `"ptr"` (NULL or
    /// ptr), `"task"` (NULL or ptr), `"value:MAP"` (a pointer into MAP's value: its bytes),
    /// `"u64"` (0 or nonzero: it may be an address), `"void"` (nothing). Default: the
    /// function's kind (`bpf_task_storage_get`: the value of its map argument).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ret: Option<Value>,
    /// Name of the result in observations, expectations and later arguments (default: the
    /// function's name).
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "IfDef")]
pub struct IfDef {
    /// The condition, one of: an earlier result is not NULL (not 0).
    #[serde(default)]
    pub nonnull: Option<String>,
    /// … is NULL (0).
    #[serde(default)]
    pub null: Option<String>,
    /// … equals a constant: `["name", 0]`.
    #[serde(default)]
    #[schemars(with = "Option<(String, NumLeaf)>")]
    pub eq: Option<(String, Value)>,
    /// … differs from a constant.
    #[serde(default)]
    #[schemars(with = "Option<(String, NumLeaf)>")]
    pub ne: Option<(String, Value)>,
    /// … is below a constant (unsigned).
    #[serde(default)]
    #[schemars(with = "Option<(String, NumLeaf)>")]
    pub lt: Option<(String, Value)>,
    /// What runs when the condition holds.
    #[serde(default)]
    pub then: Vec<Op>,
    /// What runs when it does not.
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Op>,
    /// Name of the result (`then` or `else`: the branch taken). Default `if`.
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "GetDef")]
pub struct GetDef {
    pub map: String,
    /// For task storage: `"current"`, null, `"scalar"`, or a child's name.
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<NullableLeaf>")]
    pub task: Option<Value>,
    /// For cgroup storage, instead of `task`: `"self"` (the runner's cgroup), a cgroup made by
    /// a `new` step, null or `"scalar"`.
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<NullableLeaf>")]
    pub cgroup: Option<Value>,
    /// For inode storage, instead of `task`: an inode, as an argument (`{"walk": {"arg": 0},
    /// "type": "file", "fields": ["f_inode"]}`), null or `"scalar"`.
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<ArgLeaf>")]
    pub inode: Option<Value>,
    /// For socket storage, instead of `task`: a socket, as an argument (`{"walk": {"arg": 0},
    /// "type": "socket", "fields": ["sk"]}`), null or `"scalar"`.
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<ArgLeaf>")]
    pub sk: Option<Value>,
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
    /// The owner, one of `task`, `cgroup`, `inode`, `sk`, as for `get`.
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<NullableLeaf>")]
    pub task: Option<Value>,
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<NullableLeaf>")]
    pub cgroup: Option<Value>,
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<ArgLeaf>")]
    pub inode: Option<Value>,
    #[serde(default, deserialize_with = "super::shape::present")]
    #[schemars(with = "Option<ArgLeaf>")]
    pub sk: Option<Value>,
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
    /// The name of an earlier pointer result (a `get`, a `call` returning a pointer).
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
    /// The name of an earlier pointer result (a `get`, a `call` returning a pointer).
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
    #[serde(alias = "key")]
    #[schemars(with = "String")]
    pub task: Value,
    /// A value pattern (`"0x…"`, `"fill:0xNN"`), or for a typed value an object of fields
    /// (`{"cnt": 1, "buf": "fill:0xaa"}`; fields not given are zero).
    #[schemars(with = "UserValueLeaf")]
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
    #[serde(alias = "key")]
    #[schemars(with = "String")]
    pub task: Value,
    #[serde(default, rename = "as")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
#[schemars(rename = "LookupDef")]
pub struct LookupDef {
    pub map: String,
    #[serde(alias = "key")]
    #[schemars(with = "String")]
    pub task: Value,
    /// `"none"` (default, 0), `"lock"` (BPF_F_LOCK: the value is copied under its spin lock) or a number.
    #[serde(default)]
    #[schemars(with = "Option<NumLeaf>")]
    pub flags: Option<Value>,
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
    #[serde(alias = "key")]
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
