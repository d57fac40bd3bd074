//! Code of `call`, `if` and `return` ops, instruction by instruction.

use super::*;
use crate::case::value::{FlagsArg, Pattern, TaskArg, ValueArg};
use crate::case::{Arg, Buf, BufFill, Call, Cond as When, Func, Ret, Width};

fn syscall() -> &'static ProgType {
    tables::prog_type("syscall").unwrap()
}

fn dis(spec: &ProgramSpec) -> Vec<String> {
    let names = |i: usize| ["st", "results"][i.min(1)].to_string();
    spec.program.disassemble(&tables::helper_name, &names)
}

fn call(name: &str, func: Func, args: Vec<Arg>, ret: Ret) -> OpSpec {
    OpSpec::Call(Call {
        name: name.into(),
        func,
        args,
        ret,
    })
}

fn helper(name: &str) -> Func {
    Func::Helper(tables::helpers::helper(name).unwrap())
}

fn kfunc(name: &str) -> Func {
    Func::Kfunc(name.into())
}

#[test]
fn an_acquired_task_is_checked_used_and_released() {
    let ops = [
        call("cur", helper("bpf_get_current_task_btf"), vec![], Ret::Task),
        call(
            "t",
            kfunc("bpf_task_acquire"),
            vec![Arg::Result { op: 0, offset: 0 }],
            Ret::Task,
        ),
        OpSpec::If {
            name: "if".into(),
            cond: When::NonNull(1),
            then_len: 2,
            else_len: 0,
        },
        call(
            "get",
            helper("bpf_task_storage_get"),
            vec![
                Arg::Map(0),
                Arg::Result { op: 1, offset: 0 },
                Arg::Buf(Buf {
                    fill: BufFill::Half,
                    size: None,
                }),
                Arg::Const(1),
            ],
            Ret::Value(0),
        ),
        call(
            "rel",
            kfunc("bpf_task_release"),
            vec![Arg::Result { op: 1, offset: 0 }],
            Ret::Void,
        ),
    ];
    let spec = compile(syscall(), &ops, &[8]).unwrap();
    assert_eq!(
        dis(&spec),
        [
            "   0: r6 = r1",
            "   1: r9 = map[results]+0 ll",
            "   3: *(u64 *)(r10 -8) = 0",
            "   4: *(u64 *)(r10 -16) = 0",
            "   5: *(u64 *)(r10 -24) = 0",
            "   6: *(u64 *)(r10 -32) = 0",
            "   7: *(u64 *)(r10 -40) = 0",
            // The current task, spilled for the acquire.
            "   8: call bpf_get_current_task_btf#158",
            "   9: *(u64 *)(r10 -8) = r0",
            "  10: *(u64 *)(r9 +8) = 1",
            "  11: if r0 == 0x0 goto pc+1",
            "  12: *(u64 *)(r9 +16) = 1",
            "  13: r1 = *(u64 *)(r10 -8)",
            "  14: call kfunc bpf_task_acquire",
            "  15: *(u64 *)(r10 -16) = r0",
            "  16: *(u64 *)(r9 +24) = 1",
            "  17: if r0 == 0x0 goto pc+1",
            "  18: *(u64 *)(r9 +32) = 1",
            // if nonnull(t): the branch taken is recorded.
            "  19: r1 = *(u64 *)(r10 -16)",
            "  20: *(u64 *)(r9 +40) = 1",
            "  21: if r1 == 0x0 goto pc+19",
            "  22: *(u64 *)(r9 +48) = 1",
            // Half of the 8-byte buffer below the spills is written.
            "  23: *(u32 *)(r10 -48) = 0",
            "  24: r1 = map[st] ll",
            "  26: r2 = *(u64 *)(r10 -16)",
            "  27: r3 = r10",
            "  28: r3 += -48",
            "  29: r4 = 1",
            "  30: call bpf_task_storage_get#156",
            "  31: *(u64 *)(r10 -32) = r0",
            "  32: *(u64 *)(r9 +56) = 1",
            "  33: if r0 == 0x0 goto pc+3",
            "  34: *(u64 *)(r9 +64) = 1",
            "  35: r1 = *(u64 *)(r0 +0)",
            "  36: *(u64 *)(r9 +72) = r1",
            "  37: r1 = *(u64 *)(r10 -16)",
            "  38: call kfunc bpf_task_release",
            "  39: *(u64 *)(r9 +80) = 1",
            // No `else`: the jump over it goes to the next instruction.
            "  40: goto pc+0",
            "  41: *(u64 *)(r9 +0) = 1",
            "  42: r0 = 0",
            "  43: exit",
        ]
    );
    assert_eq!(spec.kfuncs, ["bpf_task_acquire", "bpf_task_release"]);
    let helpers: Vec<&str> = spec.helpers.iter().map(|h| h.name).collect();
    assert_eq!(
        helpers,
        ["bpf_get_current_task_btf", "bpf_task_storage_get"]
    );
    let payloads: Vec<u32> = spec.slots.iter().map(|s| s.payload).collect();
    assert_eq!(payloads, [0, 0, 0, 8, 0]);
}

