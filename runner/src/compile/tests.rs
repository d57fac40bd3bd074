use super::*;
use crate::case::value::{FlagsArg, Pattern, ValueArg};
use asm::{Insn, Reloc};
use TaskArg::{Current, Null as NoTask, Scalar};
use ValueArg::{Init, Small, Uninit};

fn get(task: TaskArg, value: ValueArg, flags: FlagsArg) -> OpSpec {
    OpSpec::get("g".into(), 0, task, value, flags)
}

fn current_get(value: ValueArg) -> OpSpec {
    get(Current, value, FlagsArg::Const(1))
}

fn child() -> TaskArg {
    TaskArg::Child("c".into())
}

fn read(from: usize, null_check: bool) -> OpSpec {
    let (name, offset, width) = ("r".into(), 0, Width::B8);
    OpSpec::Read {
        name,
        from,
        offset,
        width,
        null_check,
    }
}

fn write(value: u64, offset: u32, width: Width) -> OpSpec {
    let (name, to, null_check) = ("w".into(), 0, true);
    OpSpec::Write {
        name,
        to,
        value,
        offset,
        width,
        null_check,
    }
}

fn delete(map: usize, task: TaskArg) -> OpSpec {
    OpSpec::delete("d".into(), map, task)
}

fn slot(offset: u32, payload: u32) -> Slot {
    Slot { offset, payload }
}

fn try_compile(ops: &[OpSpec], value_sizes: &[u32]) -> Result<ProgramSpec, CompileError> {
    compile(tables::prog_type("syscall").unwrap(), ops, value_sizes)
}

fn ok(ops: &[OpSpec], value_sizes: &[u32]) -> ProgramSpec {
    try_compile(ops, value_sizes).unwrap()
}

/// Disassembly with the numbering kept: `"  12: r1 = ..."`.
fn dis(spec: &ProgramSpec) -> Vec<String> {
    let names = |i: usize| ["st", "results"][i.min(1)].to_string();
    spec.program.disassemble(&tables::helper_name, &names)
}

/// (pc, text) of each disassembled instruction.
fn numbered(spec: &ProgramSpec) -> Vec<(usize, String)> {
    let split = |l: &String| {
        let (pc, t) = l.split_once(": ").unwrap();
        (pc.trim().parse().unwrap(), t.to_string())
    };
    dis(spec).iter().map(split).collect()
}

/// Disassembly without the numbering.
fn text(spec: &ProgramSpec) -> Vec<String> {
    numbered(spec).into_iter().map(|(_, t)| t).collect()
}

/// Indexes (in `text`) of the lines equal to `line`.
fn all(lines: &[String], line: &str) -> Vec<usize> {
    let hit = |(i, l): (usize, &String)| (l == line).then_some(i);
    lines.iter().enumerate().filter_map(hit).collect()
}

/// Index (in `text`) of the only line equal to `line`.
fn find(lines: &[String], line: &str) -> usize {
    let hits = all(lines, line);
    assert_eq!(hits.len(), 1, "`{line}` once in {lines:#?}");
    hits[0]
}

/// `n` instructions from index `at`, joined with "; ".
fn run(lines: &[String], at: usize, n: usize) -> String {
    lines[at..at + n].join("; ")
}

fn any(lines: &[String], f: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|l| f(l))
}

fn helper_names(spec: &ProgramSpec) -> Vec<&'static str> {
    spec.helpers.iter().map(|h| h.name).collect()
}

/// Immediate stores (BPF_ST) through r10 as (offset, bytes), in program order.
fn stack_imm_stores(spec: &ProgramSpec) -> Vec<(i16, usize)> {
    let st = |i: &&Insn| i.code & 0x07 == 0x02 && i.dst == 10;
    let bytes = |i: &Insn| [4, 2, 1, 8][usize::from((i.code >> 3) & 3)];
    spec.program
        .insns
        .iter()
        .filter(st)
        .map(|i| (i.off, bytes(i)))
        .collect()
}

