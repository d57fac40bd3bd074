//! Map definitions resolved into `MapSpec`s (type, sizes, flags, BTF, preset, a typed value's
//! layout), and the values and flags of user-space map calls, which depend on the map.

use serde_json::Value;

use super::instance::{MapSpec, UserValue, ValueSize};
use super::layout::{FieldKind, Layout};
use super::locate::FieldPath;
use super::model::MapDef;
use super::resolve::{bool_leaf, check_ident, err, known, opt, Ctx, ResolveError};
use super::value::{kind_of, parse_u32, parse_u64, parse_update_flags, Pattern};
use crate::tables;

pub(super) fn resolve_map(
    ctx: &Ctx<'_>,
    name: &str,
    d: &MapDef,
    p: &FieldPath,
) -> Result<MapSpec, ResolveError> {
    check_ident(name, p, "map name").map_err(|(p, _, m)| (p, true, m))?;
    let map_type = ctx.typed(&d.kind, &p.key("type"), |v| {
        let n = v
            .as_str()
            .ok_or_else(|| format!("expected a map type name, found {}", kind_of(v)))?;
        tables::map_type(n).ok_or_else(|| {
            format!(
                "unknown map type `{n}`{}",
                known(tables::MAP_TYPES.iter().map(|m| m.name.to_string()))
            )
        })
    })?;
    let layout = match &d.value {
        None => None,
        Some(v) => Some(layout(ctx, v, &p.key("value"))?),
    };
    let value_size = match &d.value_size {
        None => match &layout {
            Some(l) => ValueSize::Fixed(l.size),
            None => return err(p.clone(), "a map needs `value_size`, or a typed `value`"),
        },
        Some(vs) => ctx.typed(vs, &p.key("value_size"), |v| match v.as_str() {
            Some("max") => Ok(ValueSize::Max),
            Some("max+1") => Ok(ValueSize::MaxPlusOne),
            _ => parse_u32(v)
                .map(ValueSize::Fixed)
                .map_err(|e| format!("{e}; or \"max\", \"max+1\"")),
        })?,
    };
    if let Some(l) = &layout {
        if value_size != ValueSize::Fixed(l.size) {
            let given = match value_size {
                ValueSize::Fixed(n) => n.to_string(),
                ValueSize::Max => "\"max\"".into(),
                ValueSize::MaxPlusOne => "\"max+1\"".into(),
            };
            return err(
                p.key("value_size"),
                format!(
                    "value_size {given} conflicts with the fields of `value`, which take {} bytes ({}); leave value_size out",
                    l.size,
                    l.describe()
                ),
            );
        }
    }
    let flags = opt(
        ctx,
        &d.flags,
        &p.key("flags"),
        if map_type.local_storage { 1 } else { 0 },
        parse_map_flags,
    )?;
    let preset = match &d.preset {
        None => None,
        Some(v) => ctx.typed(v, &p.key("preset"), |v| match v {
            Value::Null => Ok(None),
            Value::String(s) if s == "absent" => Ok(None),
            v => Pattern::parse(v).map(Some),
        })?,
    };
    // Owners of which the runner has one of its own: its task, its cgroup.
    use crate::tables::Made;
    let own = |k: &crate::tables::OwnerKind| matches!(k.made, Made::Child | Made::Cgroup);
    if preset.is_some() && !crate::tables::owner_of_map(map_type.name).is_some_and(own) {
        return err(
            p.key("preset"),
            "preset applies to storage maps whose owner the runner has (task_storage: its task; cgrp_storage: its cgroup) only",
        );
    }
    if preset.is_some() && !matches!(value_size, ValueSize::Fixed(_)) {
        return err(p.key("preset"), "preset needs a fixed value_size");
    }
    let btf = opt(ctx, &d.btf, &p.key("btf"), true, bool_leaf)?;
    if layout.is_some() && !btf {
        return err(
            p.key("btf"),
            "a typed `value` is described by the map's BTF: `btf` must be true",
        );
    }
    let btf_value_size = match &d.btf_value_size {
        None => None,
        Some(v) => {
            let bp = p.key("btf_value_size");
            let n = ctx.typed(v, &bp, parse_u32)?;
            if !btf {
                return err(
                    bp,
                    "btf_value_size describes the map's BTF: `btf` must be true",
                );
            }
            if layout.is_some() {
                return err(
                    bp,
                    "btf_value_size and a typed `value` both say what the BTF holds: give one",
                );
            }
            if !matches!(value_size, ValueSize::Fixed(_)) {
                return err(bp, "btf_value_size needs a fixed value_size");
            }
            if n == 0 {
                return err(bp, "btf_value_size must be at least 1 (an array of 0 bytes has no size to compare)");
            }
            Some(n)
        }
    };
    Ok(MapSpec {
        name: name.to_string(),
        map_type,
        key_size: opt(ctx, &d.key_size, &p.key("key_size"), 4, parse_u32)?,
        value_size,
        max_entries: opt(
            ctx,
            &d.max_entries,
            &p.key("max_entries"),
            if map_type.local_storage { 0 } else { 1 },
            parse_u32,
        )?,
        flags,
        btf,
        preset,
        layout,
        btf_value_size,
    })
}

