use std::path::Path;

use super::value::{FlagsArg, KeyArg, Pattern, TaskArg, ValueArg};
use super::*;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(src: &str) -> CaseError {
    parse(Path::new("t.json"), src).expect_err("the case must be refused")
}

const MAPS: &str = r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#;

#[test]
fn matrix_expands_in_order_with_readable_ids() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS},
            "matrix": {{ "flags": [0, "1<<63"], "task": ["current", null] }},
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "$task", "flags": "$flags" }} }} ] }} ] }}"#
    ));
    let ids: Vec<&str> = c.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "t/flags=0x0/task=current",
            "t/flags=0x0/task=null",
            "t/flags=1<<63/task=current",
            "t/flags=1<<63/task=null",
        ]
    );
    let StepSpec::Prog { name, ops, .. } = &c.instances[2].steps[0] else {
        panic!("a prog step")
    };
    assert_eq!(name, "load");
    assert_eq!(
        ops[0],
        OpSpec::get(
            "get".into(),
            0,
            TaskArg::Current,
            ValueArg::Null,
            FlagsArg::Const(1 << 63)
        )
    );
    assert_eq!(
        c.instances[0].maps[0].flags, 1,
        "task storage defaults to BPF_F_NO_PREALLOC"
    );
    assert_eq!(c.instances[0].maps[0].max_entries, 0);
}

#[test]
fn exclude_rules_drop_matching_combinations() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS},
            "matrix": {{ "flags": [0, 1, 2], "task": ["current", null] }},
            "exclude": [ {{ "flags": [1, "0x2"], "task": null }} ],
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "$task", "flags": "$flags" }} }} ] }} ] }}"#
    ));
    assert_eq!(c.instances.len(), 4);
    assert!(c
        .instances
        .iter()
        .all(|i| i.id != "t/flags=0x1/task=null" && i.id != "t/flags=0x2/task=null"));
}

#[test]
fn results_are_named_by_kind_map_and_number() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS},
            "steps": [
              {{ "spawn": "c" }},
              {{ "prog": [ {{ "get": {{ "map": "st", "task": "c", "flags": 1 }} }},
                           {{ "get": {{ "map": "st", "task": "current", "flags": 1, "as": "mine" }} }},
                           {{ "read": {{ "from": "mine" }} }} ] }},
              {{ "prog": [ {{ "delete": {{ "map": "st", "task": "current" }} }} ] }},
              {{ "lookup": {{ "map": "st", "task": "c" }} }},
              {{ "update": {{ "map": "st", "task": "self", "value": "fill:0xaa", "flags": "noexist" }} }}
            ] }}"#
    ));
    let names: Vec<String> = c.instances[0].steps.iter().flat_map(step_names).collect();
    assert_eq!(
        names,
        [
            "spawn:c",
            "load#1",
            "get",
            "mine",
            "read",
            "load#2",
            "delete",
            "st.lookup",
            "st.update"
        ]
    );
    let StepSpec::Update {
        key, value, flags, ..
    } = &c.instances[0].steps[4]
    else {
        panic!("an update")
    };
    assert_eq!(
        (key, value, *flags),
        (
            &KeyArg::SelfTask,
            &UserValue::Pattern(Pattern::Fill(0xaa)),
            1
        )
    );
}

#[test]
fn expectations_apply_by_label_and_any_of() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS},
            "matrix": {{ "flags": [0, 2, 3] }},
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "flags": "$flags" }} }} ] }} ],
            "expect": [ {{ "when": {{ "flags": ["0x2", 3] }}, "then": {{ "get": "NULL" }}, "because": "invalid flags" }},
                        {{ "then": {{ "load": "ok" }} }} ] }}"#
    ));
    let rules: Vec<usize> = c.instances.iter().map(|i| i.rules.len()).collect();
    assert_eq!(rules, [1, 2, 2]);
    assert_eq!(
        c.instances[1].rules[0].because.as_deref(),
        Some("invalid flags")
    );
}

