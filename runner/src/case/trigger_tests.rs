//! Triggers, threads, `observe` and comparing expectations: parsing and resolution, with the
//! field path of every refusal.

use std::path::Path;

use super::trigger::{Bound, ProgRun, ThreadsSpec, TriggerSpec};
use super::*;
use crate::tables::Trigger;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(src: &str) -> CaseError {
    parse(Path::new("t.json"), src).expect_err("the case must be refused")
}

const MAPS: &str = r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#;
const GET: &str = r#"{ "get": { "map": "st", "task": "current", "flags": 1 } }"#;

/// A case whose steps are `steps` (JSON, `GET` spliced in for `@`) and expectations `expect`.
fn case(steps: &str, expect: &str) -> String {
    format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {} ], "expect": [ {expect} ] }}"#,
        steps.replace('@', GET)
    )
}

/// The run settings of step `i` of the only instance.
fn run_of(c: &Case, i: usize) -> &ProgRun {
    match &c.instances[0].steps[i] {
        StepSpec::Prog { run, .. } => run,
        s => panic!("a prog step, not {s:?}"),
    }
}

#[test]
fn triggers_name_the_runner_a_fresh_child_or_a_spawned_one() {
    let c = parse_ok(&case(
        r#"{ "prog": { "type": "lsm.s", "attach_to": "bpf_lsm_bprm_committed_creds", "trigger": "exec", "ops": [ @ ] } },
           { "spawn": "c" },
           { "prog": { "type": "tp_btf", "trigger": { "child": "c", "do": "getpid" }, "ops": [ @ ] } },
           { "prog": { "type": "fentry", "trigger": "socket", "observe": ["recursion_misses"], "ops": [ @ ] } }"#,
        "",
    ));
    assert_eq!(
        run_of(&c, 0).trigger,
        Some(TriggerSpec::Runner(Trigger::Exec))
    );
    assert_eq!(
        run_of(&c, 2).trigger,
        Some(TriggerSpec::Child {
            child: "c".into(),
            action: Trigger::Getpid
        })
    );
    let r = run_of(&c, 3);
    assert!(r.recursion_misses && !r.for_threads);
    assert_eq!(
        r.trigger.as_ref().map(TriggerSpec::action),
        Some(Trigger::Socket)
    );
    assert_eq!(r.words(), "reports recursion_misses");
    assert_eq!(run_of(&c, 2).words(), "the trigger is child c's");
    let names = step_names(&c.instances[0].steps[3]);
    assert_eq!(
        names.last().map(String::as_str),
        Some("load#3.recursion_misses")
    );
}

#[test]
fn bad_triggers_are_refused_at_their_field() {
    let cases = [
        (
            r#"{ "prog": { "type": "syscall", "trigger": "getpid", "ops": [ @ ] } }"#,
            "steps[0].prog.trigger",
            "test run",
        ),
        (
            r#"{ "prog": { "type": "perf_event", "trigger": "getpid", "ops": [ @ ] } }"#,
            "steps[0].prog.trigger",
            "timer ticks",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "trigger": "spin", "ops": [ @ ] } }"#,
            "steps[0].prog.trigger",
            "unknown trigger `spin`",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "trigger": 3, "ops": [ @ ] } }"#,
            "steps[0].prog.trigger",
            "expected an action name",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "trigger": { "child": "x", "do": "getpid" }, "ops": [ @ ] } }"#,
            "steps[0].prog.trigger.child",
            "no child `x`",
        ),
        (
            r#"{ "spawn": "c" }, { "prog": { "type": "tp_btf", "trigger": { "child": "c", "do": "exec" }, "ops": [ @ ] } }"#,
            "steps[1].prog.trigger.do",
            "`exec` is not possible here",
        ),
        (
            r#"{ "spawn": "c" }, { "prog": { "type": "tp_btf", "trigger": { "child": "c", "did": "getpid" }, "ops": [ @ ] } }"#,
            "steps[1].prog.trigger.did",
            "unknown field `did`",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "observe": ["runs"], "ops": [ @ ] } }"#,
            "steps[0].prog.observe[0]",
            "unknown `runs`",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "stay": true, "observe": ["recursion_misses"], "ops": [ @ ] } }"#,
            "steps[0].prog.observe[0]",
            "already",
        ),
        (
            r#"{ "prog": { "type": "tracepoint", "observe": ["retval"], "ops": [ @ ] } }"#,
            "steps[0].prog.observe[0]",
            "only a program that a test run runs once has a retval (tracepoint programs are triggered)",
        ),
        (
            r#"{ "prog": { "type": "fentry", "trigger": "socket", "observe": ["retval"], "ops": [ @ ] } }"#,
            "steps[0].prog.observe[0]",
            "(fentry programs with a trigger are triggered)",
        ),
        (
            r#"{ "prog": { "type": "tp_btf", "stay": true, "observe": ["retval"], "ops": [ @ ] } }"#,
            "steps[0].prog.observe[0]",
            "attached until the instance ends",
        ),
    ];
    for (steps, path, msg) in cases {
        let e = parse_err(&case(steps, ""));
        assert_eq!(e.path, path, "{steps}: {}", e.message);
        assert!(e.message.contains(msg), "{steps}: {}", e.message);
    }
}

