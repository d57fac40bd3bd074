//! What an instance's programs are, for results: the compiled instructions and the helpers
//! they call. Pure: the compiler's output with names filled in, no kernel.

use super::{InstanceInfo, ProgramInfo};
use crate::case::{Instance, StepSpec, ValueSize};
use crate::{compile, tables};

/// Helpers the compiler calls for itself (the result map, the runner guard, per-CPU reads):
/// not what a case asks about.
const BOOKKEEPING: &[&str] = &[
    "bpf_map_lookup_elem",
    "bpf_get_current_pid_tgid",
    "bpf_this_cpu_ptr",
];

/// The instance as results record it: id, bindings, type, and each program step compiled.
pub fn describe(inst: &Instance) -> InstanceInfo {
    let sizes = listing_sizes(inst);
    let map_name = |i: usize| {
        inst.maps
            .get(i)
            .map_or("results".to_string(), |m| m.name.clone())
    };
    let programs = inst
        .steps
        .iter()
        .filter_map(|step| {
            let StepSpec::Prog {
                name, prog_type, ..
            } = step
            else {
                return None;
            };
            let listing = match (&inst.object, compile::compile_step(step, &sizes)) {
                (Some(o), _) => vec![format!("progs/{o}.bpf.c, compiled by clang")],
                (None, Some(Ok(spec))) => spec.program.disassemble(&tables::helper_name, &map_name),
                (None, Some(Err(e))) => vec![format!("not compiled: {e}")],
                (None, None) => Vec::new(),
            };
            Some(ProgramInfo {
                step: name.clone(),
                program_type: prog_type.name.to_string(),
                uapi_type: tables::prog_type_uapi(prog_type.id).unwrap_or_default(),
                calls: calls(&listing),
                listing: listing.join("\n"),
            })
        })
        .collect();
    InstanceInfo {
        id: inst.id.clone(),
        bindings: inst.bindings.clone(),
        program_type: inst.prog_type.name.to_string(),
        programs,
    }
}

/// The value sizes an instance's programs are listed with: a "max" map's size is measured at
/// run time, so a listing made before any run uses 8.
pub fn listing_sizes(inst: &Instance) -> Vec<u32> {
    inst.maps
        .iter()
        .map(|m| match m.value_size {
            ValueSize::Fixed(n) => n,
            _ => 8,
        })
        .collect()
}

/// The calls of a listing (`call bpf_x#156`, `call kfunc bpf_y`), first-call order, each once.
fn calls(listing: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in listing {
        let Some((_, call)) = l.split_once(": call ") else {
            continue;
        };
        let name = match call.strip_prefix("kfunc ") {
            Some(k) => format!("kfunc {k}"),
            None => call.split('#').next().unwrap_or_default().to_string(),
        };
        if name.is_empty() || name.starts_with("pc") || BOOKKEEPING.contains(&name.as_str()) {
            continue;
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_named_once_without_bookkeeping() {
        let l: Vec<String> = [
            "   0: r1 = map[results] ll",
            "   2: call bpf_map_lookup_elem#1",
            "   3: call bpf_task_storage_get#156",
            "   4: call kfunc bpf_task_release",
            "   5: call bpf_task_storage_get#156",
            "   6: call pc+3",
            "   7: call #9999",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            calls(&l),
            vec!["bpf_task_storage_get", "kfunc bpf_task_release"]
        );
    }

    #[test]
    fn describes_a_shipped_case() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/task_storage");
        let c = crate::case::load(&root.join("program_types.json")).unwrap();
        let i = c
            .instances
            .iter()
            .find(|i| i.id == "program_types/prog=xdp")
            .unwrap();
        let d = describe(i);
        assert_eq!(d.program_type, "xdp");
        let steps: Vec<(&str, &str, &[String])> = d
            .programs
            .iter()
            .map(|p| (p.step.as_str(), p.uapi_type.as_str(), p.calls.as_slice()))
            .collect();
        // `"task": "current"` is bpf_get_current_task_btf's result.
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (btf, get, delete) = (
            names(&["bpf_get_current_task_btf"]),
            names(&["bpf_get_current_task_btf", "bpf_task_storage_get"]),
            names(&["bpf_get_current_task_btf", "bpf_task_storage_delete"]),
        );
        assert_eq!(
            steps,
            vec![
                ("load#1", "XDP", &btf[..]),
                ("load#2", "XDP", &get[..]),
                ("load#3", "XDP", &delete[..]),
            ]
        );
        assert!(d.programs[1]
            .listing
            .contains("call bpf_task_storage_get#156"));
    }
}