#[test]
fn argument_sources_load_their_registers() {
    let ops = [call(
        "x",
        kfunc("bpf_x"),
        vec![
            Arg::Ctx,
            Arg::HookArg(2),
            Arg::Runtime(7),
            Arg::Plus(Box::new(Arg::Task(TaskArg::Current)), 8),
            Arg::Buf(Buf {
                fill: BufFill::Init(Pattern::Number(0x1122)),
                size: Some(4),
            }),
        ],
        Ret::U64,
    )];
    let spec = compile(syscall(), &ops, &[]).unwrap();
    let d = dis(&spec);
    let body: Vec<&str> = d[3..]
        .iter()
        .map(|l| l.split_once(": ").unwrap().1)
        .collect();
    assert_eq!(
        body,
        [
            "*(u32 *)(r10 -16) = 4386",
            "call bpf_get_current_task_btf#158",
            "r7 = r0",
            "r1 = r6",
            "r2 = *(u64 *)(r6 +16)",
            "r3 = *(u64 *)(r9 +24)",
            "r4 = r7",
            "r4 += 8",
            "r5 = r10",
            "r5 += -16",
            "call kfunc bpf_x",
            "*(u64 *)(r9 +16) = r0",
            "*(u64 *)(r9 +8) = 1",
            "*(u64 *)(r9 +0) = 1",
            "r0 = 0",
            "exit",
        ]
    );
    assert_eq!(spec.params, [Param::Flags(7)]);
}

#[test]
fn return_ends_the_program_with_its_value() {
    let ops = [
        call("p", helper("bpf_get_current_pid_tgid"), vec![], Ret::U64),
        OpSpec::If {
            name: "if".into(),
            cond: When::Lt(0, 1 << 40),
            then_len: 1,
            else_len: 1,
        },
        OpSpec::Return {
            name: "r1".into(),
            value: 1,
        },
        OpSpec::Return {
            name: "r2".into(),
            value: -1,
        },
    ];
    let spec = compile(syscall(), &ops, &[]).unwrap();
    let d = dis(&spec);
    let body: Vec<&str> = d.iter().map(|l| l.split_once(": ").unwrap().1).collect();
    assert_eq!(
        body[2..],
        [
            "r8 = 0",
            "*(u64 *)(r10 -8) = 0",
            "*(u64 *)(r10 -16) = 0",
            "*(u64 *)(r10 -24) = 0",
            "*(u64 *)(r10 -32) = 0",
            "call bpf_get_current_pid_tgid#14",
            "*(u64 *)(r10 -8) = r0",
            "*(u64 *)(r9 +16) = r0",
            "*(u64 *)(r9 +8) = 1",
            "r1 = *(u64 *)(r10 -8)",
            "*(u64 *)(r9 +24) = 1",
            // A constant beyond 32 bits is compared through a register.
            "r2 = 0x10000000000 ll",
            "if r1 >= r2 goto pc+4",
            "*(u64 *)(r9 +32) = 1",
            "*(u64 *)(r9 +40) = 1",
            "r8 = 1",
            // `then` ends with a return: no jump over `else` (it would be unreachable).
            "goto pc+3",
            "*(u64 *)(r9 +56) = 1",
            "r8 = -1",
            "goto pc+0",
            "*(u64 *)(r9 +0) = 1",
            "r0 = r8",
            "exit",
        ]
    );
}