#[test]
fn when_kernel_is_a_requirement_and_no_dimension() {
    let src = |when: &str, matrix: &str| {
        format!(
            r#"{{ "about": "a", {MAPS}, "matrix": {{ {matrix} }},
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "$task", "flags": 0 }} }} ] }} ],
            "expect": [ {{ "when": {when}, "then": {{ "get": "NULL" }} }} ] }}"#
        )
    };
    let c = parse_ok(&src(
        r#"{ "task": null, "kernel": ">=6.4" }"#,
        r#""task": ["current", null]"#,
    ));
    let rules: Vec<Option<String>> = c
        .instances
        .iter()
        .flat_map(|i| &i.rules)
        .map(|r| r.kernel.as_ref().map(|k| k.to_string()))
        .collect();
    assert_eq!(
        rules,
        [Some(">=6.4".to_string())],
        "the dimensions still select the instances"
    );
    let e = parse_err(&src(r#"{ "kernel": ">=6.4.1" }"#, r#""task": [null]"#));
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (3, 47, "expect[0].when.kernel")
    );
    assert!(e.message.contains("has a patch level"), "{}", e.message);
    let e = parse_err(&src(r#"{ "kernel": 6 }"#, r#""task": [null]"#));
    assert!(
        e.message.starts_with("expected a kernel requirement"),
        "{}",
        e.message
    );
    let e = parse_err(&src("{}", r#""task": [null], "kernel": ["6.1"]"#));
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (1, 108, "matrix.kernel")
    );
    assert!(
        e.message.starts_with("`kernel` is reserved"),
        "{}",
        e.message
    );
}

#[test]
fn semantic_errors_carry_path_and_position() {
    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS},\n \"steps\": [ {{ \"prog\": [ {{ \"get\": {{ \"map\": \"nope\", \"task\": \"current\", \"flags\": 0 }} }} ] }} ] }}"
    ));
    assert_eq!((e.line, e.path.as_str()), (2, "steps[0].prog[0].get.map"));
    assert!(
        e.message.contains("unknown map `nope` (known: st)"),
        "{}",
        e.message
    );

    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS},\n \"steps\": [ {{ \"prog\": [ {{ \"read\": {{ \"from\": \"g\" }} }} ] }} ] }}"
    ));
    assert_eq!(e.path, "steps[0].prog[0].read.from");
    assert!(
        e.message.contains("no earlier pointer result named `g`"),
        "{}",
        e.message
    );

    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS},\n \"steps\": [ {{ \"exit\": \"c\" }} ] }}"
    ));
    assert_eq!(e.path, "steps[0].exit");

    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS}, \"steps\": [ {{ \"lookup\": {{ \"map\": \"st\", \"task\": \"self\" }} }} ],\n \"expect\": [ {{ \"then\": {{ \"nothing\": \"ok\" }} }} ] }}"
    ));
    assert_eq!((e.line, e.path.as_str()), (2, "expect[0].then.nothing"));

    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS}, \"matrix\": {{ \"f\": [] }}, \"steps\": [ {{ \"lookup\": {{ \"map\": \"st\", \"task\": \"self\" }} }} ] }}"
    ));
    assert_eq!(e.path, "matrix.f");

    let e = parse_err("{ \"about\": \"a\", \"maps\": { \"st\": { \"type\": \"task_storage\", \"value_size\": 8, \"preset\": 1, \"flags\": \"no_such\" } }, \"steps\": [ { \"lookup\": { \"map\": \"st\", \"task\": \"self\" } } ] }");
    assert_eq!(e.path, "maps.st.flags");
}

#[test]
fn a_value_that_does_not_fit_names_the_dimension() {
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ "v": ["big"] }},
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "value": "$v", "flags": 0 }} }} ] }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog[0].get.value");
    assert!(
        e.message
            .starts_with("matrix value \"big\" of `$v` does not fit"),
        "{}",
        e.message
    );
}

#[test]
fn a_panic_free_parse_of_odd_input() {
    for src in [
        "",
        "[]",
        "null",
        "{",
        "{\"about\": \"a\", \"steps\": [{}]}",
        "{\"about\":\"a\",\"steps\":[{\"prog\":[]}]}",
    ] {
        assert!(parse(Path::new("t.json"), src).is_err(), "{src:?}");
    }
}

#[test]
fn schema_names_every_step() {
    let s = schema();
    for step in [
        "prog", "update", "lookup", "delete", "next_key", "spawn", "exit", "reap", "get", "read",
        "write",
    ] {
        assert!(s.contains(&format!("\"{step}\"")), "schema lacks {step}");
    }
}

#[test]
fn result_names_must_be_unique() {
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS},
            "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "flags": 1, "as": "load" }} }} ] }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog[0].get.as");
    assert!(e.message.contains("`load` is used twice"), "{}", e.message);
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS},
            "steps": [ {{ "lookup": {{ "map": "st", "task": "self", "as": "st" }} }} ] }}"#
    ));
    assert!(e.message.contains("`st` is used twice"), "{}", e.message);
}

