//! A `prog` step: its operations, its program type, attach target and whether it stays
//! attached, each leaf resolved like any other (`"$dim"` included) and located on error.

use std::collections::HashMap;

use serde_json::Value;

use super::instance::{OpSpec, StepSpec, Width};
use super::locate::FieldPath;
use super::model::{Op, ProgBody};
use super::names::ops_path;
use super::resolve::{bool_leaf, err, known, opt, parse_prog_type, Ctx, ResolveError};
use super::value::{kind_of, parse_u32, parse_u64, FlagsArg, TaskArg, ValueArg};
use crate::tables::{self, ProgType};

/// Resolves one `prog` step at `p`; `prog_type` is the case's program type, `children` those
/// spawned by earlier steps; names come from `next_name` in step order.
pub(super) fn resolve_prog(
    ctx: &Ctx<'_>,
    body: &ProgBody,
    p: &FieldPath,
    prog_type: &'static ProgType,
    children: &[String],
    next_name: &mut dyn FnMut() -> String,
    map_index: &dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
) -> Result<StepSpec, ResolveError> {
    let name = next_name();
    let asm = match body {
        ProgBody::Program(ps) => match &ps.asm {
            Some(text) => Some(Box::new(super::asm::resolve_asm(
                text,
                &p.key("prog"),
                !ps.ops.is_empty(),
                next_name(),
                map_index,
            )?)),
            None => None,
        },
        ProgBody::Ops(_) => None,
    };
    let object = match body {
        ProgBody::Program(ps) => {
            super::object::resolve_object(ctx, ps, &p.key("prog"), asm.is_some(), next_name)?
                .map(Box::new)
        }
        _ => None,
    };
    let mut out: Vec<OpSpec> = Vec::new();
    // Op names in this program → index (names are unique: `name_results` checked them).
    let mut index: HashMap<String, usize> = HashMap::new();
    let ops_path = ops_path(p, body);
    for (j, op) in body.ops().iter().enumerate() {
        let op_name = next_name();
        let op_path = ops_path.index(j);
        let spec = match op {
            Op::Get(d) => {
                let q = op_path.key("get");
                OpSpec::Get {
                    name: op_name,
                    map: map_index(&d.map, q.key("map"))?,
                    task: ctx.typed(&d.task, &q.key("task"), |v| TaskArg::parse(v, children))?,
                    value: ctx.typed(&d.value, &q.key("value"), ValueArg::parse)?,
                    flags: ctx.typed(&d.flags, &q.key("flags"), FlagsArg::parse)?,
                }
            }
            Op::CurrentTask(_) => OpSpec::CurrentTask { name: op_name },
            Op::Delete(d) => {
                let q = op_path.key("delete");
                OpSpec::Delete {
                    name: op_name,
                    map: map_index(&d.map, q.key("map"))?,
                    task: ctx.typed(&d.task, &q.key("task"), |v| TaskArg::parse(v, children))?,
                }
            }
            Op::Read(d) => {
                let q = op_path.key("read");
                OpSpec::Read {
                    name: op_name,
                    from: earlier_get(&out, &index, &d.from, q.key("from"))?,
                    offset: opt(ctx, &d.offset, &q.key("offset"), 0, parse_u32)?,
                    width: opt(ctx, &d.size, &q.key("size"), Width::B8, Width::parse)?,
                    null_check: opt(ctx, &d.null_check, &q.key("null_check"), true, bool_leaf)?,
                }
            }
            Op::Write(d) => {
                let q = op_path.key("write");
                OpSpec::Write {
                    name: op_name,
                    to: earlier_get(&out, &index, &d.to, q.key("to"))?,
                    value: ctx.typed(&d.value, &q.key("value"), parse_u64)?,
                    offset: opt(ctx, &d.offset, &q.key("offset"), 0, parse_u32)?,
                    width: opt(ctx, &d.size, &q.key("size"), Width::B8, Width::parse)?,
                    null_check: opt(ctx, &d.null_check, &q.key("null_check"), true, bool_leaf)?,
                }
            }
        };
        index.insert(spec.name().to_string(), out.len());
        out.push(spec);
    }
    if out.is_empty() && asm.is_none() && object.is_none() {
        return err(ops_path, "a program needs at least one operation");
    }
    let (prog_type, attach_to, stay) = match body {
        ProgBody::Ops(_) => (prog_type, None, false),
        ProgBody::Program(ps) => {
            let pt = match &ps.kind {
                None => prog_type,
                Some(k) => ctx.typed(k, &p.key("prog").key("type"), parse_prog_type)?,
            };
            let attach_to = match &ps.attach_to {
                None => None,
                Some(v) => Some(ctx.typed(v, &p.key("prog").key("attach_to"), parse_btf_name)?),
            };
            let stay = opt(ctx, &ps.stay, &p.key("prog").key("stay"), false, bool_leaf)?;
            if attach_to.is_some() && pt.attach_btf.is_none() {
                return err(
                    p.key("prog").key("attach_to"),
                    format!("{} programs are not attached to a kernel function", pt.name),
                );
            }
            if stay
                && matches!(
                    pt.run,
                    tables::RunMode::AttachTrigger(tables::Attach::PerfSoftware, _)
                )
            {
                return err(
                    p.key("prog").key("stay"),
                    format!(
                        "{} programs count timer ticks: their counts differ from run to run",
                        pt.name
                    ),
                );
            }
            if stay && (asm.is_some() || object.is_some()) {
                return err(
                    p.key("prog").key("stay"),
                    "a program given as `asm` or `object` cannot stay attached: it counts nothing",
                );
            }
            if stay && !pt.attached() {
                return err(
                    p.key("prog").key("stay"),
                    format!("{} programs are not attached", pt.name),
                );
            }
            (pt, attach_to, stay)
        }
    };
    Ok(StepSpec::Prog {
        name,
        ops: out,
        prog_type,
        attach_to,
        stay,
        asm,
        object,
    })
}

/// A name in the kernel's BTF (a function, or a `btf_trace_*` typedef): a C identifier.
fn parse_btf_name(v: &Value) -> Result<String, String> {
    let name = v
        .as_str()
        .ok_or_else(|| format!("expected a kernel function name, found {}", kind_of(v)))?;
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        Ok(name.to_string())
    } else {
        Err(format!(
            "`{name}` is not a kernel function name (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

fn earlier_get(
    ops: &[OpSpec],
    index: &HashMap<String, usize>,
    name: &str,
    path: FieldPath,
) -> Result<usize, ResolveError> {
    match index.get(name).copied() {
        Some(i) if matches!(ops[i], OpSpec::Get { .. }) => Ok(i),
        Some(_) => err(path, format!("`{name}` is not a get")),
        None => err(
            path,
            format!(
                "no earlier get named `{name}` in this program{}",
                known(
                    ops.iter()
                        .filter(|o| matches!(o, OpSpec::Get { .. }))
                        .map(|o| o.name().to_string())
                )
            ),
        ),
    }
}
