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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::case::{parse, GlobalValue, Observe, StepSpec};

    fn case(prog: &str) -> String {
        format!(
            "{{ \"about\": \"a\", \"matrix\": {{ \"pid\": [7, \"tid\"] }},\n  \"steps\": [ {{ \"prog\": {prog} }} ] }}"
        )
    }

    fn refused(prog: &str) -> (String, String) {
        let e = parse(Path::new("t.json"), &case(prog)).expect_err("refused");
        (e.path, e.message)
    }

    #[test]
    fn an_object_step_resolves_its_programs_globals_and_observations() {
        let src = case(
            r#"{ "type": "tp_btf", "object": "selftests/task_local_storage",
                 "programs": ["on_enter", "on_exit"], "runs": 2,
                 "globals": { "target_pid": "$pid" }, "reset": { "target_pid": 0 },
                 "observe": ["enter_cnt", "on_exit.recursion_misses"] }"#,
        );
        let c = parse(Path::new("t.json"), &src).unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<GlobalValue> = c
            .instances
            .iter()
            .map(|i| match &i.steps[0] {
                StepSpec::Prog {
                    object: Some(o), ..
                } => o.globals[0].1,
                s => panic!("an object step, not {s:?}"),
            })
            .collect();
        assert_eq!(values, [GlobalValue::Number(7), GlobalValue::Tid]);
        let StepSpec::Prog {
            object: Some(o), ..
        } = &c.instances[0].steps[0]
        else {
            panic!("an object step");
        };
        assert_eq!(o.programs, ["on_enter", "on_exit"]);
        assert_eq!((o.runs, o.retval.as_str()), (2, "retval"));
        assert_eq!(
            o.reset,
            [("target_pid".to_string(), GlobalValue::Number(0))]
        );
        assert_eq!(
            o.observe,
            [
                Observe::Global("enter_cnt".into()),
                Observe::RecursionMisses("on_exit".into())
            ]
        );
        let names = crate::case::step_names(&c.instances[0].steps[0]);
        assert_eq!(
            names,
            [
                "load",
                "on_enter",
                "on_exit",
                "retval",
                "enter_cnt",
                "on_exit.recursion_misses"
            ]
        );
    }

    #[test]
    fn object_mistakes_are_located() {
        let obj = r#""object": "selftests/task_local_storage""#;
        let cases = [
            (
                r#"{ "object": "nope", "programs": ["x"] }"#.to_string(),
                "steps[0].prog.object",
                "no program `nope` in progs/",
            ),
            (
                format!("{{ {obj} }}"),
                "steps[0].prog.programs",
                "name the programs of the object to load",
            ),
            (
                format!("{{ {obj}, \"programs\": [\"on_enter\"], \"observe\": [\"x.y\"] }}"),
                "steps[0].prog.observe[0]",
                "`x.y`: expected a global, or PROG.recursion_misses",
            ),
            (
                format!("{{ {obj}, \"programs\": [\"on_enter\"], \"runs\": 0 }}"),
                "steps[0].prog.runs",
                "at least 1 run",
            ),
            (
                format!(
                    "{{ {obj}, \"programs\": [\"on_enter\"], \"globals\": {{ \"g\": \"many\" }} }}"
                ),
                "steps[0].prog.globals.g",
                "",
            ),
            (
                r#"{ "globals": { "g": 1 }, "ops": [ { "current_task": {} } ] }"#.to_string(),
                "steps[0].prog.globals",
                "`globals` needs an `object`",
            ),
            (
                format!("{{ {obj}, \"programs\": [\"on_enter\"], \"asm\": [\"exit\"] }}"),
                "steps[0].prog.object",
                "a program has one of `ops`, `asm` and `object`",
            ),
        ];
        for (prog, path, message) in cases {
            let (p, m) = refused(&prog);
            assert_eq!(p, path, "{prog}: {m}");
            assert!(m.starts_with(message), "{prog}: {m}");
        }
    }
}