#[test]
fn one_task_is_found_or_taken_per_call() {
    let ops = [call(
        "x",
        kfunc("bpf_x"),
        vec![
            Arg::Task(TaskArg::Current),
            Arg::Task(TaskArg::Child("c".into())),
        ],
        Ret::Int,
    )];
    assert_eq!(
        compile(syscall(), &ops, &[]),
        Err(CompileError::Unsupported(
            "x: one task or owner argument found or taken per call".into()
        ))
    );
}

#[test]
fn counting_programs_count_failures_by_result_kind() {
    let int = call("i", kfunc("bpf_x"), vec![], Ret::Int);
    let c = int.call().unwrap();
    assert_eq!(counted_failure(c), Some((Cond::Sge, 0)));
    let del = OpSpec::delete("d".into(), 0, TaskArg::Current);
    assert_eq!(
        counted_failure(del.call().unwrap()),
        Some((Cond::Ne, -libc::EBUSY))
    );
    let u = call("u", kfunc("bpf_x"), vec![], Ret::U64);
    assert_eq!(counted_failure(u.call().unwrap()), None);
}

#[test]
fn a_walk_loads_each_member_with_an_offset_from_btf() {
    let walk = Arg::Walk {
        base: Box::new(Arg::Task(TaskArg::Current)),
        start: "task_struct".into(),
        fields: vec!["real_parent".into(), "group_leader".into()],
    };
    let ops = [call("w", kfunc("bpf_x"), vec![walk], Ret::Int)];
    let spec = compile(syscall(), &ops, &[]).unwrap();
    let d = dis(&spec);
    let body: Vec<&str> = d.iter().map(|l| l.split_once(": ").unwrap().1).collect();
    assert_eq!(
        body[3..7],
        [
            "call bpf_get_current_task_btf#158",
            "r7 = r0",
            "r1 = r7",
            "r1 = *(u64 *)(r1 +task_struct->real_parent)",
        ]
    );
    assert_eq!(
        body[7],
        "r1 = *(u64 *)(r1 +task_struct->real_parent->group_leader)"
    );
    // The loader patches each load's offset; a walk it cannot resolve is unsupported.
    struct Btf;
    impl asm::Resolver for Btf {
        fn map_fd(&self, _: usize) -> i32 {
            3
        }
        fn kfunc_id(&self, _: &str) -> Option<i32> {
            Some(1)
        }
        fn percpu(&self, _: &str) -> Option<(i32, i16)> {
            None
        }
        fn field_offset(&self, start: &str, fields: &[String]) -> Option<i16> {
            match (start, fields.len()) {
                ("task_struct", 1) => Some(1464),
                ("task_struct", 2) => Some(1520),
                _ => None,
            }
        }
    }
    let insns = spec.program.patched(&Btf).unwrap();
    let loads: Vec<i16> = insns
        .iter()
        .filter(|i| i.code == 0x79 && i.dst == 1 && i.src == 1)
        .map(|i| i.off)
        .collect();
    assert_eq!(loads, [1464, 1520]);
    struct NoBtf;
    impl asm::Resolver for NoBtf {
        fn map_fd(&self, _: usize) -> i32 {
            3
        }
        fn kfunc_id(&self, _: &str) -> Option<i32> {
            Some(1)
        }
        fn percpu(&self, _: &str) -> Option<(i32, i16)> {
            None
        }
        fn field_offset(&self, _: &str, _: &[String]) -> Option<i16> {
            None
        }
    }
    assert_eq!(
        spec.program.patched(&NoBtf),
        Err(asm::Unresolved::Field("task_struct->real_parent".into()))
    );
}

