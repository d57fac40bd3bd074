use super::*;
use crate::exec::Res;
use crate::report::status::fixture::*;
use crate::results::{InstanceResult, VerdictKind};

fn auto() -> DiffSel {
    DiffSel::default()
}

fn sel(a: &str, b: &str) -> DiffSel {
    DiffSel {
        a_kernel: Some(a.into()),
        b_kernel: Some(b.into()),
    }
}

/// `n` passing instances of case `c`: `c/i=0` … with `get=NULL`.
fn many(n: usize) -> Vec<InstanceResult> {
    (0..n)
        .map(|i| ran(&format!("c/i={i}"), VerdictKind::Pass))
        .collect()
}

#[test]
fn identical_runs_have_no_differences() {
    let r = everything();
    let d = diff(&r, &r.clone(), auto()).unwrap();
    assert_eq!(
        d,
        Diff {
            text: "no differences (3 kernel pairs, 14 instances)\n".into(),
            changed: false
        }
    );
}

#[test]
fn two_runs_show_what_changed_on_each_kernel() {
    let a = results(vec![
        kernel("debian:6.1", many(10)),
        kernel("debian:7.3", many(10)),
    ]);
    let mut b = a.clone();
    let changed = &mut b.kernels[1].instances[5];
    changed.observation.results = vec![(
        "get".into(),
        Res::Ptr {
            bytes: vec![1],
            total: 8,
        },
    )];
    changed.verdict = VerdictKind::Fail;
    let d = diff(&a, &b, auto()).unwrap();
    assert!(d.changed);
    let want = "\
=== A 6.1 (debian:6.1: 6.1.0-56-cloud-amd64, 6.1.192-2) | B 6.1 (debian:6.1: 6.1.0-56-cloud-amd64, 6.1.192-2)
no differences
=== A 7.3 (debian:7.3: 7.3.0-56-cloud-amd64, 7.3.192-2) | B 7.3 (debian:7.3: 7.3.0-56-cloud-amd64, 7.3.192-2)
--- A 7.3: c
+++ B 7.3: c
@@ -5,3 +5,3 @@
 i=4 → get=NULL  [pass]
-i=5 → get=NULL  [pass]
+i=5 → get=ptr:0x1,+7 bytes  [fail]
 i=6 → get=NULL  [pass]
1 instance changed, 0 only in A, 0 only in B
";
    assert_eq!(d.text, want);
}

#[test]
fn two_kernels_pair_when_each_file_has_one() {
    let a = everything();
    let only = |r: &crate::results::Results, i: usize| {
        let mut x = r.clone();
        x.kernels = vec![r.kernels[i].clone()];
        x
    };
    let d = diff(&only(&a, 0), &only(&a, 1), auto()).unwrap();
    assert!(d.changed);
    assert!(d.text.starts_with("=== A 6.1 (debian:6.1"), "{}", d.text);
    // 6.1 fails where 7.3 passes; 6.1 had a kernel problem and an instance that never reported.
    assert!(
        d.text.contains(
            "-flags=0x1/value=null → get=NULL  [fail]\n+flags=0x1/value=null → get=NULL  [pass]\n"
        ),
        "{}",
        d.text
    );
    assert!(
        d.text.contains("--- A 6.1: kernel\n+++ B 7.3: kernel\n"),
        "{}",
        d.text
    );
    assert!(d
        .text
        .contains("-did not report: get_flags/flags=u64::MAX/value=null\n"));
    assert!(
        d.text
            .ends_with("1 instance changed, 0 only in A, 0 only in B; 1 kernel changed state\n"),
        "{}",
        d.text
    );
    // The same pair, chosen explicitly in one file, by label and by spec.
    let by_label = diff(&a, &a, sel("6.1", "7.3")).unwrap();
    let by_spec = diff(&a, &a, sel("debian:6.1", "debian:7.3")).unwrap();
    assert_eq!(by_label, d);
    assert_eq!(by_spec, d);
}

#[test]
fn one_choice_names_the_kernel_on_both_sides() {
    let a = everything();
    let mut b = a.clone();
    b.kernels[0].problems.clear();
    let d = diff(
        &a,
        &b,
        DiffSel {
            a_kernel: None,
            b_kernel: Some("6.1".into()),
        },
    )
    .unwrap();
    assert!(d.changed);
    assert!(d.text.contains("-problem: WARNING"), "{}", d.text);
    assert_eq!(d.text.matches("=== ").count(), 1, "only the chosen pair");
}