fn hex(i: &Insn) -> String {
    let parts: Vec<_> = i.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

#[test]
fn single_get_exact_program() {
    let spec = ok(
        &[current_get(Init(Pattern::Number(0x1122334455667788)))],
        &[8],
    );
    let expected = [
        "   0: r6 = r1",
        "   1: r9 = map[results]+0 ll",
        "   3: *(u64 *)(r10 -8) = 0",
        "   4: r1 = 0x1122334455667788 ll",
        "   6: *(u64 *)(r10 -16) = r1",
        "   7: call bpf_get_current_task_btf#158",
        "   8: r7 = r0",
        "   9: r2 = r7",
        "  10: r1 = map[st] ll",
        "  12: r3 = r10",
        "  13: r3 += -16",
        "  14: r4 = 1",
        "  15: call bpf_task_storage_get#156",
        "  16: *(u64 *)(r10 -8) = r0",
        "  17: *(u64 *)(r9 +8) = 1",
        "  18: if r0 == 0x0 goto pc+3",
        "  19: *(u64 *)(r9 +16) = 1",
        "  20: r1 = *(u64 *)(r0 +0)",
        "  21: *(u64 *)(r9 +24) = r1",
        "  22: *(u64 *)(r9 +0) = 1",
        "  23: r0 = 0",
        "  24: exit",
    ];
    assert_eq!(dis(&spec), expected);
    assert_eq!(
        helper_names(&spec),
        ["bpf_get_current_task_btf", "bpf_task_storage_get"]
    );
    assert!(spec.kfuncs.is_empty() && spec.params.is_empty());
    assert_eq!(spec.slots, [slot(8, 8)]);
    assert_eq!(spec.result_size, 32);
    assert_eq!(spec.prog_type.name, "syscall");
    let value = Reloc::MapValue {
        insn: 1,
        map: 1,
        offset: 0,
    };
    assert_eq!(
        spec.program.relocs,
        [value, Reloc::MapFd { insn: 10, map: 0 }]
    );
    // Byte-for-byte where the encoding matters: the pseudo src_reg of the map loads, the
    // 64-bit constant, the helper call, the NULL-check jump and the exit.
    let insns = &spec.program.insns;
    assert_eq!(insns.len(), 25);
    let picked: Vec<_> = [1, 2, 4, 5, 10, 15, 18, 24].map(|i| hex(&insns[i])).into();
    let bytes = [
        "18 29 00 00 00 00 00 00",
        "00 00 00 00 00 00 00 00",
        "18 01 00 00 88 77 66 55",
        "00 00 00 00 44 33 22 11",
        "18 11 00 00 00 00 00 00",
        "85 00 00 00 9c 00 00 00",
        "15 00 03 00 00 00 00 00",
        "95 00 00 00 00 00 00 00",
    ];
    assert_eq!(picked, bytes);
}

#[test]
fn runtime_flags_come_from_the_params() {
    let runtime = |f| get(Current, ValueArg::Null, FlagsArg::Runtime(f));
    let spec = ok(&[runtime(2), runtime(2)], &[8]);
    // Both gets read the same parameter, after the two 24-byte slots.
    assert_eq!(spec.params, [Param::Flags(2)]);
    assert_eq!((spec.params_offset, spec.result_size), (56, 64));
    let lines = text(&spec);
    assert_eq!(all(&lines, "r4 = *(u64 *)(r9 +56)").len(), 2);
    assert!(!any(&lines, |l| l.starts_with("r4 = ")
        && !l.contains("(r9 +56)")));
    let spec = ok(&[runtime(2), runtime(3)], &[8]);
    assert_eq!(spec.params, [Param::Flags(2), Param::Flags(3)]);
    find(&text(&spec), "r4 = *(u64 *)(r9 +64)");
}

#[test]
fn child_task_found_by_pid_and_released() {
    let spec = ok(&[get(child(), ValueArg::Null, FlagsArg::Const(0))], &[8]);
    assert_eq!(spec.params, [Param::ChildPid("c".into())]);
    assert_eq!(spec.kfuncs, ["bpf_task_from_pid", "bpf_task_release"]);
    assert_eq!(helper_names(&spec), ["bpf_task_storage_get"]);
    let lines = text(&spec);
    assert_eq!(spec.params_offset, 32);
    let pid = find(&lines, "r1 = *(u32 *)(r9 +32)");
    let found = "call kfunc bpf_task_from_pid; if r0 != 0x0 goto pc+2";
    let no_task = "*(u64 *)(r9 +8) = 2; goto pc+15; r7 = r0; r2 = r7";
    assert_eq!(run(&lines, pid + 1, 6), format!("{found}; {no_task}"));
    let release = find(&lines, "call kfunc bpf_task_release");
    assert!(find(&lines, "call bpf_task_storage_get#156") < release);
    let end = "r1 = r7; call kfunc bpf_task_release; *(u64 *)(r9 +0) = 1";
    assert_eq!(run(&lines, release - 1, 3), end);
    // The missing-task path jumps over the helper and the release, to the finished word.
    let pcs: Vec<usize> = numbered(&spec).iter().map(|(pc, _)| *pc).collect();
    let ja = pcs[pid + 4];
    assert_eq!(
        ja + 1 + spec.program.insns[ja].off as usize,
        pcs[release + 1]
    );
    let kfunc = |r: &&Reloc| matches!(r, Reloc::Kfunc { .. });
    let kfuncs: Vec<_> = spec.program.relocs.iter().filter(kfunc).cloned().collect();
    let at = |insn, name: &str| Reloc::Kfunc {
        insn,
        name: name.into(),
    };
    let expected = [
        at(pcs[pid + 1], "bpf_task_from_pid"),
        at(pcs[release], "bpf_task_release"),
    ];
    assert_eq!(kfuncs, expected);
    assert_eq!(
        spec.program.insns[pcs[release]].src,
        asm::BPF_PSEUDO_KFUNC_CALL
    );
}

#[test]
fn null_and_scalar_arguments() {
    let ops = [
        get(NoTask, ValueArg::Null, FlagsArg::Const(0)),
        get(Scalar, ValueArg::Null, FlagsArg::Const(u64::MAX)),
    ];
    let spec = ok(&ops, &[8]);
    let lines = text(&spec);
    let maps = all(&lines, "r1 = map[st] ll");
    assert_eq!(maps.len(), 2);
    assert_eq!(
        run(&lines, maps[0] - 1, 4),
        "r2 = 0; r1 = map[st] ll; r3 = 0; r4 = 0"
    );
    // u64::MAX is a sign-extended imm32.
    assert_eq!(
        run(&lines, maps[1] - 1, 4),
        "r2 = 1; r1 = map[st] ll; r3 = 0; r4 = -1"
    );
    assert!(!any(&lines, |l| l.contains("get_current_task")
        || l.contains("kfunc")));
    assert_eq!(helper_names(&spec), ["bpf_task_storage_get"]);
    // No value buffer: only the two spill slots are zeroed.
    assert_eq!(stack_imm_stores(&spec), [(-8, 8), (-16, 8)]);
}

#[test]
fn small_and_uninit_value_buffers() {
    let spec = ok(&[current_get(Small)], &[8]);
    // Seven zero bytes ending at the frame's last byte, in aligned stores; below them the
    // spill slot.
    assert_eq!(
        stack_imm_stores(&spec),
        [(-16, 8), (-7, 1), (-6, 2), (-4, 4)]
    );
    let lines = text(&spec);
    let first = find(&lines, "*(u8 *)(r10 -7) = 0");
    let stores = "*(u8 *)(r10 -7) = 0; *(u16 *)(r10 -6) = 0; *(u32 *)(r10 -4) = 0";
    assert_eq!(run(&lines, first, 3), stores);
    assert_eq!(
        run(&lines, find(&lines, "r3 = r10"), 2),
        "r3 = r10; r3 += -7"
    );
    find(&lines, "*(u64 *)(r10 -16) = r0");

    let spec = ok(&[current_get(Uninit)], &[8]);
    assert_eq!(
        stack_imm_stores(&spec),
        [(-8, 8)],
        "only the spill slot is written"
    );
    let lines = text(&spec);
    assert!(!any(&lines, |l| l.starts_with("*(u64 *)(r10 -16)")));
    assert_eq!(
        run(&lines, find(&lines, "r3 = r10"), 2),
        "r3 = r10; r3 += -16"
    );
}

#[test]
fn odd_value_sizes() {
    let fill = Init(Pattern::Fill(0xaa));
    let spec = ok(&[current_get(fill.clone())], &[12]);
    assert_eq!(
        (&spec.slots[..], spec.result_size),
        (&[slot(8, 16)][..], 40)
    );
    let lines = text(&spec);
    let at = find(&lines, "r1 = 0xaaaaaaaaaaaaaaaa ll");
    let stores = "*(u64 *)(r10 -24) = r1; *(u32 *)(r10 -16) = -1431655766";
    assert_eq!(run(&lines, at + 1, 2), stores);
    assert_eq!(
        run(&lines, find(&lines, "r3 = r10"), 2),
        "r3 = r10; r3 += -24"
    );
    let check = find(&lines, "if r0 == 0x0 goto pc+5");
    let copy = "*(u64 *)(r9 +16) = 1; \
        r1 = *(u64 *)(r0 +0); *(u64 *)(r9 +24) = r1; \
        r1 = *(u32 *)(r0 +8); *(u32 *)(r9 +32) = r1; \
        *(u64 *)(r9 +0) = 1";
    assert_eq!(run(&lines, check + 1, 6), copy);

    let spec = ok(&[current_get(fill)], &[5]);
    assert_eq!((&spec.slots[..], spec.result_size), (&[slot(8, 8)][..], 32));
    assert_eq!(stack_imm_stores(&spec), [(-8, 8), (-16, 4), (-12, 1)]);
    let lines = text(&spec);
    let at = find(&lines, "*(u32 *)(r10 -16) = -1431655766");
    assert_eq!(lines[at + 1], "*(u8 *)(r10 -12) = 170");
    let check = find(&lines, "if r0 == 0x0 goto pc+5");
    let copy = "*(u64 *)(r9 +16) = 1; \
        r1 = *(u32 *)(r0 +0); *(u32 *)(r9 +24) = r1; \
        r1 = *(u8 *)(r0 +4); *(u8 *)(r9 +28) = r1; \
        *(u64 *)(r9 +0) = 1";
    assert_eq!(run(&lines, check + 1, 6), copy);

    // For any size: every stack store is aligned to its width and the stores cover the value.
    for vs in [1, 3, 6, 7, 9, 13, 15, 33, 63, 100] {
        let spec = ok(&[current_get(Init(Pattern::Fill(1)))], &[vs]);
        let stores = stack_imm_stores(&spec);
        assert!(
            stores.iter().all(|(o, w)| *o as i32 % *w as i32 == 0),
            "{vs}: {stores:?}"
        );
        let imm: usize = stores[1..].iter().map(|(_, w)| w).sum();
        let wide = |l: &String| l.starts_with("*(u64 *)(r10 -") && l.ends_with("= r1");
        let dw = text(&spec).iter().filter(|l| wide(l)).count();
        assert_eq!(imm + 8 * dw, vs as usize, "value size {vs}");
        assert_eq!(spec.slots[0].payload, vs.min(MAX_PAYLOAD).div_ceil(8) * 8);
    }
}

#[test]
fn unchecked_read_defers_the_copy_out() {
    let spec = ok(&[current_get(ValueArg::Null), read(0, false)], &[8]);
    assert_eq!(spec.slots, [slot(8, 8), slot(32, 8)]);
    let lines = text(&spec);
    assert!(
        !any(&lines, |l| l.starts_with("if r0 ")),
        "no NULL check on r0"
    );
    let spill = find(&lines, "*(u64 *)(r10 -8) = r0");
    let get = "*(u64 *)(r10 -8) = r0; *(u64 *)(r9 +8) = 1";
    let read = "r1 = *(u64 *)(r10 -8); r2 = *(u64 *)(r1 +0); \
        *(u64 *)(r9 +40) = r2; *(u64 *)(r9 +32) = 1";
    let deferred = "r2 = *(u64 *)(r10 -8); if r2 == 0x0 goto pc+3; \
        *(u64 *)(r9 +16) = 1; r1 = *(u64 *)(r2 +0); *(u64 *)(r9 +24) = r1";
    let end = "*(u64 *)(r9 +0) = 1; r0 = 0; exit";
    let expected = format!("{get}; {read}; {deferred}; {end}");
    assert_eq!(run(&lines, spill, lines.len() - spill), expected);
}

#[test]
fn checked_read_is_guarded_and_not_deferred() {
    let spec = ok(&[current_get(ValueArg::Null), read(0, true)], &[8]);
    let lines = text(&spec);
    let check = find(&lines, "if r0 == 0x0 goto pc+3");
    let load = find(&lines, "r2 = *(u64 *)(r1 +0)");
    assert!(check < load);
    let guard = "r1 = *(u64 *)(r10 -8); if r1 != 0x0 goto pc+2; \
        *(u64 *)(r9 +32) = 3; goto pc+3";
    let read = "r2 = *(u64 *)(r1 +0); *(u64 *)(r9 +40) = r2; *(u64 *)(r9 +32) = 1";
    let end = "*(u64 *)(r9 +0) = 1; r0 = 0; exit";
    assert_eq!(run(&lines, load - 4, 10), format!("{guard}; {read}; {end}"));
    assert_eq!(load + 6, lines.len());
    assert_eq!(state::SKIPPED_NULL, 3);
    let jumps = lines.iter().filter(|l| l.starts_with("if r")).count();
    assert_eq!(jumps, 2, "no deferred copy");
}

#[test]
fn write_and_delete() {
    let ops = [
        current_get(ValueArg::Null),
        write(7, 4, Width::B4),
        delete(0, Current),
    ];
    let spec = ok(&ops, &[8]);
    assert_eq!(spec.slots, [slot(8, 8), slot(32, 0), slot(48, 0)]);
    assert_eq!(spec.result_size, 64);
    let lines = text(&spec);
    let store = find(&lines, "*(u32 *)(r1 +4) = r2");
    let write4 = "r2 = 7; *(u32 *)(r1 +4) = r2; *(u64 *)(r9 +32) = 1";
    assert_eq!(run(&lines, store - 1, 3), write4);
    let del = find(&lines, "call bpf_task_storage_delete#157");
    let result = "*(u64 *)(r9 +56) = r0; *(u64 *)(r9 +48) = 1";
    assert_eq!(
        run(&lines, del - 1, 4),
        format!("r1 = map[st] ll; {}; {result}", lines[del])
    );
    let names = [
        "bpf_get_current_task_btf",
        "bpf_task_storage_get",
        "bpf_task_storage_delete",
    ];
    assert_eq!(helper_names(&spec), names);
    // A value that does not fit an imm32 is loaded with ld_imm64.
    let lines = text(&ok(
        &[current_get(ValueArg::Null), write(1 << 40, 0, Width::B8)],
        &[8],
    ));
    let store = find(&lines, "*(u64 *)(r1 +0) = r2");
    assert_eq!(lines[store - 1], "r2 = 0x10000000000 ll");
}

#[test]
fn stack_overflow() {
    let init = || current_get(Init(Pattern::Number(1)));
    let overflow = |n| Err(CompileError::StackOverflow(n));
    assert_eq!(try_compile(&[init()], &[600]), overflow(608));
    // One spill slot + 504 bytes is exactly the BPF stack; one byte more is not.
    assert!(try_compile(&[init()], &[504]).is_ok());
    assert_eq!(try_compile(&[init()], &[505]), overflow(520));
    assert_eq!(try_compile(&[current_get(Small)], &[600]), overflow(608));
    let null = try_compile(&[current_get(ValueArg::Null)], &[600]);
    assert!(null.is_ok(), "NULL needs no buffer");
    // Value sizes near u32::MAX: rounded up to 8 they pass 2^32, which must not wrap around
    // to a small frame (nor allocate a buffer of that size).
    for vs in [0xffff_fff9, 0xffff_fffc, u32::MAX] {
        assert_eq!(try_compile(&[init()], &[vs]), overflow(8 + (1 << 32)));
        assert_eq!(
            try_compile(&[current_get(Small)], &[vs]),
            overflow(8 + (1 << 32))
        );
        let two = [init(), current_get(Uninit)];
        assert_eq!(try_compile(&two, &[vs]), overflow(16 + (2 << 32)));
        assert!(try_compile(&[current_get(ValueArg::Null)], &[vs]).is_ok());
    }
    assert_eq!(
        CompileError::StackOverflow(8 + (1 << 32)).to_string(),
        "the stack buffers need 4294967304 bytes; the BPF stack has 512"
    );
}

#[test]
fn deterministic() {
    let ops = [
        get(child(), Init(Pattern::Fill(3)), FlagsArg::Runtime(1)),
        current_get(Small),
        read(0, false),
        read(1, true),
        delete(1, child()),
    ];
    let (a, b) = (ok(&ops, &[12, 8]), ok(&ops, &[12, 8]));
    assert_eq!(a, b);
    assert_eq!(a.program.to_bytes(), b.program.to_bytes());
    assert_eq!(a.program.to_bytes().len(), a.program.insns.len() * 8);
    assert_eq!(a.params, [Param::ChildPid("c".into()), Param::Flags(1)]);
    assert_eq!(a.kfuncs, ["bpf_task_from_pid", "bpf_task_release"]);
    // The result map is index 2, after the instance's two maps.
    assert_eq!(
        a.program.relocs[0],
        Reloc::MapValue {
            insn: 1,
            map: 2,
            offset: 0
        }
    );
}

#[test]
fn attached_programs_run_once_and_only_for_the_runner() {
    let fentry = crate::tables::prog_type("fentry").unwrap();
    let op = OpSpec::current_task("t".into());
    // On its own target (reached from the runner's system call or test run) the program
    // checks the thread and that it has not run yet.
    let own = compile(fentry, std::slice::from_ref(&op), &[]).unwrap();
    let prologue = "call bpf_get_current_pid_tgid#14; r1 = *(u64 *)(r9 +24); \
                    if r0 != r1 goto pc+8; r1 = *(u64 *)(r9 +0); if r1 != 0x0 goto pc+6";
    assert_eq!(run(&text(&own), 2, 5), prologue);
    assert!(own.percpu.is_empty());
    // On a hook of the case's choice it also checks the task context.
    let spec = compile_mode(fentry, &[op], &[], Mode::Once, Hook::Any).unwrap();
    assert_eq!(spec.params, [Param::RunnerThread]);
    assert_eq!(
        (spec.slots[0].offset, spec.params_offset, spec.result_size),
        (8, 24, 32)
    );
    let lines = text(&spec);
    // The whole pid_tgid (the runner's thread, not only its process), task context (no
    // interrupt bit of the preempt count), not yet finished.
    let prologue = "call bpf_get_current_pid_tgid#14; r1 = *(u64 *)(r9 +24); \
                    if r0 != r1 goto pc+13; r1 = percpu[preempt_count] ll; \
                    call bpf_this_cpu_ptr#154; r1 = *(u32 *)(r0 +0); \
                    if r1 & 0x7fff0100 goto pc+8; r1 = *(u64 *)(r9 +0); if r1 != 0x0 goto pc+6";
    assert_eq!(run(&lines, 2, 9), prologue);
    let body = "call bpf_get_current_task_btf#158; *(u64 *)(r9 +8) = 1; if r0 == 0x0 goto pc+1; \
                *(u64 *)(r9 +16) = 1; *(u64 *)(r9 +0) = 1; r0 = 0; exit";
    assert_eq!(run(&lines, 12, 7), body);
    assert_eq!(
        helper_names(&spec),
        [
            "bpf_get_current_pid_tgid",
            "bpf_this_cpu_ptr",
            "bpf_get_current_task_btf"
        ]
    );
    assert_eq!(spec.percpu, [&crate::tables::PREEMPT_COUNT]);
    // A perf event program runs in interrupts by design: no task-context check.
    let perf = crate::tables::prog_type("perf_event").unwrap();
    let t = OpSpec::current_task("t".into());
    let spec = compile_mode(perf, &[t], &[], Mode::Count, Hook::Any).unwrap();
    assert!(spec.percpu.is_empty());
    assert!(!any(&text(&spec), |l| l.contains("percpu")));
    assert_eq!(spec.params, [Param::RunnerThread]);
    // A program the runner runs itself has no prologue.
    let syscall = crate::tables::prog_type("syscall").unwrap();
    let spec = compile(syscall, &[OpSpec::current_task("t".into())], &[]).unwrap();
    assert!(spec.params.is_empty());
    assert_eq!(find(&text(&spec), "call bpf_get_current_task_btf#158"), 3);
}

#[test]
fn a_program_for_a_hook_argument_checks_that_task_in_any_context() {
    let fentry = tables::prog_type("fentry").unwrap();
    let op = OpSpec::current_task("t".into());
    let spec = compile_mode(fentry, &[op], &[], Mode::Count, Hook::Arg(1)).unwrap();
    let lines = text(&spec);
    // The hook's task argument, NULL-checked, its pid (a 4-byte load at the offset the
    // kernel's BTF gives at load) against the low half of the triggering thread's pid_tgid;
    // no current task, no preempt count.
    let prologue = "r0 = *(u64 *)(r6 +8); if r0 == 0x0 goto pc+15; \
                    r0 = *(u32 *)(r0 +task_struct->pid); r1 = *(u32 *)(r9 +24); if r0 != r1 goto pc+12";
    assert_eq!(run(&lines, 2, 5), prologue, "{lines:?}");
    assert!(spec.percpu.is_empty());
    assert_eq!(spec.params, [Param::RunnerThread]);
    assert!(!helper_names(&spec).contains(&"bpf_get_current_pid_tgid"));
}
