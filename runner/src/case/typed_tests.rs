//! Typed map values and the map options around them: layouts in the instance's `MapSpec`,
//! user-space values per field, and resolution errors located at their field path.

use std::path::Path;

use super::layout::{FieldKind, IntType};
use super::*;

fn parse_ok(src: &str) -> Case {
    parse(Path::new("t.json"), src).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(src: &str) -> CaseError {
    parse(Path::new("t.json"), src).expect_err("the case must be refused")
}

const TYPED: &str = r#""maps": { "st": { "type": "task_storage", "value": { "fields": [
    { "name": "lock", "type": "bpf_spin_lock" }, { "name": "cnt", "type": "u32" },
    { "name": "buf", "type": "u8[16]" }, { "name": "task", "type": "kptr task_struct" } ] } } }"#;

fn case(maps: &str, steps: &str) -> String {
    format!(r#"{{ "about": "a", {maps}, "steps": [ {steps} ] }}"#)
}

#[test]
fn layout_reaches_the_map_spec() {
    let c = parse_ok(&case(
        TYPED,
        r#"{ "lookup": { "map": "st", "task": "self", "flags": "lock" } }"#,
    ));
    let m = &c.instances[0].maps[0];
    assert_eq!(m.value_size, ValueSize::Fixed(32));
    let cnt = m.field("cnt").unwrap();
    assert_eq!(
        (cnt.offset, cnt.size, &cnt.kind),
        (
            4,
            4,
            &FieldKind::Int(IntType {
                bytes: 4,
                signed: false
            })
        )
    );
    assert_eq!(m.field("task").map(|f| (f.offset, f.size)), Some((24, 8)));
    assert!(m.field("nope").is_none());
    let StepSpec::Lookup { flags, .. } = &c.instances[0].steps[0] else {
        panic!("a lookup")
    };
    assert_eq!(*flags, 4);
}

#[test]
fn user_values_per_field() {
    let c = parse_ok(&format!(
        r#"{{ "about": "a", {TYPED}, "matrix": {{ "n": [7] }}, "steps": [
        {{ "update": {{ "map": "st", "task": "self", "value": {{ "cnt": "$n", "buf": "fill:0x11" }}, "flags": "lock|exist" }} }},
        {{ "lookup_and_delete": {{ "map": "st", "task": "self" }} }} ] }}"#
    ));
    let steps = &c.instances[0].steps;
    let StepSpec::Update { value, flags, .. } = &steps[0] else {
        panic!("an update")
    };
    let mut want = vec![0u8; 32];
    want[4] = 7;
    want[8..24].fill(0x11);
    assert_eq!((value, *flags), (&UserValue::Typed(want), 6));
    assert!(
        matches!(&steps[1], StepSpec::LookupAndDelete { name, flags: 0, .. } if name == "st.lookup_and_delete")
    );
}

#[test]
fn errors_name_the_field_path() {
    let at = |maps: &str, steps: &str| {
        let e = parse_err(&case(maps, steps));
        (e.path, e.message)
    };
    let lookup = r#"{ "lookup": { "map": "st", "task": "self" } }"#;
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value_size": 8, "value": { "fields": [ { "name": "c", "type": "u32" } ] } } }"#,
        lookup,
    );
    assert_eq!(p, "maps.st.value_size");
    assert!(
        m.contains("value_size 8 conflicts with the fields of `value`, which take 4 bytes"),
        "{m}"
    );
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value": { "fields": [ { "name": "c", "type": "u32" }, { "name": "d", "type": "u24" } ] } } }"#,
        lookup,
    );
    assert_eq!(p, "maps.st.value.fields[1].type");
    assert!(m.contains("unknown field type `u24`"), "{m}");
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value": { "fields": [ { "name": "c", "type": "u32" }, { "name": "c", "type": "u8" } ] } } }"#,
        lookup,
    );
    assert_eq!(
        (p.as_str(), m.as_str()),
        ("maps.st.value.fields[1].name", "field `c` is named twice")
    );
    let (p, m) = at(r#""maps": { "st": { "type": "task_storage" } }"#, lookup);
    assert_eq!(p, "maps.st");
    assert!(m.contains("needs `value_size`, or a typed `value`"), "{m}");
    let (p, _) = at(
        r#""maps": { "st": { "type": "task_storage", "value": { "fields": [] } } }"#,
        lookup,
    );
    assert_eq!(p, "maps.st.value.fields");
    let (p, m) = at(
        TYPED,
        r#"{ "update": { "map": "st", "task": "self", "value": { "cnt": 1, "bogus": 2 } } }"#,
    );
    assert_eq!(p, "steps[0].update.value.bogus");
    assert!(
        m.contains("no field `bogus` in the value (fields: lock, cnt, buf, task)"),
        "{m}"
    );
    let (p, m) = at(
        TYPED,
        r#"{ "update": { "map": "st", "task": "self", "value": { "cnt": "1<<32" } } }"#,
    );
    assert_eq!(p, "steps[0].update.value.cnt");
    assert!(m.contains("does not fit in 4 bytes"), "{m}");
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#,
        r#"{ "update": { "map": "st", "task": "self", "value": { "cnt": 1 } } }"#,
    );
    assert_eq!(p, "steps[0].update.value");
    assert!(m.contains("has no typed value"), "{m}");
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value_size": 8, "btf": false, "btf_value_size": 4 } }"#,
        lookup,
    );
    assert_eq!(p, "maps.st.btf_value_size");
    assert!(m.contains("`btf` must be true"), "{m}");
    let (p, m) = at(
        r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#,
        r#"{ "lookup": { "map": "st", "task": "self", "flags": "locked" } }"#,
    );
    assert_eq!(p, "steps[0].lookup.flags");
    assert!(m.contains("or \"none\", \"lock\""), "{m}");
}

#[test]
fn btf_value_size_and_clone_flag() {
    let c = parse_ok(&case(
        r#""maps": { "st": { "type": "task_storage", "value_size": 8, "btf_value_size": 16, "flags": "no_prealloc|clone" } }"#,
        r#"{ "lookup": { "map": "st", "task": "self" } }"#,
    ));
    let m = &c.instances[0].maps[0];
    assert_eq!(
        (m.btf_value_size, m.flags, m.layout.is_none()),
        (Some(16), 1 | 1 << 9, true)
    );
}
