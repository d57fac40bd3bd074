//! The fuzzed entry point: the text of a case file through everything bpfcase does without a
//! kernel — parse and validate (`case::parse`, its located errors rendered), matrix expansion,
//! compilation of every `prog` step (`compile::compile_step`, then the program's bytes, its
//! disassembly and its relocations patched by a fake loader), and the report of a made-up
//! observation (`report::line`, `checks`, `verdict`, `json_line`, `Summary`).
//!
//! Contract: `pipeline` returns for every input; a panic is a bug. It never touches the kernel
//! or the file system. The libFuzzer target (`fuzz_targets/pipeline.rs`) and the regression test
//! (`runner/tests/fuzz_regressions.rs`, which replays `fuzz/regressions/` and `fuzz/seeds/`)
//! call this same function.

use std::path::Path;

use bpfcase::case::{self, step_names, Instance, ValueSize};
use bpfcase::compile::{self, asm::Resolver};
use bpfcase::exec::{Observation, Outcome, Res};
use bpfcase::report;
use bpfcase::tables;

/// Instances compiled and reported per input, spread over the matrix: a valid case may expand
/// to 100 000 of them, and one input must stay well under a millisecond or two.
pub const MAX_INSTANCES: usize = 48;

/// Runs one input through the pipeline. Inputs that are not UTF-8 are not case files.
pub fn pipeline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let case = match case::parse(Path::new("fuzz.json"), text) {
        Ok(case) => case,
        Err(e) => {
            // The message a user sees; its position must lie inside the text.
            let _ = e.to_string();
            assert!(
                e.line <= text.lines().count() + 1,
                "error at line {} of a {}-line text: {e}",
                e.line,
                text.lines().count()
            );
            return;
        }
    };
    let n = case.instances.len();
    let stride = n.div_ceil(MAX_INSTANCES).max(1);
    let mut summary = report::Summary::default();
    for (i, inst) in case.instances.iter().enumerate().step_by(stride) {
        compile_all(inst);
        let obs = observation(inst, i);
        let _ = report::line(&obs, Some(inst));
        let _ = report::line(&obs, None);
        // Half the instances judged on a kernel of known series, half on one of unknown series.
        let kernel = (i % 2 == 0).then_some(case::KernelSeries {
            major: 6,
            minor: 12,
        });
        let checks = report::checks(inst, &obs, kernel);
        let verdict = report::verdict(inst, &obs, kernel);
        assert_eq!(
            matches!(verdict, report::Verdict::Fail(_)),
            checks
                .iter()
                .any(|c| matches!(c.state, report::CheckState::NotHeld { .. })),
            "the verdict and the checks disagree"
        );
        let _ = report::json_line(inst, &obs, &verdict).to_string();
        summary.add(&obs, &verdict);
    }
    let _ = report::snapshot(&case, &[]);
}

/// Compiles every `prog` step of the instance as the executor would, with the value sizes
/// `bpfcase show` assumes for maps sized at run time.
fn compile_all(inst: &Instance) {
    let sizes: Vec<u32> = inst
        .maps
        .iter()
        .map(|m| match m.value_size {
            ValueSize::Fixed(n) => n,
            ValueSize::Max | ValueSize::MaxPlusOne => 8,
        })
        .collect();
    let map_name = |i: usize| {
        inst.maps
            .get(i)
            .map_or("results".to_string(), |m| m.name.clone())
    };
    for step in &inst.steps {
        let Some(Ok(spec)) = compile::compile_step(step, &sizes) else {
            continue;
        };
        let bytes = spec.program.to_bytes();
        assert_eq!(bytes.len(), spec.program.insns.len() * 8);
        let _ = spec.program.disassemble(&tables::helper_name, &map_name);
        let patched = spec.program.patched(&FakeLoader);
        assert!(patched.is_ok(), "the fake loader resolves every relocation");
        for slot in &spec.slots {
            assert!(
                slot.offset < spec.result_size,
                "slot at {} outside a {}-byte result value",
                slot.offset,
                spec.result_size
            );
        }
    }
}

/// A loader that answers every relocation.
struct FakeLoader;

impl Resolver for FakeLoader {
    fn map_fd(&self, map: usize) -> i32 {
        i32::try_from(map).map_or(i32::MAX, |m| m.saturating_add(3))
    }
    fn kfunc_id(&self, _name: &str) -> Option<i32> {
        Some(1)
    }
    fn percpu(&self, _name: &str) -> Option<(i32, i16)> {
        Some((1, 0))
    }
    fn field_offset(&self, _start: &str, _fields: &[String]) -> Option<i16> {
        Some(8)
    }
}

/// A made-up observation of the instance: every result name its steps produce, each with a
/// result chosen by position, so that every kind of result is rendered and judged.
fn observation(inst: &Instance, index: usize) -> Observation {
    let mut results: Vec<(String, Res)> = inst
        .maps
        .iter()
        .map(|m| (m.name.clone(), Res::Created { value_size: None }))
        .collect();
    // What a get's pointer shows: the first bytes of a value of the first map's size.
    let total = inst.maps.first().map_or(8, |m| match m.value_size {
        ValueSize::Fixed(n) => n,
        ValueSize::Max | ValueSize::MaxPlusOne => 8,
    });
    let names = inst.steps.iter().flat_map(step_names);
    results.extend(
        names
            .enumerate()
            .map(|(k, name)| (name, made_up(index + k, total))),
    );
    let outcome = match index % 8 {
        5 => Outcome::Unsupported {
            reason: "map type task_storage".into(),
        },
        6 => Outcome::Refused {
            errno: "EPERM".into(),
            what: "loading a program".into(),
        },
        7 => Outcome::Error {
            message: "fuzzing".into(),
        },
        _ => Outcome::Ran,
    };
    Observation {
        id: inst.id.clone(),
        outcome,
        results,
        logs: Vec::new(),
    }
}

/// Result number `k` of an instance whose gets point to `total`-byte values.
fn made_up(k: usize, total: u32) -> Res {
    let errno = || "EINVAL".to_string();
    match k % 22 {
        0 => Res::Loaded,
        1 => Res::Ptr {
            bytes: (0..total.min(compile::MAX_PAYLOAD))
                .map(|b| b as u8)
                .collect(),
            total,
        },
        2 => Res::Null,
        // Small negative values are errnos, by name when known.
        3 => Res::Ret { value: -(k as i64) },
        4 => Res::Value {
            bytes: vec![0, 1, 2],
        },
        5 => Res::Err { errno: errno() },
        6 => Res::Rejected {
            errno: "EACCES".into(),
            line: "R1 invalid mem access 'scalar'".into(),
        },
        7 => Res::Unsupported {
            reason: "helper bpf_task_storage_get".into(),
        },
        8 => Res::Refused {
            errno: "EPERM".into(),
            what: "loading".into(),
        },
        9 => Res::Unavailable,
        10 => Res::LoadOnly,
        11 => Res::TaskPtr,
        12 => Res::Attached {
            runs: 3,
            recursion_misses: 1,
        },
        13 => Res::Count {
            calls: 3,
            failures: 1,
            failure: "NULL".into(),
        },
        14 => Res::RunFailed { errno: errno() },
        15 => Res::NotCompiled {
            reason: "fuzzing".into(),
        },
        16 => Res::PtrUninit { total: 16 },
        17 => Res::SkippedNull,
        18 => Res::NoTask,
        19 => Res::Ok,
        20 => Res::Uninit,
        _ => Res::NotReached,
    }
}
