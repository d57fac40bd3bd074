//! The typed result of resolution: an instance of a case, with its maps, steps, operations and
//! expectations, ready for the compiler and the executor. Plain data.

use crate::case::kernel::KernelReq;
use crate::case::layout::{Field, Layout};
use crate::case::trigger::ProgRun;
use crate::case::value::parse_u64;
use crate::case::value::{FlagsArg, KeyArg, Pattern, TaskArg, ValueArg};
use crate::tables::{self, Helper, MapType, OwnerKind, ProgType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSize {
    Fixed(u32),
    /// The largest size the kernel accepts, found by bisection at run time.
    Max,
    /// One more than that.
    MaxPlusOne,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: &'static MapType,
    pub key_size: u32,
    pub value_size: ValueSize,
    pub max_entries: u32,
    pub flags: u32,
    pub btf: bool,
    pub preset: Option<Pattern>,
    /// The typed value's layout, when the case gives its fields (then `value_size` is its size).
    pub layout: Option<Layout>,
    /// The size of `unsigned char[N]` the BTF describes the value as, when it is not `value_size`.
    pub btf_value_size: Option<u32>,
}

impl MapSpec {
    /// A field of the typed value, by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.layout.as_ref()?.field(name)
    }
}

/// A value user space writes: a pattern over the value size, or the bytes of a typed value
/// given per field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserValue {
    Pattern(Pattern),
    Typed(Vec<u8>),
}

impl UserValue {
    /// The value laid out over `size` bytes (a typed value is cut or zero-padded to it).
    pub fn bytes(&self, size: usize) -> Vec<u8> {
        match self {
            UserValue::Pattern(p) => p.bytes(size),
            UserValue::Typed(b) => {
                let mut v = b.clone();
                v.resize(size, 0);
                v
            }
        }
    }
}

/// Access width of a read or write through a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    B1,
    B2,
    B4,
    B8,
}

impl Width {
    pub fn bytes(self) -> u32 {
        match self {
            Width::B1 => 1,
            Width::B2 => 2,
            Width::B4 => 4,
            Width::B8 => 8,
        }
    }
    pub(super) fn parse(v: &serde_json::Value) -> Result<Width, String> {
        match parse_u64(v)? {
            1 => Ok(Width::B1),
            2 => Ok(Width::B2),
            4 => Ok(Width::B4),
            8 => Ok(Width::B8),
            n => Err(format!("size {n} is not 1, 2, 4 or 8")),
        }
    }
}

/// An operation inside a program; `map` indexes `Instance::maps`, `from`/`to`/results index
/// the ops of the same program. The ops of an `If` follow it: `then_len` ops, then `else_len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpSpec {
    /// A helper or kfunc call (`get`, `delete` and `current_task` are spellings of it).
    Call(Call),
    Read {
        name: String,
        from: usize,
        offset: u32,
        width: Width,
        null_check: bool,
    },
    Write {
        name: String,
        to: usize,
        value: u64,
        offset: u32,
        width: Width,
        null_check: bool,
    },
    /// `*(to + offset) += value`, `width` bytes wide.
    Add {
        name: String,
        to: usize,
        value: u64,
        offset: u32,
        width: Width,
        null_check: bool,
    },
    /// The next `then_len` ops run when `cond` holds, the `else_len` after them otherwise.
    If {
        name: String,
        cond: Cond,
        then_len: usize,
        else_len: usize,
    },
    /// Ends the program with r0 = `value`.
    Return { name: String, value: i32 },
}

/// A call of a helper or kfunc: r1-r5 from `args`, r0 recorded as `ret` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub func: Func,
    pub args: Vec<Arg>,
    pub ret: Ret,
}