fn layout(
    ctx: &Ctx<'_>,
    v: &super::model::ValueDef,
    p: &FieldPath,
) -> Result<Layout, ResolveError> {
    let fp = p.key("fields");
    let mut fields = Vec::with_capacity(v.fields.len());
    for (i, f) in v.fields.iter().enumerate() {
        let kind = ctx.typed(&f.kind, &fp.index(i).key("type"), |t| {
            let s = t
                .as_str()
                .ok_or_else(|| format!("expected a field type, found {}", kind_of(t)))?;
            FieldKind::parse(s)
        })?;
        fields.push((f.name.clone(), kind));
    }
    Layout::new(fields).map_err(|(i, name, msg)| match i {
        None => (fp.clone(), false, msg),
        Some(i) => (
            fp.index(i).key(if name { "name" } else { "type" }),
            false,
            msg,
        ),
    })
}

pub(super) fn parse_map_flags(v: &Value) -> Result<u32, String> {
    let bit = |n: &str| {
        tables::MAP_FLAGS
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, b)| *b)
    };
    let unknown = |n: &str| {
        format!(
            "unknown map flag `{n}`{}",
            known(tables::MAP_FLAGS.iter().map(|(n, _)| n.to_string()))
        )
    };
    match v {
        Value::Array(items) => {
            let mut acc = 0;
            for it in items {
                let n = it.as_str().ok_or("a flag list holds names")?;
                acc |= bit(n).ok_or_else(|| unknown(n))?;
            }
            Ok(acc)
        }
        Value::String(s) if !s.starts_with('$') => {
            let mut acc = 0;
            for part in s.split('|').map(str::trim) {
                acc |= match bit(part) {
                    Some(b) => b,
                    None => {
                        parse_u32(&Value::String(part.to_string())).map_err(|_| unknown(part))?
                    }
                };
            }
            Ok(acc)
        }
        other => parse_u32(other),
    }
}

/// The value of a user-space update: a pattern, or for a map with a typed value, an object of
/// fields (each field value may be a `"$dim"`). Errors name the field's path.
pub(super) fn user_value(
    ctx: &Ctx<'_>,
    map: &MapSpec,
    v: &Value,
    p: &FieldPath,
) -> Result<UserValue, ResolveError> {
    let (val, _) = ctx.leaf(v, p)?;
    match (&*val, &map.layout) {
        (Value::Object(fields), Some(l)) => l
            .encode(fields, |k, fv| {
                ctx.leaf(fv, &p.key(k))
                    .map(|(v, _)| v.into_owned())
                    .map_err(|(_, _, m)| (k.to_string(), m))
            })
            .map(UserValue::Typed)
            .map_err(|(k, key, m)| (p.key(&k), key, m)),
        (Value::Object(_), None) => err(
            p.clone(),
            format!(
                "map `{}` has no typed value: give a pattern (a number or \"fill:0xNN\"), or fields in the map's `value`",
                map.name
            ),
        ),
        _ => ctx.typed(v, p, Pattern::parse).map(UserValue::Pattern),
    }
}

/// Flags of a user-space lookup: `"none"` (0), `"lock"` (BPF_F_LOCK) or a number.
pub(super) fn parse_lookup_flags(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) if s == "none" => Ok(0),
        Value::String(s) if s == "lock" => Ok(libbpf_sys::BPF_F_LOCK as u64),
        other => parse_u64(other).map_err(|e| format!("{e}; or \"none\", \"lock\"")),
    }
}

/// Flags of a user-space update: a name (`"any"`, `"noexist"`, `"exist"`, `"lock"`), a number,
/// or names and numbers joined by `|` (`"lock|exist"`).
pub(super) fn parse_update_flag_names(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) if s.contains('|') => s.split('|').try_fold(0u64, |acc, part| {
            parse_update_flags(&Value::String(part.trim().to_string())).map(|b| acc | b)
        }),
        other => parse_update_flags(other),
    }
}
