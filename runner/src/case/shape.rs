//! How each type of `model.rs` is read from its JSON value: structs from objects only (not
//! from a list of their field values, which serde's derive also takes), steps and operations
//! from objects with exactly one key, named in the error when unknown or one too many.
//!
//! Owns: the shape of a value; the fields inside are the derives'. Must not: check values.

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::model::*;

/// Messages of errors that concern an object's key rather than its value: the position
/// reported is the key's.
pub const KEY_ERRORS: &[&str] = &[
    "unknown field",
    "unknown step",
    "unknown operation",
    "one key only",
];

/// `Deserialize` for structs whose derive is `Self::deserialize` (`remote = "Self"`): from a
/// JSON object only.
macro_rules! from_object {
    ($($t:ident: $what:literal),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Object;
                impl<'de> Visitor<'de> for Object {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(Object)
            }
        }
    )*};
}

from_object! {
    CaseFile: "a case: an object with `about` and `steps`",
    MapDef: "a map definition: an object with `type` and `value_size`",
    ValueDef: "a typed value: an object with `fields`",
    FieldDef: "a field: an object with `name` and `type`",
    LookupDef: "an object with `map` and `task`",
    ProgramDef: "an object with `type`",
    GetDef: "an object with `map`, `task` and `flags`",
    DeleteDef: "an object with `map` and `task`",
    NameDef: "an object (`{}`, or with `as`)",
    ReadDef: "an object with `from`",
    WriteDef: "an object with `to` and `value`",
    CallDef: "an object with `fn`",
    IfDef: "an object with a condition and `then`",
    UpdateDef: "an object with `map`, `task` and `value`",
    KeyDef: "an object with `map` and `task`",
    NextKeyDef: "an object with `map`",
    EnterDef: "an object with `child` and `cgroup`",
    LetDef: "an object with `value`",
    Expect: "an expectation: an object with `then`",
    ThreadsDef: "threads: an object with `count` and `iterations` or `for_ms`",
}

const STEPS: &[&str] = &[
    "prog",
    "update",
    "lookup",
    "lookup_and_delete",
    "delete",
    "next_key",
    "spawn",
    "exit",
    "reap",
    "new",
    "free",
    "enter",
];
const OPS: &[&str] = &[
    "get",
    "delete",
    "current_task",
    "read",
    "write",
    "call",
    "if",
    "return",
    "add",
    "let",
];

/// Reads the key of a one-key object: one of `names`, or, with `after`, any key at all, which
/// is an error naming it (so that the error's path and position are the key's).
struct Tag {
    names: &'static [&'static str],
    what: &'static str,
    after: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for Tag {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Tag {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the kind of {}", self.what)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<&'static str, E> {
        if let Some(first) = self.after {
            return Err(E::custom(format!(
                "one key only: {} is an object with one key, and `{first}` is already there; `{s}` belongs in {} of its own",
                self.what, self.what
            )));
        }
        self.names
            .iter()
            .find(|n| **n == s)
            .copied()
            .ok_or_else(|| {
                // "a step" → "unknown step".
                let kind = self.what.split_once(' ').map_or(self.what, |(_, k)| k);
                E::custom(format!(
                    "unknown {kind} `{s}`, expected one of `{}`",
                    self.names.join("`, `")
                ))
            })
    }
}

/// Reads a one-key object: its key with `tag`, its value with `value`, then makes sure no
/// other key follows.
fn one_key<'de, A: MapAccess<'de>, T>(
    mut map: A,
    names: &'static [&'static str],
    what: &'static str,
    value: impl FnOnce(&'static str, &mut A) -> Result<T, A::Error>,
) -> Result<T, A::Error> {
    let tag = Tag {
        names,
        what,
        after: None,
    };
    let Some(kind) = map.next_key_seed(tag)? else {
        return Err(de::Error::custom(format!(
            "an empty object: {what} has one key, one of `{}`",
            names.join("`, `")
        )));
    };
    let out = value(kind, &mut map)?;
    let after = Tag {
        names,
        what,
        after: Some(kind),
    };
    match map.next_key_seed(after)? {
        // `Tag` with `after` fails on any key: never reached.
        Some(_) => Err(de::Error::custom("one key only")),
        None => Ok(out),
    }
}

struct OneKey<T>(PhantomData<T>);

impl<'de> Visitor<'de> for OneKey<Step> {
    type Value = Step;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a step: an object with one key, one of `{}`",
            STEPS.join("`, `")
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Step, A::Error> {
        one_key(map, STEPS, "a step", |kind, m| {
            Ok(match kind {
                "prog" => Step::Prog(m.next_value()?),
                "update" => Step::Update(m.next_value()?),
                "lookup" => Step::Lookup(m.next_value()?),
                "lookup_and_delete" => Step::LookupAndDelete(m.next_value()?),
                "delete" => Step::Delete(m.next_value()?),
                "next_key" => Step::NextKey(m.next_value()?),
                "spawn" => Step::Spawn(m.next_value()?),
                "exit" => Step::Exit(m.next_value()?),
                "reap" => Step::Reap(m.next_value()?),
                "new" => Step::New(m.next_value()?),
                "free" => Step::Free(m.next_value()?),
                _ => Step::Enter(m.next_value()?),
            })
        })
    }
}