#[test]
fn a_prog_step_with_settings_keeps_exact_error_paths() {
    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS},\n \"steps\": [ {{ \"prog\": {{ \"type\": \"fentry\", \"stay\": true, \"ops\": [ {{ \"get\": {{ \"map\": \"st\", \"task\": \"current\", \"flags\": 1, \"x\": 1 }} }} ] }} }} ] }}"
    ));
    assert_eq!((e.line, e.path.as_str()), (2, "steps[0].prog.ops[0].get.x"));
    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS},\n \"steps\": [ {{ \"prog\": {{ \"type\": \"syscall\", \"stay\": true, \"ops\": [ {{ \"current_task\": {{}} }} ] }} }} ] }}"
    ));
    assert_eq!(e.path, "steps[0].prog.stay");
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": {{ "type": "fentry", "attach_to": "bpf_local_storage_update", "stay": true,
            "ops": [ {{ "get": {{ "map": "st", "task": "current", "flags": 1 }} }} ] }} }} ] }}"#
    ));
    let StepSpec::Prog {
        prog_type,
        attach_to,
        stay,
        ..
    } = &c.instances[0].steps[0]
    else {
        panic!("a prog step")
    };
    assert_eq!(
        (prog_type.name, attach_to.as_deref(), *stay),
        ("fentry", Some("bpf_local_storage_update"), true)
    );
}

#[test]
fn an_exploding_matrix_is_refused_before_expansion() {
    let dims: Vec<String> = (0..20).map(|i| format!("\"d{i}\": [1, 2, 3, 4]")).collect();
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ {} }},
            "steps": [ {{ "lookup": {{ "map": "st", "task": "self" }} }} ] }}"#,
        dims.join(", ")
    ));
    assert_eq!(e.path, "matrix");
    assert!(
        e.message.contains("more than 100000 combinations"),
        "{}",
        e.message
    );
}

#[test]
fn a_timer_driven_program_cannot_stay_and_count() {
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": {{ "type": "perf_event", "stay": true,
            "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog.stay");
    assert!(e.message.contains("timer ticks"), "{}", e.message);
}

/// The settings of instance `i`'s first step.
fn prog_settings(c: &Case, i: usize) -> (&'static str, Option<&str>, bool) {
    match &c.instances[i].steps[0] {
        StepSpec::Prog {
            prog_type,
            attach_to,
            stay,
            ..
        } => (prog_type.name, attach_to.as_deref(), *stay),
        s => panic!("a prog step, not {s:?}"),
    }
}

#[test]
fn attach_to_and_stay_take_matrix_dimensions() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ "hook": ["bpf_fentry_test1", "bpf_local_storage_update"], "stay": [false, true] }},
            "steps": [ {{ "prog": {{ "type": "fentry", "attach_to": "$hook", "stay": "$stay",
            "ops": [ {{ "get": {{ "map": "st", "task": "current", "flags": 1 }} }} ] }} }} ] }}"#
    ));
    let ids: Vec<&str> = c.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "t/hook=bpf_fentry_test1/stay=false",
            "t/hook=bpf_fentry_test1/stay=true",
            "t/hook=bpf_local_storage_update/stay=false",
            "t/hook=bpf_local_storage_update/stay=true",
        ]
    );
    assert_eq!(
        prog_settings(&c, 0),
        ("fentry", Some("bpf_fentry_test1"), false)
    );
    assert_eq!(
        prog_settings(&c, 3),
        ("fentry", Some("bpf_local_storage_update"), true)
    );
    assert_eq!(
        c.instances[3].bindings,
        [
            ("hook".to_string(), "bpf_local_storage_update".to_string()),
            ("stay".to_string(), "true".to_string())
        ]
    );
}

#[test]
fn attach_to_naming_no_dimension_is_located() {
    let e = parse_err(&format!(
        "{{ \"about\": \"a\", {MAPS}, \"matrix\": {{ \"hook\": [\"bpf_fentry_test1\"] }},\n \"steps\": [ {{ \"prog\": {{ \"type\": \"fentry\", \"attach_to\": \"$hok\",\n \"ops\": [ {{ \"current_task\": {{}} }} ] }} }} ] }}"
    ));
    assert_eq!(
        (e.line, e.column, e.path.as_str(), e.message.as_str()),
        (
            2,
            56,
            "steps[0].prog.attach_to",
            "`$hok` is not a matrix dimension (known: $hook)"
        )
    );
    // Without a matrix, `$hook` is a reference too, not a function named `$hook`.
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": {{ "type": "fentry", "attach_to": "$hook",
            "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog.attach_to");
    assert_eq!(e.message, "`$hook` is not a matrix dimension");
}