impl Call {
    /// The maps the arguments name, in order.
    pub fn maps(&self) -> Vec<usize> {
        fn walk(a: &Arg, out: &mut Vec<usize>) {
            match a {
                Arg::Map(m) => out.push(*m),
                Arg::Plus(a, _) | Arg::Walk { base: a, .. } => walk(a, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.args.iter().for_each(|a| walk(a, &mut out));
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Func {
    Helper(&'static Helper),
    /// Found by name in the kernel's BTF at load time.
    Kfunc(String),
    /// No call: r0 is the one argument (`let`).
    Value,
}

impl Func {
    pub fn name(&self) -> &str {
        match self {
            Func::Helper(h) => h.name,
            Func::Kfunc(k) => k,
            Func::Value => "let",
        }
    }
}

/// How a call's r0 is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A number (`0`, `-EINVAL`).
    Int,
    /// NULL or ptr.
    Ptr,
    /// A task pointer: NULL or ptr.
    Task,
    /// A pointer into map `.0`'s value: NULL, or the bytes it points to.
    Value(usize),
    /// 0 or nonzero (it may be an address).
    U64,
    /// Nothing.
    Void,
}

impl Ret {
    /// Whether r0 holds a pointer a later `read`/`write` may use.
    pub fn is_pointer(self) -> bool {
        matches!(self, Ret::Ptr | Ret::Task | Ret::Value(_))
    }
}

/// A stack buffer argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buf {
    pub fill: BufFill,
    /// Bytes; None: the value size of the call's first map argument.
    pub size: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufFill {
    /// `size` bytes holding the pattern.
    Init(Pattern),
    /// One byte fewer than `size`, zeroed, ending at the frame's last byte.
    Small,
    /// `size` bytes the program never writes.
    Uninit,
    /// `size` bytes of which the first half is zeroed.
    Half,
}

/// Where an argument register's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A constant the verifier sees.
    Const(u64),
    /// A u64 user space writes before the run (unknown to the verifier).
    Runtime(u64),
    /// A map of the instance.
    Map(usize),
    Task(TaskArg),
    /// A child's pid (u32), written by user space before the run.
    Pid(String),
    Buf(Buf),
    /// An earlier op's result (its r0, or the value a `read` got), plus `offset` bytes.
    Result {
        op: usize,
        offset: i32,
    },
    /// The program's context pointer.
    Ctx,
    /// The hook's argument N: `((u64 *)ctx)[N]`.
    HookArg(u32),
    /// An owner of local storage other than a task, found by its id before the call with its
    /// kind's lookup kfunc (`bpf_cgroup_from_id`) and released after it.
    Owner(OwnerArg),
    /// Another argument plus a constant.
    Plus(Box<Arg>, i32),
    /// Pointers followed from another argument, a `struct start` pointer: the value of its
    /// member `fields[0]`, then of that one's `fields[1]`, …; offsets from the kernel's BTF.
    Walk {
        base: Box<Arg>,
        start: String,
        fields: Vec<String>,
    },
}

/// A condition on an earlier op's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    NonNull(usize),
    Null(usize),
    Eq(usize, u64),
    Ne(usize, u64),
    Lt(usize, u64),
}

impl Cond {
    /// The op whose result the condition tests.
    pub fn op(self) -> usize {
        match self {
            Cond::NonNull(o) | Cond::Null(o) | Cond::Eq(o, _) | Cond::Ne(o, _) | Cond::Lt(o, _) => {
                o
            }
        }
    }
}

/// An op in the shape of one of the original spellings (the C programs of `progs/` run these).
pub enum Legacy<'a> {
    Get {
        map: usize,
        task: &'a TaskArg,
        value: ValueArg,
        flags: FlagsArg,
    },
    Delete {
        map: usize,
        task: &'a TaskArg,
    },
    CurrentTask,
}

impl OpSpec {
    /// `get`: `bpf_task_storage_get(map, task, value, flags)`, its result the map's value.
    pub fn get(
        name: String,
        map: usize,
        task: TaskArg,
        value: ValueArg,
        flags: FlagsArg,
    ) -> OpSpec {
        OpSpec::get_of(
            name,
            map,
            &tables::TASK_STORAGE_GET,
            Arg::Task(task),
            value,
            flags,
        )
    }

    /// `get` on a storage map of any owner kind: `helper(map, owner, value, flags)`.
    pub fn get_of(
        name: String,
        map: usize,
        helper: &'static Helper,
        owner: Arg,
        value: ValueArg,
        flags: FlagsArg,
    ) -> OpSpec {
        let buf = |fill| Arg::Buf(Buf { fill, size: None });
        let value = match value {
            ValueArg::Null => Arg::Const(0),
            ValueArg::Init(p) => buf(BufFill::Init(p)),
            ValueArg::Small => buf(BufFill::Small),
            ValueArg::Uninit => buf(BufFill::Uninit),
        };
        let flags = match flags {
            FlagsArg::Const(f) => Arg::Const(f),
            FlagsArg::Runtime(f) => Arg::Runtime(f),
        };
        OpSpec::Call(Call {
            name,
            func: Func::Helper(helper),
            args: vec![Arg::Map(map), owner, value, flags],
            ret: Ret::Value(map),
        })
    }

    /// `delete`: `bpf_task_storage_delete(map, task)`, its result a number.
    pub fn delete(name: String, map: usize, task: TaskArg) -> OpSpec {
        OpSpec::delete_of(name, map, &tables::TASK_STORAGE_DELETE, Arg::Task(task))
    }

    /// `delete` on a storage map of any owner kind: `helper(map, owner)`.
    pub fn delete_of(name: String, map: usize, helper: &'static Helper, owner: Arg) -> OpSpec {
        OpSpec::Call(Call {
            name,
            func: Func::Helper(helper),
            args: vec![Arg::Map(map), owner],
            ret: Ret::Int,
        })
    }

    /// `current_task`: `bpf_get_current_task_btf()`, its result a task.
    pub fn current_task(name: String) -> OpSpec {
        OpSpec::Call(Call {
            name,
            func: Func::Helper(&tables::GET_CURRENT_TASK_BTF),
            args: vec![],
            ret: Ret::Task,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            OpSpec::Call(c) => &c.name,
            OpSpec::Read { name, .. }
            | OpSpec::Write { name, .. }
            | OpSpec::Add { name, .. }
            | OpSpec::If { name, .. }
            | OpSpec::Return { name, .. } => name,
        }
    }

    pub fn call(&self) -> Option<&Call> {
        match self {
            OpSpec::Call(c) => Some(c),
            _ => None,
        }
    }

    /// The maps the op's arguments name.
    pub fn maps(&self) -> Vec<usize> {
        self.call().map_or_else(Vec::new, Call::maps)
    }

    /// The op as a `get`, `delete` or `current_task` would have written it, if it is one.
    pub fn legacy(&self) -> Option<Legacy<'_>> {
        let c = self.call()?;
        match (c.func.name(), c.args.as_slice(), c.ret) {
            ("bpf_task_storage_get", [Arg::Map(m), Arg::Task(t), v, f], Ret::Value(r))
                if r == *m =>
            {
                let value = match v {
                    Arg::Const(0) => ValueArg::Null,
                    Arg::Buf(Buf { fill, size: None }) => match fill {
                        BufFill::Init(p) => ValueArg::Init(p.clone()),
                        BufFill::Small => ValueArg::Small,
                        BufFill::Uninit => ValueArg::Uninit,
                        BufFill::Half => return None,
                    },
                    _ => return None,
                };
                let flags = match f {
                    Arg::Const(n) => FlagsArg::Const(*n),
                    Arg::Runtime(n) => FlagsArg::Runtime(*n),
                    _ => return None,
                };
                Some(Legacy::Get {
                    map: *m,
                    task: t,
                    value,
                    flags,
                })
            }
            ("bpf_task_storage_delete", [Arg::Map(m), Arg::Task(t)], Ret::Int) => {
                Some(Legacy::Delete { map: *m, task: t })
            }
            ("bpf_get_current_task_btf", [], Ret::Task) => Some(Legacy::CurrentTask),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepSpec {
    Prog {
        name: String,
        ops: Vec<OpSpec>,
        /// The step's own type, or the case's.
        prog_type: &'static ProgType,
        /// Overrides the type's attach target.
        attach_to: Option<String>,
        /// Stays attached until the instance ends, counting.
        stay: bool,
        /// Trigger, threads, extra observations (see `trigger.rs`).
        run: ProgRun,
        /// The program given as text (`asm`) instead of `ops`, which are then empty.
        asm: Option<Box<AsmStep>>,
        /// A C program of `progs/` instead of `ops`, which are then empty.
        object: Option<Box<ObjectStep>>,
    },
    Update {
        name: String,
        map: usize,
        key: KeyArg,
        value: UserValue,
        flags: u64,
    },
    Lookup {
        name: String,
        map: usize,
        key: KeyArg,
        flags: u64,
    },
    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM`.
    LookupAndDelete {
        name: String,
        map: usize,
        key: KeyArg,
        flags: u64,
    },
    Delete {
        name: String,
        map: usize,
        key: KeyArg,
    },
    NextKey {
        name: String,
        map: usize,
        key: Option<KeyArg>,
    },
    Spawn {
        name: String,
        child: String,
    },
    Exit {
        name: String,
        child: String,
    },
    Reap {
        name: String,
        child: String,
    },
    /// Creates an owner (a cgroup) under this name.
    New {
        name: String,
        owner: String,
        kind: &'static OwnerKind,
    },
    /// Removes a created owner (rmdir of a cgroup).
    Free {
        name: String,
        owner: String,
    },
    /// Moves a spawned child into a created cgroup.
    Enter {
        name: String,
        child: String,
        cgroup: String,
    },
}

/// An owner argument of a program: of what kind, and which one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerArg {
    pub kind: &'static OwnerKind,
    pub who: OwnerRef,
}

/// Which owner of a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerRef {
    /// One a `new` step created.
    Named(String),
    /// The runner's own (for a cgroup: the one the runner's process is in).
    Runner,
}

/// A `prog` step's program given as text: the parsed instructions, and the name of the result
/// that holds its return value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmStep {
    pub program: crate::compile::text::TextProgram,
    pub retval: String,
}

/// A `prog` step that runs a C program of `progs/`: which programs of it, the globals set
/// before load, the globals read after the run, and the result holding a test run's retval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStep {
    pub object: String,
    /// Function names; each is also the name of its load result.
    pub programs: Vec<String>,
    pub globals: Vec<(String, GlobalValue)>,
    /// Globals written after the run, before detaching.
    pub reset: Vec<(String, GlobalValue)>,
    /// How often the programs are made to run (the trigger, or the test run).
    pub runs: u32,
    pub observe: Vec<Observe>,
    pub retval: String,
}

/// What an `object` step reads back after the run (the result has the name written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observe {
    Global(String),
    /// `PROG.recursion_misses`.
    RecursionMisses(String),
}

impl Observe {
    pub fn name(&self) -> String {
        match self {
            Observe::Global(g) => g.clone(),
            Observe::RecursionMisses(p) => format!("{p}.recursion_misses"),
        }
    }
}

/// What a global of a C program is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalValue {
    Number(u64),
    /// The runner's thread id (`task->pid` of the thread that triggers the programs).
    Tid,
}

/// One expectation for one instance: result `result` must match `pattern`, on the kernels
/// `kernel` admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub result: String,
    pub pattern: String,
    pub because: Option<String>,
    /// Index of the `expect` entry: its rules stand or fall together when a step is unsupported.
    pub group: usize,
    /// The entry's `when.kernel`: the rule applies only on a kernel of a series it admits.
    pub kernel: Option<KernelReq>,
}

/// One combination of a case's matrix, fully typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `case/dim=label/…`, stable across runs and kernels.
    pub id: String,
    pub case: String,
    /// Matrix dimension → label of this instance's value.
    pub bindings: Vec<(String, String)>,
    pub prog_type: &'static ProgType,
    /// A program from `progs/` that runs the `prog` steps instead of the compiled ones.
    pub object: Option<String>,
    pub maps: Vec<MapSpec>,
    pub steps: Vec<StepSpec>,
    pub rules: Vec<Rule>,
}

/// Every result name a step produces.
pub fn step_names(s: &StepSpec) -> Vec<String> {
    match s {
        StepSpec::Prog {
            name,
            ops,
            run,
            asm,
            object,
            ..
        } => std::iter::once(name.clone())
            .chain(asm.iter().map(|a| a.retval.clone()))
            .chain(object.iter().flat_map(|o| {
                let programs = o.programs.iter().cloned();
                programs
                    .chain(std::iter::once(o.retval.clone()))
                    .chain(o.observe.iter().map(Observe::name))
            }))
            .chain(ops.iter().map(|o| o.name().to_string()))
            .chain(
                run.recursion_misses
                    .then(|| format!("{name}.recursion_misses")),
            )
            .chain(run.retval.then(|| format!("{name}.retval")))
            .collect(),
        StepSpec::Update { name, .. }
        | StepSpec::Lookup { name, .. }
        | StepSpec::LookupAndDelete { name, .. }
        | StepSpec::Delete { name, .. }
        | StepSpec::NextKey { name, .. }
        | StepSpec::Spawn { name, .. }
        | StepSpec::Exit { name, .. }
        | StepSpec::Reap { name, .. }
        | StepSpec::New { name, .. }
        | StepSpec::Free { name, .. }
        | StepSpec::Enter { name, .. } => vec![name.clone()],
    }
}