#[test]
fn a_test_run_retval_is_reported_when_asked() {
    let c = parse_ok(&case(
        r#"{ "prog": { "type": "fmod_ret", "observe": ["retval", "recursion_misses"], "ops": [ @ ] } },
           { "prog": { "type": "syscall", "observe": ["retval"], "ops": [ @ ] } }"#,
        "",
    ));
    let r = run_of(&c, 0);
    assert!(r.retval && r.recursion_misses);
    assert_eq!(r.words(), "reports recursion_misses; reports retval");
    let names = step_names(&c.instances[0].steps[0]);
    assert_eq!(
        names[names.len() - 2..],
        ["load#1.recursion_misses", "load#1.retval"]
    );
    assert!(run_of(&c, 1).retval && !run_of(&c, 1).recursion_misses);
}

#[test]
fn threads_count_by_iterations_or_time_and_share_the_filter() {
    let c = parse_ok(&case(
        r#"{ "prog": { "type": "fentry", "attach_to": "bpf_local_storage_update", "stay": true, "ops": [ @ ] } },
           { "prog": { "type": "lsm", "attach_to": "bpf_lsm_socket_post_create", "stay": true,
                       "threads": { "count": 8, "cpu": 0, "iterations": 20, "trigger": "socket" }, "ops": [ @ ] } },
           { "prog": { "type": "tracepoint", "stay": true, "threads": { "count": 2, "for_ms": 50 }, "ops": [ @ ] } },
           { "prog": { "type": "tp_btf", "ops": [ @ ] } }"#,
        "",
    ));
    assert_eq!(
        run_of(&c, 1).threads,
        Some(ThreadsSpec {
            count: 8,
            cpu: Some(0),
            bound: Bound::Iterations(20),
            action: Trigger::Socket
        })
    );
    // The tracepoint's own trigger is the threads' default.
    let t = run_of(&c, 2).threads.clone().expect("threads");
    assert_eq!(
        (t.bound, t.action, t.cpu),
        (Bound::Millis(50), Trigger::Getpid, None)
    );
    // Every staying program sees the threads' events; the run-once one keeps its thread.
    assert!(run_of(&c, 0).for_threads && run_of(&c, 1).for_threads);
    assert!(!run_of(&c, 3).for_threads);
    assert_eq!(
        run_of(&c, 1).words(),
        "8 threads × 20 iterations (taking turns) on CPU 0: socket(AF_UNIX, SOCK_DGRAM)"
    );
    assert_eq!(run_of(&c, 0).words(), "acts for every thread of the runner");
    assert_eq!(run_of(&c, 3).words(), "");
}

#[test]
fn bad_threads_are_refused_at_their_field() {
    let cases = [
        (
            r#""threads": { "count": 2, "iterations": 1 }"#,
            false,
            "steps[0].prog.threads",
            "stay",
        ),
        (
            r#""threads": { "count": 0, "iterations": 1 }"#,
            true,
            "steps[0].prog.threads.count",
            "between 1 and 64",
        ),
        (
            r#""threads": { "count": 2 }"#,
            true,
            "steps[0].prog.threads",
            "exactly one of",
        ),
        (
            r#""threads": { "count": 2, "iterations": 1, "for_ms": 1 }"#,
            true,
            "steps[0].prog.threads",
            "exactly one of",
        ),
        (
            r#""threads": { "count": 2, "for_ms": 100000 }"#,
            true,
            "steps[0].prog.threads.for_ms",
            "between 1 and 10000",
        ),
        (
            r#""threads": { "count": 2, "iterations": 1, "trigger": "exec" }"#,
            true,
            "steps[0].prog.threads.trigger",
            "not possible here",
        ),
        (
            r#""threads": { "count": 2, "iterations": 1, "cpus": 0 }"#,
            true,
            "steps[0].prog.threads.cpus",
            "unknown field",
        ),
        (
            r#""threads": [2, 1]"#,
            true,
            "steps[0].prog.threads",
            "an object",
        ),
        (
            r#""trigger": "exit", "threads": { "count": 2, "iterations": 1 }"#,
            true,
            "steps[0].prog.trigger",
            "what the runner's threads do",
        ),
    ];
    for (threads, stay, path, msg) in cases {
        let e = parse_err(&case(
            &format!(
                r#"{{ "prog": {{ "type": "lsm", "attach_to": "bpf_lsm_socket_post_create", "stay": {stay}, {threads}, "ops": [ @ ] }} }}"#
            ),
            "",
        ));
        assert_eq!(e.path, path, "{threads}: {}", e.message);
        assert!(e.message.contains(msg), "{threads}: {}", e.message);
    }
    // lsm's own trigger (open) is a thread's action too; a tp_btf with a fresh child's is not.
    let e = parse_err(&case(
        r#"{ "prog": { "type": "perf_event", "stay": true, "threads": { "count": 1, "iterations": 1 }, "ops": [ @ ] } }"#,
        "",
    ));
    assert_eq!(e.path, "steps[0].prog.stay", "{}", e.message);
}

