//! The typed result of resolution: an instance of a case, with its maps, steps, operations and
//! expectations, ready for the compiler and the executor. Plain data.

use crate::case::kernel::KernelReq;
use crate::case::value::parse_u64;
use crate::case::value::{FlagsArg, KeyArg, Pattern, TaskArg, ValueArg};
use crate::tables::{MapType, ProgType};

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

/// An operation inside a program; `map` indexes `Instance::maps`, `from`/`to` index the ops of
/// the same program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpSpec {
    Get {
        name: String,
        map: usize,
        task: TaskArg,
        value: ValueArg,
        flags: FlagsArg,
    },
    /// `bpf_get_current_task_btf()` alone.
    CurrentTask { name: String },
    Delete {
        name: String,
        map: usize,
        task: TaskArg,
    },
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
}

impl OpSpec {
    pub fn name(&self) -> &str {
        match self {
            OpSpec::Get { name, .. }
            | OpSpec::CurrentTask { name }
            | OpSpec::Delete { name, .. }
            | OpSpec::Read { name, .. }
            | OpSpec::Write { name, .. } => name,
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
        /// The program given as text (`asm`) instead of `ops`, which are then empty.
        asm: Option<Box<AsmStep>>,
        /// A C program of `progs/` instead of `ops`, which are then empty.
        object: Option<Box<ObjectStep>>,
    },
    Update {
        name: String,
        map: usize,
        key: KeyArg,
        value: Pattern,
        flags: u64,
    },
    Lookup {
        name: String,
        map: usize,
        key: KeyArg,
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
            .collect(),
        StepSpec::Update { name, .. }
        | StepSpec::Lookup { name, .. }
        | StepSpec::Delete { name, .. }
        | StepSpec::NextKey { name, .. }
        | StepSpec::Spawn { name, .. }
        | StepSpec::Exit { name, .. }
        | StepSpec::Reap { name, .. } => vec![name.clone()],
    }
}