#[test]
fn an_attach_target_must_be_a_name_of_an_attached_type() {
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ "hook": [7] }},
            "steps": [ {{ "prog": {{ "type": "fentry", "attach_to": "$hook", "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog.attach_to");
    assert_eq!(
        e.message,
        "matrix value 7 of `$hook` does not fit: expected a kernel function name, found a number"
    );
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": {{ "type": "fentry", "attach_to": "bpf fentry",
            "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert!(
        e.message
            .starts_with("`bpf fentry` is not a kernel function name"),
        "{}",
        e.message
    );
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ "hook": ["bpf_fentry_test1"], "prog": ["fentry", "syscall"] }},
            "steps": [ {{ "prog": {{ "type": "$prog", "attach_to": "$hook", "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        (
            "steps[0].prog.attach_to",
            "syscall programs are not attached to a kernel function"
        )
    );
    let e = parse_err(&format!(
        r#"{{ "about": "a", {MAPS}, "matrix": {{ "stay": ["yes"] }},
            "steps": [ {{ "prog": {{ "type": "fentry", "stay": "$stay", "ops": [ {{ "current_task": {{}} }} ] }} }} ] }}"#
    ));
    assert_eq!(e.path, "steps[0].prog.stay");
    assert!(
        e.message.contains("expected true or false"),
        "{}",
        e.message
    );
}

#[test]
fn the_schema_lets_attach_to_and_stay_be_references() {
    let s: serde_json::Value = serde_json::from_str(&schema()).expect("the schema is JSON");
    let props = &s["$defs"]["ProgStep"]["properties"];
    assert!(
        props["attach_to"]["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"string".into())),
        "{}",
        props["attach_to"]
    );
    assert!(
        props["attach_to"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("\"$dim\"")),
        "{}",
        props["attach_to"]
    );
    // `stay` is a boolean or a `"$var"` string, as every boolean leaf.
    assert_eq!(
        props["stay"]["anyOf"],
        s["$defs"]["ReadDef"]["properties"]["null_check"]["anyOf"]
    );
}

/// Result names are numbered in one pass: 60,000 ops (each `get` and `read` name used 30,000
/// times) parse in well under a second in a release build (they took minutes when every name
/// was counted against every other).
#[test]
fn many_ops_are_named_in_linear_time() {
    let n = 30_000;
    let ops: Vec<&str> = (0..n)
        .flat_map(|_| {
            [
                r#"{ "get": { "map": "st", "task": "current", "flags": 1 } }"#,
                r#"{ "read": { "from": "mine" } }"#,
            ]
        })
        .collect();
    let src = format!(
        r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": [
            {{ "get": {{ "map": "st", "task": "current", "flags": 1, "as": "mine" }} }}, {} ] }} ] }}"#,
        ops.join(", ")
    );
    let start = std::time::Instant::now();
    let c = parse_ok(&src);
    let took = start.elapsed();
    let names: Vec<String> = c.instances[0].steps.iter().flat_map(step_names).collect();
    assert_eq!(names.len(), 2 + 2 * n);
    assert_eq!(names[..4], ["load", "mine", "get#1", "read#1"]);
    assert_eq!(names[names.len() - 2..], ["get#30000", "read#30000"]);
    // Generous for an unoptimized build on a busy machine; quadratic naming took minutes.
    assert!(took.as_secs() < 20, "parsing took {took:?}");
}

/// serde_json's positions (bytes read on the line, 0 before the first) become columns in
/// characters that start at 1.
#[test]
fn serde_positions_become_character_columns() {
    let src = "{\n\"é😀\": x}";
    assert_eq!(super::serde_position(src, 1, 0), (1, 1));
    assert_eq!(super::serde_position(src, 1, 1), (1, 1));
    // Byte 8 of line 2 is the closing quote (é is 2 bytes, 😀 4); byte 5 is inside 😀.
    assert_eq!(super::serde_position(src, 2, 8), (2, 4));
    assert_eq!(super::serde_position(src, 2, 5), (2, 3));
    // Past the end: the end.
    assert_eq!(super::serde_position(src, 9, 9), (2, 9));
}
