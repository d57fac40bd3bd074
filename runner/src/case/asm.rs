//! The `asm` of a `prog` step: its text parsed into instructions (`compile::text`), a problem
//! located at the string that holds it and, inside, at the line and column of the program text.

use serde_json::Value;

use super::instance::AsmStep;
use super::locate::FieldPath;
use super::resolve::{err, ResolveError};
use super::value::kind_of;
use crate::compile::text;

/// Resolves `asm` at `prog` (the step's `prog` object); `with_ops`: the step also has `ops`.
pub(super) fn resolve_asm(
    v: &Value,
    prog: &FieldPath,
    with_ops: bool,
    retval: String,
    map_index: &dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
) -> Result<AsmStep, ResolveError> {
    let path = prog.key("asm");
    if with_ops {
        return err(path, "a program has `ops` or `asm`, not both");
    }
    // (text, where it is) per item.
    let items: Vec<(&str, FieldPath)> = match v {
        Value::String(s) => vec![(s.as_str(), path.clone())],
        Value::Array(a) => {
            let mut items = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                match x {
                    Value::String(s) => items.push((s.as_str(), path.index(i))),
                    other => {
                        return err(
                            path.index(i),
                            format!("expected a line of program text, found {}", kind_of(other)),
                        )
                    }
                }
            }
            items
        }
        other => {
            return err(
                path,
                format!(
                    "expected program text (a string, or a list of lines), found {}",
                    kind_of(other)
                ),
            )
        }
    };
    let lines: Vec<&str> = items.iter().map(|(s, _)| *s).collect();
    let maps = |name: &str| map_index(name, path.clone()).map_err(|e| e.2);
    match text::parse(&lines, &maps) {
        Ok(program) => Ok(AsmStep { program, retval }),
        Err(e) => {
            // The item holding the line: line numbers run on over the items' own lines.
            let mut first = 1;
            for (s, p) in &items {
                let n = s.split('\n').count();
                if e.line < first + n {
                    let (line, column) = (e.line + 1 - first, e.column);
                    let msg = if matches!(v, Value::Array(_)) && n == 1 {
                        format!("column {column}: {}", e.message)
                    } else {
                        format!(
                            "line {line}, column {column} of the program text: {}",
                            e.message
                        )
                    };
                    return err(p.clone(), msg);
                }
                first += n;
            }
            err(path, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::case::{parse, CaseError, StepSpec};

    fn case(prog: &str) -> String {
        format!(
            "{{ \"about\": \"a\",\n  \"maps\": {{ \"st\": {{ \"type\": \"task_storage\", \"value_size\": 8 }} }},\n  \"steps\": [ {{ \"prog\": {prog} }} ] }}"
        )
    }

    fn refused(prog: &str) -> CaseError {
        parse(Path::new("t.json"), &case(prog)).expect_err("refused")
    }

    #[test]
    fn a_program_as_text_resolves_with_its_maps_and_results() {
        let src = case(r#"{ "type": "raw_tp", "asm": "r1 = map[st]\nr0 = 0\nexit" }"#);
        let c = parse(Path::new("t.json"), &src).unwrap_or_else(|e| panic!("{e}"));
        let StepSpec::Prog {
            asm,
            ops,
            prog_type,
            name,
            ..
        } = &c.instances[0].steps[0]
        else {
            panic!("a prog step");
        };
        let asm = asm.as_ref().expect("asm");
        assert_eq!(
            (name.as_str(), asm.retval.as_str(), prog_type.name),
            ("load", "retval", "raw_tp")
        );
        assert!(ops.is_empty());
        assert_eq!(asm.program.program.insns.len(), 4);
        assert_eq!(
            asm.program.program.relocs,
            [crate::compile::asm::Reloc::MapFd { insn: 0, map: 0 }]
        );
    }

    #[test]
    fn errors_name_the_case_position_and_the_place_in_the_text() {
        // A list: the item's own position, the column inside it.
        let e = refused(r#"{ "asm": ["r0 = 0", "r0 += w1", "exit"] }"#);
        assert_eq!(
            (e.line, e.column, e.path.as_str()),
            (3, 44, "steps[0].prog.asm[1]")
        );
        assert_eq!(
            e.message,
            "column 7: r and w registers do not mix in one instruction"
        );
        // One string of lines: the string's position, the line and column inside it.
        let e = refused(r#"{ "asm": "r0 = 0\nr1 = map[nope]\nexit" }"#);
        assert_eq!(
            (e.line, e.column, e.path.as_str()),
            (3, 33, "steps[0].prog.asm")
        );
        assert_eq!(
            e.message,
            "line 2, column 10 of the program text: unknown map `nope` (known: st)"
        );
        let e = refused(r#"{ "asm": ["exit"], "ops": [ { "current_task": {} } ] }"#);
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (
                "steps[0].prog.asm",
                "a program has `ops` or `asm`, not both"
            )
        );
        let e = refused(r#"{ "asm": ["exit", 3] }"#);
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (
                "steps[0].prog.asm[1]",
                "expected a line of program text, found a number"
            )
        );
        let e = refused(r#"{ "type": "tp_btf", "stay": true, "asm": ["r0 = 0", "exit"] }"#);
        assert_eq!(e.path, "steps[0].prog.stay");
    }
}