#[test]
fn instances_only_on_one_side_are_counted() {
    let a = results(vec![kernel("debian:6.1", many(4))]);
    let mut b = a.clone();
    b.kernels[0].instances.remove(0);
    b.kernels[0]
        .instances
        .push(ran("d/x=1", VerdictKind::NoRule));
    let d = diff(&a, &b, auto()).unwrap();
    assert!(
        d.text
            .contains("--- A 6.1: c\n+++ B 6.1: c\n@@ -1,2 +1 @@\n-i=0 → get=NULL  [pass]\n i=1"),
        "{}",
        d.text
    );
    assert!(
        d.text
            .contains("--- A 6.1: d\n+++ B 6.1: d\n@@ -0,0 +1 @@\n+x=1 → get=NULL  [no_rule]\n"),
        "{}",
        d.text
    );
    assert!(
        d.text
            .ends_with("0 instances changed, 1 only in A, 1 only in B\n"),
        "{}",
        d.text
    );
}

#[test]
fn kernels_pair_by_label_and_the_rest_is_listed() {
    let a = results(vec![
        kernel("debian:6.1", many(2)),
        kernel("debian:6.12", many(2)),
    ]);
    let b = results(vec![
        kernel("debian:7.3", many(2)),
        kernel("debian:6.1", many(2)),
    ]);
    let d = diff(&a, &b, auto()).unwrap();
    assert!(d.changed);
    assert!(
        d.text.contains("=== only in A: 6.12 (debian:6.12"),
        "{}",
        d.text
    );
    assert!(
        d.text.contains("=== only in B: 7.3 (debian:7.3"),
        "{}",
        d.text
    );
    assert!(d.text.ends_with("0 instances changed, 0 only in A, 0 only in B; 1 kernel only in A; 1 kernel only in B\n"), "{}", d.text);
    let c = results(vec![
        kernel("debian:5.10", many(1)),
        kernel("debian:6.12", many(1)),
    ]);
    let e = diff(&b, &c, auto()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "A and B have no kernel label in common (A: 7.3, 6.1; B: 5.10, 6.12); choose the kernels to compare"
    );
}

#[test]
fn a_kernel_that_is_not_there_or_not_one_is_an_error() {
    let a = everything();
    let e = diff(&a, &a, sel("6.2", "7.3")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no kernel `6.2` in A (its kernels: 6.1, 7.3, debian:9.9)"
    );
    let mut twice = kernel("/boot/vmlinuz", many(1));
    twice.identity.label = "6.1".into();
    let b = results(vec![kernel("debian:6.1", many(1)), twice]);
    let e = diff(&a, &b, sel("6.1", "6.1")).unwrap_err();
    assert!(
        matches!(
            e,
            DiffError::Ambiguous {
                side: "B",
                count: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(diff(&a, &b, sel("6.1", "/boot/vmlinuz")).is_ok());
    // Same labels twice in both files pair by label and spec.
    assert!(!diff(&b, &b.clone(), auto()).unwrap().changed);
}

#[test]
fn only_a_little_context_is_shown() {
    let a = results(vec![kernel("debian:6.1", many(50))]);
    let mut b = a.clone();
    b.kernels[0].instances[10].verdict = VerdictKind::Fail;
    b.kernels[0].instances[40].verdict = VerdictKind::NoRule;
    let d = diff(&a, &b, auto()).unwrap();
    assert_eq!(d.text.matches("@@ ").count(), 2, "{}", d.text);
    for far in ["i=0 ", "i=20 ", "i=49 "] {
        assert!(!d.text.contains(far), "{far} in {}", d.text);
    }
    assert!(d.text.contains(" i=9 ") && d.text.contains(" i=11 "));
    assert!(d
        .text
        .ends_with("2 instances changed, 0 only in A, 0 only in B\n"));
}

#[test]
fn identities_are_shown_not_counted() {
    let a = results(vec![kernel("debian:6.1", many(3))]);
    let mut b = a.clone();
    b.kernels[0].identity.release = Some("6.1.0-57-cloud-amd64".into());
    b.kernels[0].timings.clear();
    let d = diff(&a, &b, auto()).unwrap();
    assert!(!d.changed, "{}", d.text);
}