#[test]
fn add_reads_adds_and_writes_back() {
    let ops = [
        OpSpec::get(
            "g".into(),
            0,
            TaskArg::Current,
            ValueArg::Null,
            FlagsArg::Const(1),
        ),
        OpSpec::Add {
            name: "a".into(),
            to: 0,
            value: 5,
            offset: 4,
            width: Width::B4,
            null_check: true,
        },
    ];
    let spec = compile(syscall(), &ops, &[8]).unwrap();
    let d = dis(&spec);
    let body: Vec<&str> = d.iter().map(|l| l.split_once(": ").unwrap().1).collect();
    let at = body
        .iter()
        .position(|l| *l == "r1 = *(u64 *)(r10 -8)")
        .unwrap();
    assert_eq!(
        body[at..at + 9],
        [
            "r1 = *(u64 *)(r10 -8)",
            "if r1 != 0x0 goto pc+2",
            "*(u64 *)(r9 +32) = 3",
            "goto pc+5",
            "r2 = *(u32 *)(r1 +4)",
            "r3 = 5",
            "r2 += r3",
            "*(u32 *)(r1 +4) = r2",
            "*(u64 *)(r9 +32) = 1",
        ]
    );
}

#[test]
fn a_cgroup_is_found_by_its_id_and_released_after_the_call() {
    let owner = crate::case::OwnerArg {
        kind: &tables::CGROUP_OWNER,
        who: crate::case::OwnerRef::Named("a".into()),
    };
    let ops = [call(
        "get",
        helper("bpf_cgrp_storage_get"),
        vec![
            Arg::Map(0),
            Arg::Owner(owner.clone()),
            Arg::Const(0),
            Arg::Const(1),
        ],
        Ret::Value(0),
    )];
    let spec = compile(syscall(), &ops, &[8]).unwrap();
    let text = dis(&spec).join("\n");
    assert_eq!(spec.params, [Param::OwnerId(owner)]);
    assert_eq!(spec.kfuncs, ["bpf_cgroup_from_id", "bpf_cgroup_release"]);
    // The id (a u64 parameter) is looked up first; none found: the NO_OWNER state, no call.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("`{s}` in\n{text}"));
    assert!(at("call kfunc bpf_cgroup_from_id") < at("call bpf_cgrp_storage_get#210"));
    assert!(at("call bpf_cgrp_storage_get#210") < at("call kfunc bpf_cgroup_release"));
    assert!(text.contains(&format!("= {}", state::NO_OWNER)), "{text}");
    assert!(text.contains("r2 = r7"), "{text}");
}

#[test]
fn let_is_its_argument_with_no_call() {
    let walked = Arg::Walk {
        base: Box::new(Arg::HookArg(0)),
        start: "socket".into(),
        fields: vec!["sk".into()],
    };
    let ops = [call("sk", Func::Value, vec![Arg::HookArg(1)], Ret::Ptr)];
    let spec = compile(tables::prog_type("lsm").unwrap(), &ops, &[]).unwrap();
    let text = dis(&spec).join("\n");
    assert!(text.contains("r1 = *(u64 *)(r6 +8)"), "{text}");
    assert!(text.contains("r0 = r1"), "{text}");
    assert!(spec.kfuncs.is_empty());
    // A walked pointer compiles as any argument would.
    let ops = [call("sk", Func::Value, vec![walked], Ret::Ptr)];
    assert!(compile(tables::prog_type("lsm").unwrap(), &ops, &[]).is_ok());
}
