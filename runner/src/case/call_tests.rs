//! The `call`, `if` and `return` ops: resolution into `OpSpec`, and refusals located at the
//! field that is wrong.

use std::path::Path;

use super::value::TaskArg;
use super::*;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(src: &str) -> CaseError {
    parse(Path::new("t.json"), src).expect_err("the case must be refused")
}

/// A case of one program made of `ops` (JSON text), with map `st` and a child `c`.
fn case(ops: &str) -> String {
    format!(
        r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value_size": 8 }} }},
            "steps": [ {{ "spawn": "c" }}, {{ "prog": [ {ops} ] }} ] }}"#
    )
}

fn ops(c: &Case) -> &[OpSpec] {
    match &c.instances[0].steps[1] {
        StepSpec::Prog { ops, .. } => ops,
        other => panic!("a prog step, not {other:?}"),
    }
}

fn err_at(ops: &str) -> (String, String) {
    let e = parse_err(&case(ops));
    (e.path, e.message)
}

#[test]
fn get_is_a_spelling_of_call() {
    let spelled = parse_ok(&case(
        r#"{ "get": { "map": "st", "task": "c", "value": "0x11", "flags": "runtime:1" } }"#,
    ));
    let called = parse_ok(&case(
        r#"{ "call": { "fn": "bpf_task_storage_get", "as": "get",
             "args": [{ "map": "st" }, { "task": "c" }, { "buf": "0x11" }, { "runtime": 1 }] } }"#,
    ));
    assert_eq!(ops(&spelled), ops(&called));
    assert!(matches!(
        ops(&spelled)[0].legacy(),
        Some(Legacy::Get { map: 0, .. })
    ));
    let delete = parse_ok(&case(r#"{ "delete": { "map": "st", "task": null } }"#));
    assert_eq!(
        ops(&delete)[0],
        OpSpec::Call(Call {
            name: "delete".into(),
            func: Func::Helper(&crate::tables::TASK_STORAGE_DELETE),
            args: vec![Arg::Map(0), Arg::Task(TaskArg::Null)],
            ret: Ret::Int,
        })
    );
}

#[test]
fn calls_resolve_every_argument_source() {
    let c = parse_ok(&case(
        r#"{ "call": { "fn": "bpf_task_from_pid", "args": [{ "pid": "c" }] } },
           { "call": { "fn": "bpf_get_current_task" } },
           { "call": { "fn": "bpf_some_kfunc", "ret": "value:st", "as": "k",
               "args": [null, "1<<63", "ctx", { "arg": 2 }, { "plus": { "result": "task_from_pid", "offset": 16 }, "by": -8 }] } },
           { "call": { "fn": "bpf_probe_read_kernel", "args": [{ "buf": "half", "size": 16 }, 16, { "result": "get_current_task" }] } }"#,
    ));
    let o = ops(&c);
    let names: Vec<&str> = o.iter().map(|o| o.name()).collect();
    // A call is named after its function, without `bpf_`.
    assert_eq!(
        names,
        [
            "task_from_pid",
            "get_current_task",
            "k",
            "probe_read_kernel"
        ]
    );
    let call = |i: usize| o[i].call().unwrap();
    assert_eq!(call(0).func, Func::Kfunc("bpf_task_from_pid".into()));
    assert_eq!(call(0).ret, Ret::Task, "from the kfunc table");
    assert_eq!(call(0).args, [Arg::Pid("c".into())]);
    assert_eq!(call(1).func.name(), "bpf_get_current_task");
    assert!(matches!(call(1).func, Func::Helper(h) if h.id == 35));
    assert_eq!(call(1).ret, Ret::U64);
    assert_eq!(call(2).ret, Ret::Value(0));
    assert_eq!(
        call(2).args,
        [
            Arg::Const(0),
            Arg::Const(1 << 63),
            Arg::Ctx,
            Arg::HookArg(2),
            Arg::Plus(Box::new(Arg::Result { op: 0, offset: 16 }), -8),
        ]
    );
    assert_eq!(
        call(3).args[0],
        Arg::Buf(Buf {
            fill: BufFill::Half,
            size: Some(16)
        })
    );
    assert_eq!(call(3).ret, Ret::Int);
    assert_eq!(
        OpSpec::Call(call(2).clone()).maps(),
        Vec::<usize>::new(),
        "`ret` names a map, no argument does"
    );
}

#[test]
fn if_is_followed_by_its_branches() {
    let c = parse_ok(&case(
        r#"{ "call": { "fn": "bpf_task_from_pid", "args": [{ "pid": "c" }], "as": "t" } },
           { "if": { "nonnull": "t", "then": [
               { "get": { "map": "st", "task": "current", "flags": 0 } },
               { "if": { "eq": ["get", 0], "then": [ { "return": 1 } ] } }
             ], "else": [ { "return": -1 } ] } },
           { "call": { "fn": "bpf_task_release", "args": [{ "result": "t" }] } }"#,
    ));
    let o = ops(&c);
    let names: Vec<&str> = o.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "t",
            "if#1",
            "get",
            "if#2",
            "return#1",
            "return#2",
            "task_release"
        ]
    );
    assert_eq!(
        o[1],
        OpSpec::If {
            name: "if#1".into(),
            cond: Cond::NonNull(0),
            then_len: 3,
            else_len: 1
        }
    );
    assert!(matches!(
        o[3],
        OpSpec::If {
            cond: Cond::Eq(2, 0),
            then_len: 1,
            else_len: 0,
            ..
        }
    ));
    assert_eq!(
        o[5],
        OpSpec::Return {
            name: "return#2".into(),
            value: -1
        }
    );
    assert_eq!(o[6].call().unwrap().ret, Ret::Void);
    assert!(matches!(&o[2].call().unwrap().args[2], Arg::Const(0)));
}

