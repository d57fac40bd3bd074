//! Owners made by a case (`new`, `free`, `enter`): resolution into steps and arguments, and
//! refusals located at the field that is wrong.

use std::path::Path;

use super::*;
use crate::case::value::KeyArg;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

fn err_of(steps: &str) -> (String, String) {
    let e = parse(Path::new("t.json"), &case(steps)).expect_err("the case must be refused");
    (e.path, e.message)
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
        let (p, m) = err_of(steps);
        assert_eq!(p, path, "{steps}: {m}");
        assert!(m.contains(msg), "{steps}: {m}");
    }
}
