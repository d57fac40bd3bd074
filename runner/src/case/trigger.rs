//! How an attached `prog` step is made to run: its `trigger` (who does what), its `threads`,
//! and what else it observes (`observe`), each checked against the step's program type.

use serde_json::Value;

use super::instance::StepSpec;
use super::locate::FieldPath;
use super::model::{ProgStep, ThreadsDef};
use super::resolve::{err, known, Ctx, ResolveError};
use super::value::{kind_of, parse_u32, parse_u64};
use crate::tables::{self, Attach, ProgType, RunMode, Trigger};

/// How a `prog` step runs beyond its program type's defaults. Default: as the type runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgRun {
    /// Replaces the type's trigger (or test run).
    pub trigger: Option<TriggerSpec>,
    /// Threads that trigger a program that stays attached.
    pub threads: Option<ThreadsSpec>,
    /// Report `<step>.recursion_misses` for a program that runs once.
    pub recursion_misses: bool,
    /// Report `<step>.retval`, the test run's return value, for a program run by a test run.
    pub retval: bool,
    /// The program acts for every thread of the runner, not only the triggering one: it has
    /// threads, or it stays attached in an instance where a step has threads.
    pub for_threads: bool,
    /// `for`: the program acts when the hook's argument N is the triggering task; the runner
    /// waits up to `wait_ms` for a staying program's first run.
    pub for_arg: Option<ForArg>,
}

/// A program that acts for the task a hook's argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForArg {
    pub arg: u32,
    pub wait_ms: u64,
}

/// Marks the programs that act for every thread of the runner: those with threads and, when
/// there are any, every program that stays attached (it sees the threads' events too).
pub(super) fn share_threads(steps: &mut [StepSpec]) {
    let any = steps
        .iter()
        .any(|s| matches!(s, StepSpec::Prog { run, .. } if run.threads.is_some()));
    if !any {
        return;
    }
    for s in steps {
        if let StepSpec::Prog {
            stay: true, run, ..
        } = s
        {
            run.for_threads = true;
        }
    }
}

impl ProgRun {
    /// In words, for `show` (after the program type's way to run, with the trigger): "4 threads
    /// × 25 iterations (taking turns) on CPU 0: getpid()"; empty when there is nothing more.
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        if let Some(TriggerSpec::Child { child, .. }) = &self.trigger {
            parts.push(format!("the trigger is child {child}'s"));
        }
        if let Some(t) = &self.threads {
            let bound = match t.bound {
                Bound::Iterations(k) => format!("{k} iterations (taking turns)"),
                Bound::Millis(ms) => format!("{ms} ms (overlapping)"),
            };
            let cpu = t.cpu.map_or(String::new(), |c| format!(" on CPU {c}"));
            parts.push(format!("{} threads × {bound}{cpu}: {}", t.count, t.action));
        }
        if self.for_threads && self.threads.is_none() {
            parts.push("acts for every thread of the runner".into());
        }
        if self.recursion_misses {
            parts.push("reports recursion_misses".into());
        }
        if self.retval {
            parts.push("reports retval".into());
        }
        parts.join("; ")
    }
}

/// Who triggers an attached program, and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerSpec {
    /// The runner's thread (or, for exec and exit, a fresh child of it).
    Runner(Trigger),
    /// A child a `spawn` step started.
    Child { child: String, action: Trigger },
    /// The runner's thread, on an owner a `new` step made: opens or unlinks its file, asks
    /// its socket an option.
    Owner { owner: String, action: Trigger },
}

impl TriggerSpec {
    pub fn action(&self) -> Trigger {
        match self {
            TriggerSpec::Runner(t)
            | TriggerSpec::Child { action: t, .. }
            | TriggerSpec::Owner { action: t, .. } => *t,
        }
    }
}

/// Threads of the runner that trigger a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadsSpec {
    pub count: u32,
    /// Every thread pinned to this CPU.
    pub cpu: Option<u32>,
    pub bound: Bound,
    pub action: Trigger,
}

/// How long each thread triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Iterations(u64),
    Millis(u64),
}

const MAX_THREADS: u64 = 64;
const MAX_ITERATIONS: u64 = 100_000;
const MAX_MS: u64 = 10_000;

/// Actions a thread (of the runner or a spawned child) does itself, again and again.
fn in_thread(t: Trigger) -> bool {
    matches!(
        t,
        Trigger::Getpid | Trigger::OpenFile | Trigger::Socket | Trigger::Unlink
    )
}

fn names(filter: impl Fn(Trigger) -> bool) -> String {
    known(
        tables::TRIGGERS
            .iter()
            .filter(|(_, t)| filter(*t))
            .map(|(n, _)| n.to_string()),
    )
}

fn action(v: &Value, allowed: impl Fn(Trigger) -> bool) -> Result<Trigger, String> {
    let n = v
        .as_str()
        .ok_or_else(|| format!("expected an action name, found {}", kind_of(v)))?;
    match tables::trigger(n) {
        Some(t) if allowed(t) => Ok(t),
        Some(_) => Err(format!("`{n}` is not possible here{}", names(&allowed))),
        None => Err(format!("unknown trigger `{n}`{}", names(&allowed))),
    }
}

