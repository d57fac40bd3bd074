//! Owners made by a case (`new`, `free`, `enter`): resolution into steps and arguments, and
//! refusals located at the field that is wrong.

use std::path::Path;

use super::*;
use crate::case::value::KeyArg;
use crate::case::Ret;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

/// A case with cgroup storage map `st` and these steps (JSON text).
fn case(steps: &str) -> String {
    format!(
        r#"{{ "about": "a", "maps": {{ "st": {{ "type": "cgrp_storage", "value_size": 8, "preset": "0x1" }} }},
            "steps": [ {steps} ] }}"#
    )
}

#[test]
fn owners_resolve_as_steps_keys_and_arguments() {
    let c = parse_ok(&case(
        r#"{ "new": { "cgroup": "a" } }, { "spawn": "c" }, { "enter": { "child": "c", "cgroup": "a" } },
           { "prog": [ { "call": { "fn": "bpf_cgrp_storage_get", "args": [{ "map": "st" }, { "cgroup": "a" }, 0, 1] } },
                       { "call": { "fn": "bpf_cgrp_storage_delete", "args": [{ "map": "st" }, { "cgroup": "self" }] } } ] },
           { "lookup": { "map": "st", "key": "a" } }, { "free": "a" }"#,
    ));
    let steps = &c.instances[0].steps;
    assert!(matches!(&steps[0], StepSpec::New { name, owner, kind }
        if name == "new:a" && owner == "a" && kind.name == "cgroup"));
    assert!(matches!(&steps[2], StepSpec::Enter { name, child, cgroup }
        if name == "enter:c" && child == "c" && cgroup == "a"));
    let StepSpec::Prog { ops, .. } = &steps[3] else {
        panic!("a prog step")
    };
    let owner = |o: &OpSpec| match o {
        OpSpec::Call(c) => c.args[1].clone(),
        other => panic!("a call, not {other:?}"),
    };
    assert_eq!(
        owner(&ops[0]),
        Arg::Owner(OwnerArg {
            kind: &crate::tables::CGROUP_OWNER,
            who: OwnerRef::Named("a".into())
        })
    );
    assert_eq!(
        owner(&ops[1]),
        Arg::Owner(OwnerArg {
            kind: &crate::tables::CGROUP_OWNER,
            who: OwnerRef::Runner
        })
    );
    assert!(matches!(&steps[4], StepSpec::Lookup { key: KeyArg::Owner(a), .. } if a == "a"));
    assert!(
        matches!(&steps[5], StepSpec::Free { name, owner } if name == "free:a" && owner == "a")
    );
}

#[test]
fn owner_errors_name_the_field() {
    for (steps, path, msg) in [
        (
            r#"{ "new": { "inode": "a" } }"#,
            "steps[0].new.inode",
            "`new` makes no `inode` (known: cgroup, file, socket)",
        ),
        (
            r#"{ "new": { "cgroup": "a", "task": "b" } }"#,
            "steps[0].new",
            "`new` makes one owner",
        ),
        (
            r#"{ "new": { "cgroup": "self" } }"#,
            "steps[0].new.cgroup",
            "name `self` is already taken",
        ),
        (
            r#"{ "spawn": "a" }, { "new": { "cgroup": "a" } }"#,
            "steps[1].new.cgroup",
            "already taken",
        ),
        (r#"{ "free": "a" }"#, "steps[0].free", "no owner `a`"),
        (
            r#"{ "spawn": "c" }, { "enter": { "child": "c", "cgroup": "b" } }"#,
            "steps[1].enter.cgroup",
            "no cgroup `b`",
        ),
        (
            r#"{ "new": { "cgroup": "a" } }, { "enter": { "child": "d", "cgroup": "a" } }"#,
            "steps[1].enter.child",
            "no child `d`",
        ),
        (
            r#"{ "lookup": { "map": "st", "key": "b" } }"#,
            "steps[0].lookup.task",
            "unknown key `b`",
        ),
        (
            r#"{ "prog": [ { "call": { "fn": "bpf_cgrp_storage_get", "args": [{ "map": "st" }, { "cgroup": "b" }, 0, 0] } } ] }"#,
            "steps[0].prog[0].call.args[1].cgroup",
            "unknown cgroup `b`",
        ),
    ] {
        assert_refused(&case(steps), path, msg);
    }
}

/// A case with maps of every owner kind and these steps (JSON text).
fn all_kinds(steps: &str) -> String {
    format!(
        r#"{{ "about": "a", "maps": {{ "t": {{ "type": "task_storage", "value_size": 8 }},
              "c": {{ "type": "cgrp_storage", "value_size": 8 }},
              "i": {{ "type": "inode_storage", "value_size": 8 }},
              "s": {{ "type": "sk_storage", "value_size": 8 }} }},
            "program": {{ "type": "lsm" }},
            "steps": [ {{ "new": {{ "file": "f" }} }}, {{ "new": {{ "socket": "k" }} }}, {steps} ] }}"#
    )
}