impl<'de> Visitor<'de> for OneKey<Op> {
    type Value = Op;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an operation: an object with one key, one of `{}`",
            OPS.join("`, `")
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Op, A::Error> {
        one_key(map, OPS, "an operation", |kind, m| {
            Ok(match kind {
                "get" => Op::Get(m.next_value()?),
                "delete" => Op::Delete(m.next_value()?),
                "current_task" => Op::CurrentTask(m.next_value()?),
                "read" => Op::Read(m.next_value()?),
                "write" => Op::Write(m.next_value()?),
                "call" => Op::Call(m.next_value()?),
                "if" => Op::If(m.next_value()?),
                "return" => Op::Return(m.next_value()?),
                "add" => Op::Add(m.next_value()?),
                _ => Op::Let(m.next_value()?),
            })
        })
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OneKey::<Self>(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OneKey::<Self>(PhantomData))
    }
}

/// A field that may be given as null: present (even as null) is `Some`, absent is `None`
/// (with `#[serde(default)]`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// An object of any keys, in the order written (`maps`, `matrix`, `when`, `then`).
pub fn object<'de, D, V>(d: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Object<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Object<V> {
        type Value = IndexMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IndexMap::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object(PhantomData))
}

/// A list of objects (`exclude`).
pub fn objects<'de, D, V>(d: D) -> Result<Vec<IndexMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Item<V>(IndexMap<String, V>);
    impl<'de, V: Deserialize<'de>> Deserialize<'de> for Item<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            object(d).map(Item)
        }
    }
    let items: Vec<Item<V>> = Deserialize::deserialize(d)?;
    Ok(items.into_iter().map(|i| i.0).collect())
}

/// serde's words for JSON's: a sequence is a list, a map an object.
pub fn plain(message: String) -> String {
    let mut m = message;
    for (serde, json) in [
        ("invalid type: sequence,", "invalid type: a list,"),
        ("invalid type: map,", "invalid type: an object,"),
    ] {
        if let Some(rest) = m.strip_prefix(serde) {
            m = format!("{json}{rest}");
        }
    }
    match m.strip_suffix(", expected a sequence") {
        Some(head) => format!("{head}, expected a list"),
        None => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{parse, CaseError};

    /// The one-key readers know the kinds the schema (the enums) names, in order.
    #[test]
    fn kinds_are_the_schemas() {
        let s: serde_json::Value = serde_json::from_str(&crate::case::schema()).unwrap();
        for (def, names) in [("Step", STEPS), ("Op", OPS)] {
            let kinds: Vec<&str> = s["$defs"][def]["oneOf"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["required"][0].as_str())
                .collect();
            assert_eq!(kinds, names, "{def}");
        }
    }

    fn err(src: &str) -> CaseError {
        parse(std::path::Path::new("t.json"), src).expect_err("refused")
    }

    /// 1-based column of the last `needle` in a one-line `src`.
    fn col(src: &str, needle: &str) -> usize {
        src.rfind(needle)
            .map_or(0, |i| src[..i].chars().count() + 1)
    }

    const MAPS: &str = r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#;

    #[test]
    fn a_struct_written_as_a_list_is_refused() {
        let src = r#"{ "about": "a", "maps": { "st": ["task_storage", 8, 4, 0, 1, true, null] },
                "steps": [ { "lookup": { "map": "st", "task": "self" } } ] }"#;
        let e = err(src);
        assert_eq!(
            (e.line, e.column, e.path.as_str()),
            (1, col(src, "[\"task_storage"), "maps.st")
        );
        assert_eq!(
            e.message,
            "invalid type: a list, expected a map definition: an object with `type` and `value_size`"
        );
        let e = err(&format!(
            r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": [ {{ "current_task": [] }} ] }} ] }}"#
        ));
        assert_eq!(e.path, "steps[0].prog[0].current_task");
        let e = err(r#"["a", [{"lookup": ["st", "self"]}]]"#);
        assert_eq!((e.path.as_str(), e.column), (".", 1));
        let e = err(&format!(
            r#"{{ "about": "a", {MAPS}, "steps": [], "exclude": [[]] }}"#
        ));
        assert_eq!(e.path, "exclude[0]");
        assert_eq!(e.message, "invalid type: a list, expected an object");
    }

    #[test]
    fn a_step_has_exactly_one_known_key() {
        let src = format!(
            r#"{{ "about": "a", {MAPS}, "steps": [ {{ "lookup": {{ "map": "st", "task": "self" }}, "reap": "c" }} ] }}"#
        );
        let e = err(&src);
        assert_eq!(
            (e.path.as_str(), e.column),
            ("steps[0].reap", col(&src, "\"reap"))
        );
        assert!(
            e.message.starts_with(
                "one key only: a step is an object with one key, and `lookup` is already there"
            ),
            "{}",
            e.message
        );
        let src = format!(r#"{{ "about": "a", {MAPS}, "steps": [ {{ "lookpu": {{}} }} ] }}"#);
        let e = err(&src);
        assert_eq!(
            (e.path.as_str(), e.column),
            ("steps[0].lookpu", col(&src, "\"lookpu"))
        );
        assert!(
            e.message
                .starts_with("unknown step `lookpu`, expected one of `prog`"),
            "{}",
            e.message
        );
        let e = err(&format!(
            r#"{{ "about": "a", {MAPS}, "steps": [ {{ "prog": [ {{}} ] }} ] }}"#
        ));
        assert_eq!(e.path, "steps[0].prog[0]");
        assert_eq!(
            e.message,
            "an empty object: an operation has one key, one of `get`, `delete`, `current_task`, `read`, `write`, `call`, `if`, `return`, `add`, `let`"
        );
    }
}