#[test]
fn comparisons_in_then_resolve_both_sides() {
    let steps = r#"{ "prog": { "type": "tp_btf", "stay": true, "ops": [ @ ] } }, { "lookup": { "map": "st", "task": "self" } }"#;
    let c = parse_ok(&case(
        steps,
        r#"{ "then": { "get.calls": "==load.runs", "st.lookup": "!=0", "get": "calls=*" } }"#,
    ));
    let rules = &c.instances[0].rules;
    assert_eq!(rules.len(), 3);
    assert_eq!(
        (rules[0].result.as_str(), rules[0].pattern.as_str()),
        ("get.calls", "==load.runs")
    );
    for (then, path, msg) in [
        (
            r#""get.calls": "==nothing.runs""#,
            r#"expect[0].then."get.calls""#,
            "`nothing.runs` names no result",
        ),
        (
            r#""nothing.calls": ">0""#,
            r#"expect[0].then."nothing.calls""#,
            "`nothing.calls` names no result",
        ),
        (
            r#""get": "==""#,
            "expect[0].then.get",
            "compares with nothing",
        ),
        (
            r#""get.calls": "calls=*""#,
            r#"expect[0].then."get.calls""#,
            "names no result",
        ),
    ] {
        let e = parse_err(&case(steps, &format!(r#"{{ "then": {{ {then} }} }}"#)));
        assert_eq!(e.path, path, "{then}: {}", e.message);
        assert!(e.message.contains(msg), "{then}: {}", e.message);
    }
}

#[test]
fn for_a_hook_argument_is_checked() {
    let case = |prog: &str| {
        format!(
            r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value_size": 8 }} }},
                "steps": [ {{ "prog": {prog} }} ] }}"#
        )
    };
    let ok = parse(
        Path::new("t.json"),
        &case(r#"{ "type": "fentry", "attach_to": "exit_creds", "stay": true, "trigger": "exit", "for": { "arg": 0, "wait_ms": 500 },
                  "ops": [ { "call": { "fn": "bpf_task_storage_get", "args": [{ "map": "st" }, { "arg": 0 }, 0, 1] } } ] }"#),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let StepSpec::Prog { run, .. } = &ok.instances[0].steps[0] else {
        panic!("a prog step")
    };
    assert_eq!(
        run.for_arg,
        Some(crate::case::trigger::ForArg {
            arg: 0,
            wait_ms: 500
        })
    );
    for (prog, path, msg) in [
        (
            r#"{ "type": "kprobe", "for": { "arg": 0 }, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for",
            "kprobe programs have no typed hook arguments",
        ),
        (
            r#"{ "type": "fentry", "for": { "argh": 0 }, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for.argh",
            "unknown field `argh`",
        ),
        (
            r#"{ "type": "fentry", "for": {}, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for",
            "`for` needs `arg`",
        ),
        (
            r#"{ "type": "fentry", "for": { "arg": 12 }, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for.arg",
            "at most 12",
        ),
        (
            r#"{ "type": "fentry", "for": { "arg": 0, "wait_ms": 20000 }, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for.wait_ms",
            "at most 10000 ms",
        ),
        (
            r#"{ "type": "fentry", "for": 0, "ops": [ { "current_task": {} } ] }"#,
            "steps[0].prog.for",
            "expected an object",
        ),
    ] {
        assert_refused(&case(prog), path, msg);
    }
}
