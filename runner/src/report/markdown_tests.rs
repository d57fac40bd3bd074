use super::*;
use crate::report::matrix::fixture::{obs, sample};

#[test]
fn findings_come_first_and_say_the_discrepancy_in_words() {
    let md = markdown(&sample());
    let at = |h: &str| md.find(h).unwrap_or_else(|| panic!("{h} missing:\n{md}"));
    assert!(at("## Findings") < at("## Cases × kernels"));
    assert!(at("## Cases × kernels") < at("## Kernels"));
    assert!(at("## Kernels") < at("## Expectation failures"));
    assert!(at("## Program types per helper") < at("## Outcomes that differ"));
    assert!(at("## Outcomes that differ") < at("## Changed between adjacent kernels"));
    let findings = &md[at("## Findings")..at("## Cases × kernels")];
    assert_eq!(
        findings,
        "## Findings\n\n\
- **Documentation:** `bpf_task_storage_get` may be called from XDP programs from 6.18 on (not up to 6.12), but its documentation does not list XDP.\n\
- **Expectations:** failing instances: 1 on 6.1.\n\
- **Across kernels, holds only from 6.12 on:** get_flags `flags=0x2`.\n\
- **Between kernels:** 3 instances of 6 measured different things on different kernels; between adjacent kernels: 5.10 → 6.1: 5 newly measured; 6.1 → 6.12: 2 changed; 6.12 → 6.18: 1 changed; 6.18 → host-6.18: 1 no longer measured; host-6.18 → 7.3: 1 changed, 1 newly measured.\n\
- **Measured nothing on 5.10:** 5 instances of 6: `unsupported: map type task_storage` (5), `unsupported: helper bpf_get_current_task_btf (#158) is unknown to this kernel` (2), `unsupported: program type syscall` (1).\n\
- **Measured nothing on host-6.18:** 1 instance of 6: `refused: loading a fentry program (EPERM)` (1).\n\
- **Unusable:** debian:6.16: cannot boot: no kernel image\n\n"
    );
}

#[test]
fn tables_show_kernels_states_and_program_types() {
    let md = markdown(&sample());
    assert!(md.contains("| 6.1 | 6.1.0-56-cloud-amd64 | linux-image-6.1-cloud-amd64 6.1.1-1 | yes | 6 | 8 / 1 | 0 / 0 / 0 | 1 / 1 / 4 |  |\n"), "{md}");
    assert!(md.contains("| host-6.18 | 6.18.0-1-amd64 | the running kernel | yes |"));
    assert!(
        md.contains("| debian:6.16 |  | "),
        "the unusable kernel is in the kernel table"
    );
    assert!(
        md.contains("| case | 5.10 | 6.1 | 6.12 | 6.18 | host-6.18 | 7.3 |\n"),
        "but has no column"
    );
    assert!(
        md.contains("| get_flags | unsup. | FAIL Δ | ok Δ | ok | ok | ok |\n"),
        "{md}"
    );
    assert!(
        md.contains("| odd | ok | ok | ok | ok | ok | error Δ |\n"),
        "{md}"
    );
    assert!(
        md.contains("| xdp | XDP | no | ? | no | no | yes | yes | yes | 6.18 | 6.12 |\n"),
        "{md}"
    );
    assert!(
        md.contains("| fentry | TRACING | yes | ? | yes | yes | yes | ? | yes | 6.1 |  |\n"),
        "{md}"
    );
    assert!(md.contains("| syscall | SYSCALL | yes | ? | yes |"), "{md}");
    assert!(
        md.contains("| fentry | TRACING |  | gone | yes | yes | yes | ? | yes | 6.1 | 5.10 |\n"),
        "{md}"
    );
}

#[test]
fn differences_come_as_ranges_and_changes_as_results() {
    let md = markdown(&sample());
    assert!(md.contains(
        "### program_types — 1 of 3 instances\n\n- `prog=xdp`\n  - 5.10: `st=unsupported(map type task_storage) load#1=unsupported(helper bpf_get_current_task_btf (#158) is unknown to this kernel) load#2=unsupported(map type task_storage)`\n  - 6.1: `load#1=ok current_task=ptr load#2=rejected(EINVAL: unknown func bpf_task_storage_get#156)`\n"
    ), "{md}");
    assert!(md.contains("  - 6.18 – 7.3: `load#1=ok current_task=ptr load#2=ok get=ptr:0x7`\n"));
    assert!(md.contains("- 6.1 → 6.12: 2 changed\n  - program_types `prog=xdp`: `load#2: rejected(EINVAL: unknown func bpf_task_storage_get#156) → rejected(EINVAL: program of this type cannot use helper bpf_task_storage_get#156)`\n  - get_flags `flags=0x2`: `get: ptr:0x0 → NULL`\n"), "{md}");
    assert!(md.contains("  - program_types `prog={xdp,fentry}`: measured on 6.1, not on 5.10 (unsupported: map type task_storage; unsupported: helper bpf_get_current_task_btf (#158) is unknown to this kernel)\n  - get_flags `every instance`: measured on 6.1, not on 5.10 (unsupported: map type task_storage)\n"), "{md}");
    assert!(md.contains("- 6.18 → host-6.18: 1 no longer measured\n  - program_types `prog=fentry`: measured on 6.18, not on host-6.18 (refused: loading a fentry program (EPERM))\n"));
    assert!(
        md.contains("  - odd `x=<b>&\"'`: `load=ok → error(reading the result map: EFAULT)`\n"),
        "{md}"
    );
    assert!(md.contains("### 6.1 — 1 instance\n\n- get_flags `flags=0x2`: get: expected NULL, got ptr:0x0 (unknown flags are refused)\n"), "{md}");
    assert!(md.ends_with("3 instances of 6 measured the same on every kernel where they measured anything (program_types 2 of 3, get_flags 1 of 2, odd 0 of 1); 0 measured nothing anywhere.\n"), "{md}");
}