#[test]
fn call_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{ "call": { "fn": "bpf_get_current_task", "args": [{ "nope": 1 }] } }"#,
            "steps[1].prog[0].call.args[0].nope",
            "unknown argument source `nope`, expected one of `runtime`, `map`, `task`, `pid`, `buf`, `result`, `arg`, `plus`, `walk`, `cgroup`",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{}] } }"#,
            "steps[1].prog[0].call.args[0]",
            "an argument object has one of `runtime`, `map`, `task`, `pid`, `buf`, `result`, `arg`, `plus`, `walk`, `cgroup`",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "buf": 7, "sise": 8 }] } }"#,
            "steps[1].prog[0].call.args[0].sise",
            "unknown field `sise` in a `buf` argument (besides `size`)",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "buf": 7 }] } }"#,
            "steps[1].prog[0].call.args[0]",
            "a buffer needs a `size` when the call has no map argument",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [1, 2, 3, 4, 5, 6] } }"#,
            "steps[1].prog[0].call.args[5]",
            "a call has at most 5 arguments (r1-r5), found 6",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "result": "x" }] } }"#,
            "steps[1].prog[0].call.args[0].result",
            "no earlier result with a value named `x` in this program",
        ),
        (
            r#"{ "call": { "fn": "f", "ret": "pointer" } }"#,
            "steps[1].prog[0].call.ret",
            "unknown result kind `pointer`: expected \"int\", \"ptr\", \"task\", \"u64\", \"void\" or \"value:MAP\"",
        ),
        (
            r#"{ "call": { "fn": "f", "ret": "value:nope" } }"#,
            "steps[1].prog[0].call.ret",
            "unknown map `nope` (known: st)",
        ),
        (
            r#"{ "call": { "fn": "bpf_task_storage_get", "args": [0, { "task": "current" }, 0, 0] } }"#,
            "steps[1].prog[0].call",
            "bpf_task_storage_get returns a map value: it needs a map argument, or `ret`",
        ),
        (
            r#"{ "call": { "fn": "bpf-x" } }"#,
            "steps[1].prog[0].call.fn",
            "`bpf-x` is not a helper or kfunc name (letters, digits and `_`, not starting with a digit)",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "task": "d" }] } }"#,
            "steps[1].prog[0].call.args[0].task",
            "unknown task `d`: expected \"current\", null, \"scalar\" or a child spawned by an earlier step (c)",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "plus": "ctx" }] } }"#,
            "steps[1].prog[0].call.args[0]",
            "`plus` needs `by`, the number of bytes to add",
        ),
        (
            r#"{ "call": { "fn": "bpf_rcu_read_lock", "as": "l" } }, { "if": { "null": "l", "then": [] } }"#,
            "steps[1].prog[1].if.null",
            "`l` is not a result with a value",
        ),
        (
            r#"{ "call": { "fn": "f", "as": "v" } }, { "if": { "null": "v", "eq": ["v", 0] } }"#,
            "steps[1].prog[1].if.eq",
            "an `if` has one condition; `null` is already there",
        ),
        (
            r#"{ "if": { "then": [] } }"#,
            "steps[1].prog[0].if",
            "an `if` needs one condition: `nonnull`, `null`, `eq`, `ne` or `lt`",
        ),
        (
            r#"{ "call": { "fn": "f", "as": "v" } }, { "if": { "lt": ["v", 1], "then": [ { "read": { "from": "v" } } ] } }"#,
            "steps[1].prog[1].if.then[0].read.from",
            "`v` is not a pointer result",
        ),
        (
            r#"{ "return": "1<<40" }"#,
            "steps[1].prog[0].return",
            "0x10000000000 does not fit in 32 bits",
        ),
    ];
    for (ops, path, message) in cases {
        let (p, m) = err_at(ops);
        assert_eq!((p.as_str(), m.as_str()), (*path, *message), "{ops}");
    }
}