#[test]
fn the_owner_field_picks_the_helper() {
    let c = parse_ok(&all_kinds(
        r#"{ "prog": { "attach_to": "bpf_lsm_file_open", "trigger": { "file": "f", "do": "open" }, "ops": [
             { "get": { "map": "t", "task": "current", "flags": 0 } },
             { "get": { "map": "c", "cgroup": "self", "flags": 0 } },
             { "get": { "map": "i", "inode": { "walk": { "arg": 0 }, "type": "file", "fields": ["f_inode"] }, "flags": 1 } },
             { "delete": { "map": "s", "sk": null } },
             { "let": { "value": { "arg": 0 }, "as": "x" } } ] } }"#,
    ));
    let StepSpec::Prog { ops, run, .. } = &c.instances[0].steps[2] else {
        panic!("a prog step")
    };
    let funcs: Vec<&str> = ops
        .iter()
        .map(|o| match o {
            OpSpec::Call(c) => c.func.name(),
            other => panic!("a call, not {other:?}"),
        })
        .collect();
    assert_eq!(
        funcs,
        [
            "bpf_task_storage_get",
            "bpf_cgrp_storage_get",
            "bpf_inode_storage_get",
            "bpf_sk_storage_delete",
            "let"
        ]
    );
    match &ops[4] {
        OpSpec::Call(c) => assert_eq!(
            (c.args.as_slice(), c.ret),
            (&[Arg::HookArg(0)][..], Ret::Ptr)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run.trigger,
        Some(crate::case::trigger::TriggerSpec::Owner {
            owner: "f".into(),
            action: crate::tables::Trigger::OpenFile
        })
    );
}

#[test]
fn owner_fields_and_triggers_are_checked() {
    let prog = |ops: &str, trigger: &str| {
        format!(
            r#"{{ "prog": {{ "attach_to": "bpf_lsm_file_open", "trigger": {trigger}, "ops": [ {ops} ] }} }}"#
        )
    };
    let get = r#"{ "get": { "map": "t", "task": "current", "flags": 0 } }"#;
    let open = r#"{ "file": "f", "do": "open" }"#;
    for (step, path, msg) in [
        (
            prog(
                r#"{ "get": { "map": "t", "task": "current", "cgroup": "self", "flags": 0 } }"#,
                open,
            ),
            "steps[2].prog.ops[0].get.cgroup",
            "one owner: `task` is given, `cgroup` too",
        ),
        (
            prog(r#"{ "get": { "map": "t", "flags": 0 } }"#, open),
            "steps[2].prog.ops[0].get",
            "missing the owner",
        ),
        (
            prog(get, r#"{ "file": "g", "do": "open" }"#),
            "steps[2].prog.trigger.file",
            "no file `g`",
        ),
        (
            prog(get, r#"{ "file": "k", "do": "open" }"#),
            "steps[2].prog.trigger.file",
            "no file `k`",
        ),
        (
            prog(get, r#"{ "socket": "k", "do": "open" }"#),
            "steps[2].prog.trigger.do",
            "`open` is not possible here (known: getsockopt)",
        ),
        (
            prog(get, r#"{ "file": "f" }"#),
            "steps[2].prog.trigger",
            "a trigger on a file needs `do`",
        ),
        (
            prog(get, r#"{ "file": "f", "do": "open", "x": 1 }"#),
            "steps[2].prog.trigger.x",
            "unknown field `x`",
        ),
    ] {
        assert_refused(&all_kinds(&step), path, msg);
    }
}
