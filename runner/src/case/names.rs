//! Result names: every map, program, operation and user-space call gets the name that
//! observations and expectations use. Pure; errors carry the field path.

use std::collections::{BTreeSet, HashMap};

use super::locate::FieldPath;
use super::model::{CaseFile, Op, ProgBody, Step};
use super::resolve::{check_ident, err, ResolveError};

/// Display names of results, in step order: maps by their name, programs `load`, operations by
/// their kind (or `as`), user-space calls `<map>.<call>`, process actions `<action>:<child>`.
/// A default name used more than once is numbered `#1`, `#2`, … in order.
pub(super) fn name_results(cf: &CaseFile) -> Result<Vec<String>, ResolveError> {
    let steps = FieldPath::root().key("steps");
    let mut bases: Vec<(String, bool, FieldPath)> = Vec::new();
    for (i, s) in cf.steps.iter().enumerate() {
        let p = steps.index(i);
        let (base, explicit) = match s {
            Step::Prog(body) => {
                bases.push(("load".into(), false, p.key("prog")));
                if let ProgBody::Program(ps) = body {
                    if ps.asm.is_some() {
                        bases.push(("retval".into(), false, p.key("prog").key("asm")));
                    }
                    let q = p.key("prog");
                    for (i, prog) in ps.programs.iter().enumerate() {
                        bases.push((prog.clone(), true, q.key("programs").index(i)));
                    }
                    if ps.object.is_some() {
                        bases.push(("retval".into(), false, q.key("object")));
                    }
                    // An object's observed globals are results of their own; a compiled
                    // program's `recursion_misses` is named after its step (`trigger.rs`).
                    let observed = ps.observe.iter().filter(|_| ps.object.is_some());
                    for (i, g) in observed.enumerate() {
                        // `PROG.recursion_misses` is no identifier: checked in `object`.
                        let explicit = !g.contains('.');
                        bases.push((g.clone(), explicit, q.key("observe").index(i)));
                    }
                }
                let ops_path = ops_path(&p, body);
                op_names(body.ops(), &ops_path, &mut bases);
                continue;
            }
            Step::Update(d) => user_name(&d.map, "update", &d.name),
            Step::Lookup(d) => user_name(&d.map, "lookup", &d.name),
            Step::LookupAndDelete(d) => user_name(&d.map, "lookup_and_delete", &d.name),
            Step::Delete(d) => user_name(&d.map, "delete", &d.name),
            Step::NextKey(d) => user_name(&d.map, "next_key", &d.name),
            Step::Spawn(c) => (format!("spawn:{c}"), false),
            Step::Exit(c) => (format!("exit:{c}"), false),
            Step::Reap(c) => (format!("reap:{c}"), false),
            Step::New(def) => (
                format!("new:{}", def.values().next().map_or("", |v| v.as_str())),
                false,
            ),
            Step::Free(o) => (format!("free:{o}"), false),
            Step::Enter(d) => (format!("enter:{}", d.child), false),
        };
        bases.push((base, explicit, p));
    }
    // Linear in the number of results: how often each default name occurs, then a running
    // count per name.
    let mut totals: HashMap<&str, usize> = HashMap::new();
    for (base, explicit, _) in &bases {
        if !explicit {
            *totals.entry(base.as_str()).or_default() += 1;
        }
    }
    let mut nth: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::with_capacity(bases.len());
    for (base, explicit, path) in &bases {
        if *explicit {
            check_ident(base, path, "result name")?;
            names.push(base.clone());
        } else if totals.get(base.as_str()) == Some(&1) {
            names.push(base.clone());
        } else {
            let n = nth.entry(base.as_str()).or_default();
            *n += 1;
            names.push(format!("{base}#{n}"));
        }
    }
    // Every result must be addressable by its name: `as` may not repeat a name, a generated
    // name or a map's name.
    let mut seen: BTreeSet<&str> = cf.maps.keys().map(String::as_str).collect();
    for (name, (_, _, path)) in names.iter().zip(&bases) {
        if !seen.insert(name) {
            return err(path.clone(), format!("result name `{name}` is used twice"));
        }
    }
    Ok(names)
}

/// The names of `ops` at `path` and of the ops inside them, in order (an `if`, then its
/// branches).
fn op_names(ops: &[Op], path: &FieldPath, bases: &mut Vec<(String, bool, FieldPath)>) {
    for (j, op) in ops.iter().enumerate() {
        let (kind, as_) = match op {
            Op::Get(d) => ("get", &d.name),
            Op::CurrentTask(d) => ("current_task", &d.name),
            Op::Delete(d) => ("delete", &d.name),
            Op::Read(d) => ("read", &d.name),
            Op::Write(d) => ("write", &d.name),
            Op::Call(d) => ("call", &d.name),
            Op::If(d) => ("if", &d.name),
            Op::Return(_) => ("return", &None),
            Op::Add(d) => ("add", &d.name),
            Op::Let(d) => ("let", &d.name),
        };
        let op_path = path.index(j).key(kind);
        match as_ {
            Some(n) => bases.push((n.clone(), true, op_path.key("as"))),
            // A call is named after its function, without `bpf_`.
            None => match op {
                Op::Call(d) => {
                    let base = d.func.strip_prefix("bpf_").unwrap_or(&d.func);
                    bases.push((base.to_string(), false, op_path));
                }
                _ => bases.push((kind.into(), false, op_path)),
            },
        }
        if let Op::If(d) = op {
            let q = path.index(j).key("if");
            op_names(&d.then, &q.key("then"), bases);
            op_names(&d.otherwise, &q.key("else"), bases);
        }
    }
}

fn user_name(map: &str, call: &str, as_: &Option<String>) -> (String, bool) {
    match as_ {
        Some(n) => (n.clone(), true),
        // A map chosen by a dimension (`"$map"`) is named after the dimension.
        None => (format!("{}.{call}", map.trim_start_matches('$')), false),
    }
}

/// Where a `prog` step's operations are in the file.
pub(super) fn ops_path(step: &FieldPath, body: &ProgBody) -> FieldPath {
    match body {
        ProgBody::Ops(_) => step.key("prog"),
        ProgBody::Program(_) => step.key("prog").key("ops"),
    }
}