#[test]
fn names_inside_branches_are_unique() {
    let e = parse_err(&case(
        r#"{ "call": { "fn": "f", "as": "v" } },
           { "if": { "eq": ["v", 0], "then": [ { "call": { "fn": "g", "as": "v" } } ] } }"#,
    ));
    assert_eq!(e.path, "steps[1].prog[1].if.then[0].call.as");
    assert_eq!(e.message, "result name `v` is used twice");
}

#[test]
fn walks_and_adds_resolve() {
    let c = parse_ok(&case(
        r#"{ "call": { "fn": "f", "args": [{ "walk": { "task": "current" }, "fields": ["real_parent", "group_leader"] },
                                          { "walk": "ctx", "type": "pt_regs", "fields": ["di"] }] } },
           { "get": { "map": "st", "task": "current", "flags": 1 } },
           { "add": { "to": "get", "value": 2, "size": 4 } }"#,
    ));
    let o = ops(&c);
    assert_eq!(
        o[0].call().unwrap().args,
        [
            Arg::Walk {
                base: Box::new(Arg::Task(TaskArg::Current)),
                start: "task_struct".into(),
                fields: vec!["real_parent".into(), "group_leader".into()],
            },
            Arg::Walk {
                base: Box::new(Arg::Ctx),
                start: "pt_regs".into(),
                fields: vec!["di".into()],
            },
        ]
    );
    assert_eq!(
        o[2],
        OpSpec::Add {
            name: "add".into(),
            to: 1,
            value: 2,
            offset: 0,
            width: Width::B4,
            null_check: true
        }
    );
    for (ops, path, message) in [
        (
            r#"{ "call": { "fn": "f", "args": [{ "walk": "ctx" }] } }"#,
            "steps[1].prog[0].call.args[0]",
            "`walk` needs `fields`, the members to follow",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "walk": "ctx", "fields": [] }] } }"#,
            "steps[1].prog[0].call.args[0].fields",
            "a walk follows at least one member",
        ),
        (
            r#"{ "call": { "fn": "f", "args": [{ "walk": "ctx", "fields": ["a", "b-c"] }] } }"#,
            "steps[1].prog[0].call.args[0].fields[1]",
            "`b-c` is not a C identifier",
        ),
        (
            r#"{ "add": { "to": "nope", "value": 1 } }"#,
            "steps[1].prog[0].add.to",
            "no earlier pointer result named `nope` in this program",
        ),
    ] {
        let (p, m) = err_at(ops);
        assert_eq!((p.as_str(), m.as_str()), (path, message), "{ops}");
    }
}