/// What a trigger may do to an owner of each kind.
fn owner_actions(made: tables::Made) -> &'static [Trigger] {
    match made {
        tables::Made::File => &[Trigger::OpenFile, Trigger::Unlink],
        tables::Made::Socket => &[Trigger::Getsockopt],
        tables::Made::Child | tables::Made::Cgroup => &[],
    }
}

/// A `trigger` at `path`: a name, `{"child": NAME, "do": ACTION}`, or `{KIND: NAME, "do":
/// ACTION}` on an owner (`{"file": "f", "do": "open"}`).
fn parse_trigger(
    ctx: &Ctx<'_>,
    v: &Value,
    path: &FieldPath,
    children: &[String],
    owners: &[(String, &'static tables::OwnerKind)],
) -> Result<TriggerSpec, ResolveError> {
    if let Value::Object(o) = v {
        let acted_on =
            |k: &String| tables::owner_kind(k).filter(|o| !owner_actions(o.made).is_empty());
        if let Some((kind, owner_kind)) = o.keys().find_map(|k| acted_on(k).map(|o| (k, o))) {
            for k in o.keys() {
                if k != kind && k != "do" {
                    return err(
                        path.key(k),
                        format!("unknown field `{k}`, expected `{kind}` or `do`"),
                    );
                }
            }
            let Some(a) = o.get("do") else {
                return err(path.clone(), format!("a trigger on a {kind} needs `do`"));
            };
            let owner = ctx.typed(&o[kind], &path.key(kind), |v| {
                let n = v
                    .as_str()
                    .ok_or_else(|| format!("expected a {kind}'s name, found {}", kind_of(v)))?;
                if owners.iter().any(|(x, k)| x == n && k.name == kind) {
                    Ok(n.to_string())
                } else {
                    Err(format!(
                        "no {kind} `{n}` was made by a `new` step before this one"
                    ))
                }
            })?;
            let allowed = owner_actions(owner_kind.made);
            let action = ctx.typed(a, &path.key("do"), |v| action(v, |t| allowed.contains(&t)))?;
            return Ok(TriggerSpec::Owner { owner, action });
        }
        for k in o.keys() {
            if k != "child" && k != "do" {
                return err(
                    path.key(k),
                    format!("unknown field `{k}`, expected `child`, `file`, `socket` or `do`"),
                );
            }
        }
        let (Some(c), Some(a)) = (o.get("child"), o.get("do")) else {
            return err(path.clone(), "a child's trigger needs `child` and `do`");
        };
        let child = ctx.typed(c, &path.key("child"), |v| {
            let c = v
                .as_str()
                .ok_or_else(|| format!("expected a child's name, found {}", kind_of(v)))?;
            if children.iter().any(|x| x == c) {
                Ok(c.to_string())
            } else {
                Err(format!("no child `{c}` was spawned before this step"))
            }
        })?;
        let action = ctx.typed(a, &path.key("do"), |v| {
            action(v, |t| in_thread(t) || t == Trigger::Exit)
        })?;
        return Ok(TriggerSpec::Child { child, action });
    }
    ctx.typed(v, path, |v| action(v, |_| true))
        .map(TriggerSpec::Runner)
}

/// Resolves the run settings of the `prog` step object at `p` (the step's `prog` key) of
/// program type `pt`.
pub(super) fn resolve_run(
    ctx: &Ctx<'_>,
    ps: &ProgStep,
    p: &FieldPath,
    pt: &'static ProgType,
    stay: bool,
    children: &[String],
    owners: &[(String, &'static tables::OwnerKind)],
) -> Result<ProgRun, ResolveError> {
    let mut run = ProgRun::default();
    if let Some(v) = &ps.trigger {
        let path = p.key("trigger");
        if !pt.attached() {
            return err(
                path,
                format!("{} programs run by a test run, not on events", pt.name),
            );
        }
        if pt.runs_in_interrupt() {
            return err(path, format!("{} programs run on timer ticks", pt.name));
        }
        run.trigger = Some(parse_trigger(ctx, v, &path, children, owners)?);
    }
    if let Some(v) = &ps.for_task {
        let path = p.key("for");
        if !matches!(
            pt.run,
            RunMode::AttachTestRun(Attach::BtfTarget)
                | RunMode::AttachTrigger(Attach::BtfTarget, _)
        ) {
            return err(
                path,
                format!("{} programs have no typed hook arguments: `for` is for fentry, fexit, fmod_ret, tp_btf and lsm programs", pt.name),
            );
        }
        let Value::Object(o) = v else {
            return err(
                path,
                format!("expected an object, `{{\"arg\": N}}`, found {}", kind_of(v)),
            );
        };
        if let Some(k) = o.keys().find(|k| *k != "arg" && *k != "wait_ms") {
            return err(
                path.key(k),
                format!("unknown field `{k}`, expected `arg` or `wait_ms`"),
            );
        }
        let Some(a) = o.get("arg") else {
            return err(path, "`for` needs `arg`, the hook argument that is a task");
        };
        let arg = ctx.typed(a, &path.key("arg"), parse_u32)?;
        if arg > 11 {
            return err(
                path.key("arg"),
                format!("hook argument {arg}: a tracing hook has at most 12"),
            );
        }
        let wait_ms = match o.get("wait_ms") {
            None => 2000,
            Some(w) => ctx.typed(w, &path.key("wait_ms"), parse_u64)?,
        };
        if wait_ms > MAX_MS {
            return err(path.key("wait_ms"), format!("at most {MAX_MS} ms"));
        }
        if ps.threads.is_some() {
            return err(
                path,
                "`for` and `threads` choose the tasks a program acts for: give one",
            );
        }
        run.for_arg = Some(ForArg { arg, wait_ms });
    }
    if let Some(t) = &ps.threads {
        let path = p.key("threads");
        if !stay {
            return err(
                path,
                "threads trigger a program that stays attached: add `\"stay\": true`",
            );
        }
        if let Some(tr) = &run.trigger {
            if !matches!(tr, TriggerSpec::Runner(a) if in_thread(*a)) {
                return err(
                    p.key("trigger"),
                    "with threads, the trigger is what the runner's threads do: getpid, open, socket or unlink",
                );
            }
        }
        run.threads = Some(resolve_threads(ctx, t, &path, pt, run.trigger.as_ref())?);
    }
    for (i, o) in ps
        .observe
        .iter()
        .enumerate()
        .filter(|_| ps.object.is_none())
    {
        let path = p.key("observe").index(i);
        match o.as_str() {
            "recursion_misses" if stay => {
                return err(
                    path,
                    "a program that stays attached reports its recursion_misses already",
                )
            }
            "recursion_misses" => run.recursion_misses = true,
            "retval" => {
                let test_run = matches!(
                    pt.run,
                    RunMode::TestRun | RunMode::TestRunPacket | RunMode::AttachTestRun(_)
                );
                if stay || run.trigger.is_some() || !test_run {
                    return err(
                        path,
                        format!(
                            "only a program that a test run runs once has a retval ({} programs{} are {})",
                            pt.name,
                            if run.trigger.is_some() { " with a trigger" } else { "" },
                            if stay { "attached until the instance ends" } else { "triggered" }
                        ),
                    );
                }
                run.retval = true;
            }
            _ => {
                return err(
                    path,
                    format!("unknown `{o}` (known: recursion_misses, retval)"),
                )
            }
        }
    }
    Ok(run)
}

fn resolve_threads(
    ctx: &Ctx<'_>,
    t: &ThreadsDef,
    p: &FieldPath,
    pt: &'static ProgType,
    step_trigger: Option<&TriggerSpec>,
) -> Result<ThreadsSpec, ResolveError> {
    let ranged = |max: u64| {
        move |v: &Value| {
            let n = parse_u64(v)?;
            if (1..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is not between 1 and {max}"))
            }
        }
    };
    let count = ctx.typed(&t.count, &p.key("count"), ranged(MAX_THREADS))? as u32;
    let cpu = match &t.cpu {
        None => None,
        Some(v) => Some(ctx.typed(v, &p.key("cpu"), |v| {
            u32::try_from(parse_u64(v)?).map_err(|_| "not a CPU number".to_string())
        })?),
    };
    let bound = match (&t.iterations, &t.for_ms) {
        (Some(v), None) => {
            Bound::Iterations(ctx.typed(v, &p.key("iterations"), ranged(MAX_ITERATIONS))?)
        }
        (None, Some(v)) => Bound::Millis(ctx.typed(v, &p.key("for_ms"), ranged(MAX_MS))?),
        _ => {
            return err(
                p.clone(),
                "threads need exactly one of `iterations` (exact counts) and `for_ms`",
            )
        }
    };
    let own = match pt.run {
        RunMode::AttachTrigger(_, t) if in_thread(t) => Some(t),
        _ => None,
    };
    let step = match step_trigger {
        Some(TriggerSpec::Runner(t)) if in_thread(*t) => Some(*t),
        _ => None,
    };
    let action = match &t.trigger {
        Some(v) => ctx.typed(v, &p.key("trigger"), |v| action(v, in_thread))?,
        None => match step.or(own) {
            Some(a) => a,
            None => {
                return err(
                    p.clone(),
                    format!("say what the threads do: `trigger`{}", names(in_thread)),
                )
            }
        },
    };
    if matches!(pt.run, RunMode::AttachTrigger(Attach::PerfSoftware, _)) {
        return err(
            p.clone(),
            format!("{} programs run on timer ticks", pt.name),
        );
    }
    Ok(ThreadsSpec {
        count,
        cpu,
        bound,
        action,
    })
}
