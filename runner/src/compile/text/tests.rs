use super::*;
use crate::compile::asm::Insn;

fn maps(name: &str) -> Result<usize, String> {
    match name {
        "st" => Ok(0),
        "other" => Ok(1),
        _ => Err(format!("no map `{name}` (maps: other, st)")),
    }
}

fn insns(text: &str) -> Vec<Insn> {
    parse(&[text], &maps).unwrap().program.insns
}

fn bytes(text: &str) -> String {
    let p = parse(&[text], &maps).unwrap().program;
    let parts: Vec<String> = p.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

fn error(text: &str) -> (usize, usize, String) {
    let e = parse(&[text], &maps).unwrap_err();
    (e.line, e.column, e.message)
}

#[test]
fn every_form_encodes_as_the_kernel_expects() {
    let cases = [
        ("r0 = 0", "b7 00 00 00 00 00 00 00"),
        ("exit", "95 00 00 00 00 00 00 00"),
        ("r1 = r10", "bf a1 00 00 00 00 00 00"),
        ("r1 += -8", "07 01 00 00 f8 ff ff ff"),
        ("r2 -= r3", "1f 32 00 00 00 00 00 00"),
        ("r3 *= 3", "27 03 00 00 03 00 00 00"),
        ("r3 /= 2", "37 03 00 00 02 00 00 00"),
        ("r3 %= 2", "97 03 00 00 02 00 00 00"),
        ("r4 |= 0xff", "47 04 00 00 ff 00 00 00"),
        ("r4 &= r5", "5f 54 00 00 00 00 00 00"),
        ("r4 ^= 1", "a7 04 00 00 01 00 00 00"),
        ("r4 <<= 32", "67 04 00 00 20 00 00 00"),
        ("r4 >>= 32", "77 04 00 00 20 00 00 00"),
        ("r4 s>>= 1", "c7 04 00 00 01 00 00 00"),
        ("r4 = -r4", "87 04 00 00 00 00 00 00"),
        ("w1 = w2", "bc 21 00 00 00 00 00 00"),
        ("w1 += 1", "04 01 00 00 01 00 00 00"),
        ("w1 = 0xffffffff", "b4 01 00 00 ff ff ff ff"),
        (
            "r1 = 0x1122334455667788",
            "18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11",
        ),
        (
            "r1 = 1 ll",
            "18 01 00 00 01 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            "r1 = 0xffffffff",
            "18 01 00 00 ff ff ff ff 00 00 00 00 00 00 00 00",
        ),
        ("r1 = -1", "b7 01 00 00 ff ff ff ff"),
        (
            "r1 = map[st]",
            "18 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            "r1 = map[other] ll",
            "18 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            "r2 = map[st]+16",
            "18 22 00 00 00 00 00 00 00 00 00 00 10 00 00 00",
        ),
        ("*(u64 *)(r10 -8) = r1", "7b 1a f8 ff 00 00 00 00"),
        ("*(u32 *)(r10 - 0x4) = w1", "63 1a fc ff 00 00 00 00"),
        ("*(u16 *)(r10 -2) = 7", "6a 0a fe ff 07 00 00 00"),
        ("*(u8 *)(r10 -1) = -1", "72 0a ff ff ff ff ff ff"),
        ("r0 = *(u32 *)(r1 +0)", "61 10 00 00 00 00 00 00"),
        ("r0 = *(u8 *)(r1 + 3)", "71 10 03 00 00 00 00 00"),
        ("r0 = *(u64 *)(r1)", "79 10 00 00 00 00 00 00"),
        ("lock *(u64 *)(r1 +0) += r2", "db 21 00 00 00 00 00 00"),
        ("lock *(u32 *)(r1 +8) |= w2", "c3 21 08 00 40 00 00 00"),
        ("lock *(u64 *)(r1 +0) ^= r2", "db 21 00 00 a0 00 00 00"),
        ("call bpf_task_storage_get", "85 00 00 00 9c 00 00 00"),
        ("call bpf_task_storage_get#156", "85 00 00 00 9c 00 00 00"),
        ("call 158", "85 00 00 00 9e 00 00 00"),
        ("call #1", "85 00 00 00 01 00 00 00"),
        ("call kfunc bpf_task_from_pid", "85 20 00 00 00 00 00 00"),
        ("call bpf_task_acquire#12345", "85 20 00 00 00 00 00 00"),
        // Lines as the verifier log and llvm-objdump print them.
        ("  3: (b7) r0 = 0", "b7 00 00 00 00 00 00 00"),
        (
            "12: (85) call bpf_get_current_task_btf#158",
            "85 00 00 00 9e 00 00 00",
        ),
        (
            "       0:\tb7 00 00 00 00 00 00 00\tr0 = 0x0",
            "b7 00 00 00 00 00 00 00",
        ),
        ("r0 = 0 // a comment", "b7 00 00 00 00 00 00 00"),
    ];
    for (text, expected) in cases {
        assert_eq!(bytes(text), expected, "{text}");
    }
}

#[test]
fn jumps_by_offset_and_label() {
    let text = "if r0 == 0x0 goto +2\nif r1 s< r2 goto pc+1\n  goto out\nr0 = 1 ll\nout: if w3 != 5 goto -5\nexit";
    let p = insns(text);
    assert_eq!(p.len(), 7);
    assert_eq!(
        [
            (p[0].code, p[0].off),
            (p[1].code, p[1].off),
            (p[2].code, p[2].off)
        ],
        [(0x15, 2), (0xcd, 1), (0x05, 2)]
    );
    // `if w3 != 5` is JMP32 (class 6); -5 from slot 5 goes back to slot 1.
    assert_eq!((p[5].code, p[5].off, p[5].imm), (0x56, -5, 5));
    let objdump = insns("if r1 > 0xffffffff goto +0x1 <LBB0_2>\nr0 = 0\nLBB0_2:\nexit");
    assert_eq!(
        (objdump[0].code, objdump[0].off, objdump[0].imm),
        (0x25, 1, -1)
    );
    // A label may stand before the last instruction's end: a jump to the end of the program.
    let end = insns("goto end\nexit\nend:");
    assert_eq!(end[0].off, 1);
    let t = parse(&["r0 = 0", "exit"], &maps).unwrap();
    assert_eq!(t.program.insns.len(), 2, "a list of lines");
    let calls = parse(
        &["call bpf_get_current_task_btf\ncall kfunc bpf_task_from_pid\ncall 158\nexit"],
        &maps,
    )
    .unwrap();
    assert_eq!(calls.helpers, [helper_by_id(158).unwrap()]);
    assert_eq!(calls.kfuncs, ["bpf_task_from_pid"]);
    assert_eq!(
        calls.program.relocs,
        [asm::Reloc::Kfunc {
            insn: 1,
            name: "bpf_task_from_pid".into()
        }]
    );
}

#[test]
fn what_the_show_command_prints_parses_back() {
    let text = "r1 = r10\nr1 += -8\n*(u64 *)(r10 -8) = r1\nr2 = map[st]\nif r0 == 0x0 goto +2\ncall bpf_task_storage_get\nlock *(u64 *)(r1 +0) += r2\nif w1 s<= 0x3 goto -3\nexit";
    let first = parse(&[text], &maps).unwrap().program;
    let shown = first.disassemble(&|id| helper_by_id(id).map(|h| h.name), &|m| {
        ["st"][m].into()
    });
    let lines: Vec<&str> = shown.iter().map(String::as_str).collect();
    let again = parse(&lines, &maps).unwrap().program;
    assert_eq!(first, again, "{shown:#?}");
}

#[test]
fn errors_point_at_the_line_and_column() {
    let cases: [(&str, (usize, usize, &str)); 20] = [
        ("r0 = 0\nr11 = 1", (2, 1, "no register `r11` (r0 to r10)")),
        (
            "r0 = 0\n  bogus",
            (2, 3, "expected an instruction, found `bogus`"),
        ),
        (
            "r0 = 0; exit",
            (
                1,
                7,
                "one instruction per line (`;` only starts a comment line)",
            ),
        ),
        ("r10 = 1", (1, 1, "r10, the frame pointer, is read-only")),
        ("r1 = map[nope]", (1, 10, "no map `nope` (maps: other, st)")),
        (
            "r0 = *(u128 *)(r1 +0)",
            (1, 8, "`u128` is not a size (u8, u16, u32, u64)"),
        ),
        (
            "r0 = *(u32 *)(r1 +70000)",
            (1, 18, "offset 70000 does not fit 16 bits"),
        ),
        (
            "r1 += 0x100000000",
            (1, 7, "4294967296 does not fit a 32-bit immediate"),
        ),
        (
            "r1 = w2",
            (1, 6, "r and w registers do not mix in one instruction"),
        ),
        (
            "if r0 = 0 goto +1",
            (
                1,
                7,
                "expected a comparison (== != > >= < <= s> s>= s< s<= &)",
            ),
        ),
        ("if r0 == 0 +1", (1, 12, "expected `goto`, found `+`")),
        (
            "goto nowhere\nexit\nout:",
            (1, 6, "no label `nowhere` (labels: out)"),
        ),
        (
            "goto +5\nexit",
            (1, 6, "jumps to slot 6, outside the program (0 to 2)"),
        ),
        (
            "goto +1\nr1 = 1 ll\nexit",
            (1, 6, "jumps to slot 2, the second half of a ld_imm64"),
        ),
        ("a:\na:", (2, 1, "label `a` is defined twice")),
        (
            "call bpf_nope",
            (
                1,
                6,
                "unknown helper `bpf_nope` (for a kernel function: `call kfunc bpf_nope`)",
            ),
        ),
        ("call 99999", (1, 6, "no helper #99999 in the UAPI")),
        (
            "call bpf_task_storage_get#157",
            (1, 6, "helper bpf_task_storage_get is #156, not #157"),
        ),
        (
            "lock *(u8 *)(r1 +0) += r2",
            (1, 1, "atomic operations are u32 or u64"),
        ),
        (
            "exit now",
            (1, 6, "expected the end of the instruction, found `now`"),
        ),
    ];
    for (text, (line, column, message)) in cases {
        assert_eq!(error(text), (line, column, message.to_string()), "{text}");
    }
    let e = parse(&["r0 = 0", "r0 = $"], &maps).unwrap_err();
    assert_eq!(e.to_string(), "asm line 2, column 6: unexpected `$`");
}

#[test]
fn a_text_program_becomes_a_program_spec() {
    let pt = crate::tables::prog_type("raw_tp").unwrap();
    let t = parse(&["call bpf_get_current_task_btf", "r0 = 0", "exit"], &maps).unwrap();
    let s = spec(pt, &t);
    assert_eq!(s.program.insns.len(), 3);
    assert_eq!(s.helpers.iter().map(|h| h.id).collect::<Vec<_>>(), [158]);
    assert!(s.slots.is_empty() && s.params.is_empty());
    assert_eq!(s.result_size, 8);
    assert!(ALL_HELPERS.len() > 200, "the UAPI has over 200 helpers");
    assert_eq!(helper_by_name("bpf_map_lookup_elem").map(|h| h.id), Some(1));
}