#[test]
fn kernels_with_the_same_failures_share_a_heading() {
    let mut r = sample();
    for k in &mut r.kernels {
        if ["6.12", "6.18"].contains(&k.identity.label.as_str()) {
            let i = k
                .instances
                .iter_mut()
                .find(|i| i.observation.id == "get_flags/flags=0x0")
                .unwrap();
            i.verdict = crate::results::VerdictKind::Fail;
            i.failures = vec!["get: expected NULL, got ptr:0x1".into()];
        }
    }
    let md = markdown(&r);
    assert!(
        md.contains("failing instances: 1 on 6.1; 1 on each of 6.12 – 6.18.\n"),
        "{md}"
    );
    assert!(md.contains("### 6.12 – 6.18 — 1 instance, the same on each\n\n- get_flags `flags=0x0`: get: expected NULL, got ptr:0x1\n"), "{md}");
}

#[test]
fn the_same_observations_give_the_same_bytes() {
    let r = sample();
    let md = markdown(&r);
    assert_eq!(markdown(&r), md);
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(markdown(&back), md);
    // Timings are not observations.
    let mut t = r.clone();
    for k in &mut t.kernels {
        k.timings.clear();
    }
    assert_eq!(markdown(&t), md);
    assert!(!md.contains("tcg"));
}

#[test]
fn text_survives_markdown() {
    assert_eq!(code("a`b"), "`` a`b ``");
    assert_eq!(code("x\ny"), "`x y`");
    assert_eq!(cell("a|b"), "a\\|b");
    assert_eq!(
        text("a*b_c _d ptr_) <x> | [l](u) \\"),
        "a\\*b_c \\_d ptr\\_) \\<x\\> \\| \\[l\\](u) \\\\"
    );
    let md = markdown(&sample());
    assert!(
        md.contains("`x=<b>&\"'`"),
        "ids are shown as code, not HTML"
    );
}

#[test]
fn instances_the_same_everywhere_are_counted() {
    let mut r = sample();
    let k = r
        .kernels
        .iter_mut()
        .find(|k| k.identity.label == "7.3")
        .unwrap();
    let odd = k.instances.iter_mut().find(|i| i.case == "odd").unwrap();
    odd.observation = obs(
        &odd.observation.id,
        vec![("load", crate::exec::Res::Loaded)],
    );
    let md = markdown(&r);
    assert!(md.ends_with("4 instances of 6 measured the same on every kernel where they measured anything (program_types 2 of 3, get_flags 1 of 2, odd 1 of 1); 0 measured nothing anywhere.\n"), "{md}");
    assert!(!md.contains("### odd"), "{md}");
}

#[test]
fn renders_a_cut_of_a_real_run() {
    let r = crate::report::matrix::tests::real();
    let md = markdown(&r);
    assert!(md.starts_with("# Conformance: 3 cases, 5 instances, 11 kernels\n"));
    assert!(md.contains("- **Documentation:** `bpf_task_storage_get` and `bpf_task_storage_delete` may be called from XDP programs from 6.16 on (not up to 6.12), but their documentation does not list XDP.\n"), "{md}");
    assert!(md.contains(
        "| case | 5.10 | 6.1 | 6.12 | 6.16 | 6.17 | 6.18 | host-6.18 | 6.19 | 7.0 | 7.2 | 7.3 |\n"
    ));
    assert!(md.contains("  - 6.1 – 6.12: `load=rejected(EINVAL: invalid indirect access to stack R3 off=-7 size=8) st.lookup=ENOENT`\n  - 6.16 – 7.3: `load=rejected(EINVAL: invalid read from stack R3 off=-7 size=8) st.lookup=ENOENT`\n"), "{md}");
    assert!(md.contains("- 6.19 → 7.0: 1 changed\n  - recursion_update `outer=syscall`: `outer_get_a: ptr:0xc8 → NULL;"), "{md}");
    assert!(md.contains("### 6.16 – 7.3 — 1 instance, the same on each\n"));
    assert!(md.contains("| xdp | XDP | no | ? | no | no | yes | yes | yes | yes | yes | yes | yes | yes | 6.16 | 6.12 |\n"), "{md}");
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(markdown(&back), md);
}
