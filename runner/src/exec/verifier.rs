//! The key line of a verifier log, normalized so that snapshots stay stable: the error line the
//! verifier printed last, with kernel addresses and object ids redacted.

/// The last `n` lines of a verifier log, each [`normalize`]d (addresses and ids redacted), so
/// the same kernel gives the same text on every run.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| normalize(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the verifier said about why it refused the program: the lines after the last
/// instruction of its trace (one or two, e.g. "invalid access to map value, value_size=8 off=8
/// size=8; R1 min value is outside of the allowed memory range"), joined with "; ".
pub fn key_line(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    // Everything from "processed N insns" on is statistics; 7.3+ appends a
    // "Verification failed … Suggestion" block after it.
    let end = lines
        .iter()
        .position(|l| l.starts_with("processed ") && l.contains(" insns"))
        .unwrap_or(lines.len());
    let body = &lines[..end];
    let is_trace = |l: &str| {
        let digits = l.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && l[digits..].starts_with(':')
    };
    let start = body
        .iter()
        .rposition(|l| is_trace(l))
        .map_or(body.len(), |i| i + 1);
    let mut msg: Vec<&str> = body[start..]
        .iter()
        .copied()
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("-- END PROG LOAD LOG --")
                && !l.starts_with("Verification failed")
        })
        .collect();
    // 7.3+ explains the error in a block ("Reason:", "At:", "Suggestion:" …) that quotes
    // instructions; the error itself is what comes before it.
    if let Some(i) = msg.iter().position(|l| EXPLANATION.contains(l)) {
        msg.truncate(i);
    }
    if msg.is_empty() {
        // No trace (e.g. a refusal before verification): the last meaningful line.
        msg = body
            .iter()
            .rev()
            .copied()
            .filter(|l| !l.is_empty())
            .take(1)
            .collect();
    }
    normalize(&msg.join("; "))
}

/// Headings of the explanation block newer verifiers append to an error.
const EXPLANATION: &[&str] = &[
    "Reason:",
    "At:",
    "Causal path:",
    "Instruction context:",
    "Suggestion:",
];

/// Redacts what differs between runs of the same kernel: hex addresses and `id=N`.
pub fn normalize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'0' && b.get(i + 1) == Some(&b'x') {
            let start = i + 2;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j - start >= 8 {
                out.push_str("0x…");
                i = j;
                continue;
            }
        }
        if line[i..].starts_with("id=")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'_')
        {
            let mut j = i + 3;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 3 {
                out.push_str("id=N");
                i = j;
                continue;
            }
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_without_addresses() {
        let log = "0: (b7) r0 = 0\n1: R1=0xffff888003a1b2c0 R2=0xffff\n25: (18) r1 = 0xff7957fc80600000\n2: exit\n";
        assert_eq!(
            tail(log, 3),
            "1: R1=0x… R2=0xffff\n25: (18) r1 = 0x…\n2: exit"
        );
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn picks_the_error_line_before_statistics() {
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (b7) r0 = 0\n1: (79) r2 = *(u64 *)(r0 +0)\nR0 invalid mem access 'scalar'\nprocessed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(key_line(log), "R0 invalid mem access 'scalar'");
    }

    #[test]
    fn joins_a_two_line_message() {
        let log = "10: (79) r2 = *(u64 *)(r1 +8)\ninvalid access to map value, value_size=8 off=8 size=8\nR1 min value is outside of the allowed memory range\nprocessed 11 insns (limit 1000000)\n";
        assert_eq!(
            key_line(log),
            "invalid access to map value, value_size=8 off=8 size=8; R1 min value is outside of the allowed memory range"
        );
    }

    #[test]
    fn ignores_the_suggestion_block() {
        let log = "5: (85) call bpf_task_storage_get#156\ncannot pass map_type 1 into func bpf_task_storage_get#156\nprocessed 6 insns (limit 1000000)\n\nVerification failed at insn 5\nSuggestion: use a task storage map\n";
        assert_eq!(
            key_line(log),
            "cannot pass map_type 1 into func bpf_task_storage_get#156"
        );
    }

    #[test]
    fn drops_the_explanation_block() {
        let log = "9: (85) call bpf_task_storage_get#156\nR2 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_\nReason:\nThe second argument (R2) to bpf_task_storage_get does not satisfy the verifier contract\nAt:\ninsn 9\n | ^-- error\nSuggestion:\nPass a pointer.\nprocessed 12 insns (limit 1000000)\n";
        assert_eq!(
            key_line(log),
            "R2 type=scalar expected=ptr_, trusted_ptr_, rcu_ptr_"
        );
    }

    #[test]
    fn without_statistics_takes_the_last_line() {
        assert_eq!(
            key_line("a\nunknown func bpf_x#1\n\n"),
            "unknown func bpf_x#1"
        );
        assert_eq!(key_line(""), "");
    }

    #[test]
    fn redacts_addresses_and_ids() {
        assert_eq!(
            normalize("R1 map_ptr=0xffff888003a4c000 id=17 ref_obj_id=3 off=0x10"),
            "R1 map_ptr=0x… id=N ref_obj_id=3 off=0x10"
        );
        assert_eq!(normalize("émoji ok"), "émoji ok");
    }
}
