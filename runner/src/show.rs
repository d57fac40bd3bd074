//! `bpfcase show ID`: what one instance compiles to, and what the kernel says about it.

use std::path::PathBuf;
use std::process::ExitCode;

use bpfcase::case::{StepSpec, ValueSize};
use bpfcase::compile;
use bpfcase::exec::Env;
use bpfcase::report;
use bpfcase::tables;

use crate::cli::{self, CliError};

pub fn show(id: &str, cases: &[PathBuf]) -> Result<ExitCode, CliError> {
    let all = cli::load(cases, &[])?;
    let pat = glob::Pattern::new(id).ok();
    let found: Vec<_> = all
        .iter()
        .flat_map(|c| c.instances.iter())
        .filter(|i| i.id == id || pat.as_ref().is_some_and(|p| p.matches(&i.id)))
        .collect();
    let inst = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(CliError::arg(
                "instance id",
                id,
                "matches no instance; `bpfcase list` prints the ids",
            ))
        }
        many => {
            let ids: Vec<&str> = many.iter().take(3).map(|i| i.id.as_str()).collect();
            return Err(CliError::arg(
                "instance id",
                id,
                format!(
                    "matches {} instances ({}{}); give one id, or a glob that matches one",
                    many.len(),
                    ids.join(", "),
                    if many.len() > ids.len() { ", …" } else { "" }
                ),
            ));
        }
    };
    println!("instance {}", inst.id);
    let pt = inst.prog_type;
    println!(
        "program type {} (id {}{}): {}",
        pt.name,
        pt.id,
        pt.expected_attach_type
            .map_or(String::new(), |a| format!(", expected attach type {a}")),
        pt.how_it_runs(None)
    );
    println!("\nmaps:");
    for m in &inst.maps {
        let vs = match m.value_size {
            ValueSize::Fixed(n) => n.to_string(),
            ValueSize::Max => "max (measured at run time)".into(),
            ValueSize::MaxPlusOne => "max+1 (measured at run time)".into(),
        };
        println!(
            "  {}: {} (type {}), key_size {}, value_size {}, max_entries {}, map_flags {:#x}",
            m.name, m.map_type.name, m.map_type.id, m.key_size, vs, m.max_entries, m.flags
        );
        if m.btf {
            let key = if m.key_size == 4 {
                "int".to_string()
            } else {
                format!("unsigned char[{}]", m.key_size)
            };
            let value = match (&m.layout, m.btf_value_size) {
                (Some(l), _) => format!("struct value ({})", l.describe()),
                (None, Some(n)) => format!("unsigned char[{n}] (not value_size)"),
                (None, None) => format!("unsigned char[{vs}]"),
            };
            println!("    BTF: [1] INT int size=4 signed, [2] INT unsigned char size=1; key {key}, value {value}");
        } else {
            println!("    no BTF");
        }
    }
    let sizes = bpfcase::results::listing_sizes(inst);
    if inst
        .maps
        .iter()
        .any(|m| !matches!(m.value_size, ValueSize::Fixed(_)))
    {
        println!("\nnote: a \"max\"/\"max+1\" map is compiled here with value_size 8; the run below measures the real size");
    }
    for step in &inst.steps {
        if let StepSpec::Prog {
            name,
            prog_type,
            attach_to,
            stay,
            run,
            ..
        } = step
        {
            println!("\nprogram `{name}`:");
            if prog_type.name != inst.prog_type.name || attach_to.is_some() || *stay {
                let how = if *stay {
                    let target = attach_to.as_deref().or(prog_type.attach_btf);
                    format!(
                        "attached{}, staying attached and counting until the instance ends",
                        target.map_or(String::new(), |t| format!(" to {t}"))
                    )
                } else {
                    let trigger = run.trigger.as_ref().map(|t| t.action());
                    prog_type.how_it_runs_with(attach_to.as_deref(), trigger)
                };
                println!("  a {} program: {how}", prog_type.name);
            }
            let words = run.words();
            if !words.is_empty() {
                println!("  {words}");
            }
            match compile::compile_step(step, &sizes) {
                Some(Ok(spec)) => {
                    let map_name = |i: usize| {
                        inst.maps
                            .get(i)
                            .map_or("results".to_string(), |m| m.name.clone())
                    };
                    for l in spec.program.disassemble(&tables::helper_name, &map_name) {
                        println!("{l}");
                    }
                    println!(
                        "  result map value: {} bytes: finished flag at 0, slots at {:?}, params at {} {:?}",
                        spec.result_size,
                        spec.slots.iter().map(|s| s.offset).collect::<Vec<_>>(),
                        spec.params_offset,
                        spec.params
                    );
                }
                Some(Err(e)) => println!("  not compiled: {e}"),
                None => {}
            }
        } else {
            println!("\nuser space: {}", describe(inst, step));
        }
    }
    bpfcase::exec::check_privileges()?;
    let mut env = Env::new();
    env.keep_logs = true;
    let obs = env.run(inst);
    for (name, log) in env.logs.drain(..) {
        println!("\nverifier log of `{name}`:\n{log}");
    }
    println!("\nobservation: {}", report::line(&obs, Some(inst)));
    Ok(ExitCode::SUCCESS)
}

/// A user-space or process step in words.
fn describe(inst: &bpfcase::case::Instance, step: &StepSpec) -> String {
    let map = |i: &usize| inst.maps.get(*i).map_or("?", |m| m.name.as_str());
    match step {
        StepSpec::Prog { name, .. } => format!("program `{name}`"),
        StepSpec::Update {
            name,
            map: m,
            key,
            value,
            flags,
        } => {
            format!(
                "`{name}`: bpf_map_update_elem({}, key {key:?}, value {value:?}, flags {flags:#x})",
                map(m)
            )
        }
        StepSpec::Lookup {
            name,
            map: m,
            key,
            flags,
        } => {
            format!(
                "`{name}`: bpf_map_lookup_elem_flags({}, key {key:?}, flags {flags:#x})",
                map(m)
            )
        }
        StepSpec::LookupAndDelete {
            name,
            map: m,
            key,
            flags,
        } => {
            format!(
                "`{name}`: bpf_map_lookup_and_delete_elem_flags({}, key {key:?}, flags {flags:#x})",
                map(m)
            )
        }
        StepSpec::Delete { name, map: m, key } => {
            format!("`{name}`: bpf_map_delete_elem({}, key {key:?})", map(m))
        }
        StepSpec::NextKey { name, map: m, key } => {
            format!("`{name}`: bpf_map_get_next_key({}, key {key:?})", map(m))
        }
        StepSpec::Spawn { child, .. } => {
            format!("fork child `{child}` (it waits) and open its pidfd")
        }
        StepSpec::Exit { child, .. } => {
            format!("let child `{child}` exit; wait until it is a zombie")
        }
        StepSpec::Reap { child, .. } => format!("reap child `{child}`"),
        StepSpec::New { owner, kind, .. } => format!(
            "make {} `{owner}` (the runner's private part of the cgroup2 hierarchy) and open it",
            kind.name
        ),
        StepSpec::Free { owner, .. } => {
            format!("remove `{owner}` (rmdir; the runner's fd stays open)")
        }
        StepSpec::Enter { child, cgroup, .. } => {
            format!("move child `{child}` into cgroup `{cgroup}` (cgroup.procs)")
        }
    }
}
