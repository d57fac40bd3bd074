//! The `object` of a `prog` step: a C program of `progs/`, which of its programs load, the
//! globals set before load and those read after the run.

use super::instance::{GlobalValue, ObjectStep, Observe};
use super::locate::FieldPath;
use super::model::ProgStep;
use super::resolve::{check_ident, err, opt, Ctx, ResolveError};
use super::value::{parse_u32, parse_u64};

/// Resolves the C program of `ps` at `prog` (the step's `prog` object), None when it names
/// none; `with_asm`: the step also gives `asm`. Names come from `next_name` in the order
/// `name_results` made them: the programs, `retval`, the observed globals.
pub(super) fn resolve_object(
    ctx: &Ctx<'_>,
    ps: &ProgStep,
    prog: &FieldPath,
    with_asm: bool,
    next_name: &mut dyn FnMut() -> String,
) -> Result<Option<ObjectStep>, ResolveError> {
    let Some(object) = &ps.object else {
        for (field, set) in [
            ("programs", !ps.programs.is_empty()),
            ("globals", !ps.globals.is_empty()),
            ("reset", !ps.reset.is_empty()),
            ("runs", ps.runs.is_some()),
            ("observe", !ps.observe.is_empty()),
        ] {
            if set {
                return err(prog.key(field), format!("`{field}` needs an `object`"));
            }
        }
        return Ok(None);
    };
    let path = prog.key("object");
    if with_asm || !ps.ops.is_empty() {
        return err(path, "a program has one of `ops`, `asm` and `object`");
    }
    if crate::progs::object(object).is_none() {
        let built: Vec<&str> = crate::progs::OBJECTS.iter().map(|(n, _)| *n).collect();
        let built = if built.is_empty() {
            "none: clang was missing when bpfcase was built".to_string()
        } else {
            built.join(", ")
        };
        return err(
            path,
            format!("no program `{object}` in progs/ (built: {built})"),
        );
    }
    if ps.programs.is_empty() {
        return err(
            prog.key("programs"),
            "name the programs of the object to load (their function names)",
        );
    }
    let mut programs = Vec::new();
    for (i, p) in ps.programs.iter().enumerate() {
        check_ident(p, &prog.key("programs").index(i), "program name")?;
        programs.push(next_name());
    }
    let retval = next_name();
    let globals = values(ctx, &ps.globals, &prog.key("globals"))?;
    let reset = values(ctx, &ps.reset, &prog.key("reset"))?;
    let runs = opt(ctx, &ps.runs, &prog.key("runs"), 1, |v| {
        match parse_u32(v)? {
            0 => Err("at least 1 run".to_string()),
            n if n > 1000 => Err(format!("{n} runs: at most 1000")),
            n => Ok(n),
        }
    })?;
    let mut observe = Vec::new();
    for (i, g) in ps.observe.iter().enumerate() {
        let q = prog.key("observe").index(i);
        let o = match g.split_once('.') {
            Some((p, "recursion_misses")) if ps.programs.iter().any(|x| x == p) => {
                Observe::RecursionMisses(p.to_string())
            }
            Some(_) => {
                return err(
                    q,
                    format!(
                    "`{g}`: expected a global, or PROG.recursion_misses of a program in `programs`"
                ),
                )
            }
            None => {
                check_ident(g, &q, "global name")?;
                Observe::Global(g.clone())
            }
        };
        next_name();
        observe.push(o);
    }
    Ok(Some(ObjectStep {
        object: object.clone(),
        programs,
        globals,
        reset,
        runs,
        observe,
        retval,
    }))
}

/// Global name → value: a number, a `"$dim"`, or `"tid"`.
fn values(
    ctx: &Ctx<'_>,
    m: &indexmap::IndexMap<String, serde_json::Value>,
    at: &FieldPath,
) -> Result<Vec<(String, GlobalValue)>, ResolveError> {
    let mut out = Vec::new();
    for (name, v) in m {
        let q = at.key(name);
        check_ident(name, &q, "global name")?;
        let value = ctx.typed(v, &q, |v| match v.as_str() {
            Some("tid") => Ok(GlobalValue::Tid),
            _ => parse_u64(v).map(GlobalValue::Number),
        })?;
        out.push((name.clone(), value));
    }
    Ok(out)
}