#[test]
fn kptr_xchg_takes_the_address_of_a_field_as_a_result_plus_offset() {
    let c = parse_ok(&case(
        r#"{ "get": { "map": "st", "task": "current", "flags": 1, "as": "v" } },
           { "call": { "fn": "bpf_task_acquire", "args": [{ "task": "current" }], "as": "t" } },
           { "call": { "fn": "bpf_kptr_xchg", "args": [{ "result": "v", "offset": 8 }, { "result": "t" }], "as": "old" } }"#,
    ));
    let x = ops(&c)[2].call().unwrap();
    assert!(matches!(x.func, Func::Helper(h) if h.id == 194));
    assert_eq!(
        x.args,
        [
            Arg::Result { op: 0, offset: 8 },
            Arg::Result { op: 1, offset: 0 }
        ]
    );
    assert_eq!(x.ret, Ret::Ptr, "bpf_kptr_xchg returns the old pointer");
}

/// A case whose map `st` has a typed value: a counter, then a kptr field.
fn typed_case(ops: &str) -> String {
    format!(
        r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value": {{ "fields": [
            {{ "name": "cnt", "type": "u32" }}, {{ "name": "task", "type": "kptr task_struct" }} ] }} }},
            "plain": {{ "type": "task_storage", "value_size": 16 }} }},
            "steps": [ {{ "spawn": "c" }}, {{ "prog": [ {ops} ] }} ] }}"#
    )
}

#[test]
fn a_field_of_a_typed_value_is_an_address_at_its_offset() {
    let c = parse_ok(&typed_case(
        r#"{ "get": { "map": "st", "task": "current", "flags": 1, "as": "v" } },
           { "call": { "fn": "bpf_task_storage_get", "args": [{ "map": "st" }, { "task": "current" }, 0, 0], "ret": "ptr", "as": "w" } },
           { "call": { "fn": "bpf_kptr_xchg", "args": [{ "result": "v", "field": "task" }, 0], "as": "x" } },
           { "call": { "fn": "bpf_kptr_xchg", "args": [{ "result": "w", "field": "cnt" }, 0], "as": "y" } }"#,
    ));
    // `cnt` (u32) at 0, `task` (8-byte aligned) at 8; `w` finds its map by its map argument.
    assert_eq!(
        ops(&c)[2].call().unwrap().args[0],
        Arg::Result { op: 0, offset: 8 }
    );
    assert_eq!(
        ops(&c)[3].call().unwrap().args[0],
        Arg::Result { op: 1, offset: 0 }
    );

    let refused = |ops: &str| {
        let e = parse_err(&typed_case(ops));
        (e.path, e.message)
    };
    let get = r#"{ "get": { "map": "st", "task": "current", "flags": 1, "as": "v" } },"#;
    assert_eq!(
        refused(&format!(
            r#"{get} {{ "call": {{ "fn": "bpf_kptr_xchg", "args": [{{ "result": "v", "field": "tsk" }}, 0] }} }}"#
        )),
        (
            "steps[1].prog[1].call.args[0].field".into(),
            "map `st` has no field `tsk` (known: cnt, task)".into()
        )
    );
    assert_eq!(
        refused(&format!(
            r#"{get} {{ "call": {{ "fn": "bpf_kptr_xchg", "args": [{{ "result": "v", "field": "task", "offset": 8 }}, 0] }} }}"#
        )),
        (
            "steps[1].prog[1].call.args[0].field".into(),
            "`field` and `offset` both place the address: give one".into()
        )
    );
    assert_eq!(
        refused(
            r#"{ "get": { "map": "plain", "task": "current", "flags": 1, "as": "p" } },
               { "call": { "fn": "bpf_kptr_xchg", "args": [{ "result": "p", "field": "task" }, 0] } }"#
        ),
        (
            "steps[1].prog[1].call.args[0].field".into(),
            "map `plain` has no typed value: `field` needs one (or use `offset`)".into()
        )
    );
    assert_eq!(
        refused(
            r#"{ "current_task": { "as": "t" } },
               { "call": { "fn": "bpf_kptr_xchg", "args": [{ "result": "t", "field": "task" }, 0] } }"#
        ),
        (
            "steps[1].prog[1].call.args[0].field".into(),
            "`t` points into no map value: `field` needs a call on a map".into()
        )
    );
}
