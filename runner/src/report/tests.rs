use super::*;
use crate::exec::{Observation, Outcome, Res};

fn obs(results: Vec<(&str, Res)>) -> Observation {
    Observation {
        id: "case/flags=0x1".into(),
        outcome: Outcome::Ran,
        results: results
            .into_iter()
            .map(|(n, r)| (n.to_string(), r))
            .collect(),
        logs: Vec::new(),
    }
}

#[test]
fn renders_each_kind_of_result() {
    let cases = [
        (Res::Created { value_size: None }, "ok"),
        (
            Res::Created {
                value_size: Some(65407),
            },
            "ok(value_size=65407)",
        ),
        (
            Res::Err {
                errno: "ENOENT".into(),
            },
            "ENOENT",
        ),
        (
            Res::Rejected {
                errno: "EACCES".into(),
                line: "R1 invalid mem access 'scalar'".into(),
            },
            "rejected(EACCES: R1 invalid mem access 'scalar')",
        ),
        (
            Res::Ptr {
                bytes: 0x1122334455667788u64.to_le_bytes().to_vec(),
                total: 8,
            },
            "ptr:0x1122334455667788",
        ),
        (
            Res::Ptr {
                bytes: vec![0; 64],
                total: 100,
            },
            "ptr:0x0*8,+36 bytes",
        ),
        (Res::Null, "NULL"),
        (Res::Ret { value: -2 }, "-ENOENT"),
        (Res::Ret { value: 0 }, "0"),
        (Res::Ret { value: -5000 }, "-5000"),
        (Res::Nonzero, "nonzero"),
        (Res::Branch { then: true }, "then"),
        (Res::Branch { then: false }, "else"),
        (
            Res::Value {
                bytes: vec![0x11, 0x22, 0x33, 0x44],
            },
            "0x44332211",
        ),
        (
            Res::Value {
                bytes: vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0],
            },
            "0x1,0x2",
        ),
        (Res::SkippedNull, "skipped(NULL)"),
        (Res::NoTask, "no-task"),
        (Res::NotReached, "not-reached"),
        (Res::PtrUninit { total: 8 }, "ptr:(uninit)"),
        (Res::Uninit, "(uninit)"),
        (
            Res::RunFailed {
                errno: "EINVAL".into(),
            },
            "run-failed(EINVAL)",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(render(&r), want, "{r:?}");
    }
}

#[test]
fn a_line_hides_scenery_but_not_failures() {
    let o = obs(vec![
        ("spawn:c", Res::Ok),
        ("load", Res::Loaded),
        ("get", Res::Null),
        (
            "exit:c",
            Res::Err {
                errno: "ESRCH".into(),
            },
        ),
    ]);
    assert_eq!(line(&o, None), "flags=0x1 → load=ok get=NULL exit:c=ESRCH");
    let mut u = o.clone();
    u.outcome = Outcome::Unsupported {
        reason: "map type task_storage".into(),
    };
    assert_eq!(
        line(&u, None),
        "flags=0x1 → unsupported(map type task_storage)"
    );
    u.outcome = Outcome::Refused {
        errno: "EPERM".into(),
        what: "loading a syscall program".into(),
    };
    assert_eq!(
        line(&u, None),
        "flags=0x1 → refused(EPERM: loading a syscall program)"
    );
}

fn instance(rules: Vec<(&str, &str)>) -> crate::case::Instance {
    let src = r#"{ "about": "a", "maps": { "st": { "type": "task_storage", "value_size": 8 } },
        "steps": [ { "prog": [ { "get": { "map": "st", "task": "current", "flags": 1 } } ] } ] }"#;
    let mut c = crate::case::parse(std::path::Path::new("case.json"), src).expect("valid");
    let mut i = c.instances.remove(0);
    i.rules = rules
        .into_iter()
        .map(|(r, p)| crate::case::Rule {
            result: r.into(),
            pattern: p.into(),
            because: Some("doc".into()),
            group: 0,
            kernel: None,
        })
        .collect();
    i
}

#[test]
fn verdicts_compare_rendered_results_with_globs() {
    let o = obs(vec![
        ("load", Res::Loaded),
        (
            "get",
            Res::Ptr {
                bytes: vec![0; 8],
                total: 8,
            },
        ),
    ]);
    assert_eq!(verdict(&instance(vec![]), &o, None), Verdict::NoRule);
    assert_eq!(
        verdict(&instance(vec![("get", "ptr:*"), ("load", "ok")]), &o, None),
        Verdict::Pass
    );
    assert_eq!(
        verdict(
            &instance(vec![("get", "NULL"), ("missing", "ok")]),
            &o,
            None
        ),
        Verdict::Fail(vec![
            "get: expected NULL, got ptr:0x0 (doc)".into(),
            "missing: expected ok, got absent (doc)".into()
        ])
    );
    let mut not_run = o.clone();
    not_run.outcome = Outcome::Refused {
        errno: "EPERM".into(),
        what: "x".into(),
    };
    assert_eq!(
        verdict(&instance(vec![("get", "NULL")]), &not_run, None),
        Verdict::NotRun
    );
}

#[test]
fn summary_counts_programs_outcomes_and_verdicts() {
    let mut s = Summary::default();
    s.add(&obs(vec![("load", Res::Loaded)]), &Verdict::Pass);
    s.add(
        &obs(vec![(
            "load",
            Res::Rejected {
                errno: "EACCES".into(),
                line: String::new(),
            },
        )]),
        &Verdict::Fail(vec![]),
    );
    let mut u = obs(vec![]);
    u.outcome = Outcome::Unsupported { reason: "x".into() };
    s.add(&u, &Verdict::NotRun);
    assert_eq!(
        s.to_string(),
        "3 instances: programs 1 accepted, 1 rejected; 1 unsupported, 0 refused, 0 errors; expectations 1 pass, 1 fail, 0 without rule"
    );
}

#[test]
fn an_unsupported_step_makes_its_expect_entry_not_applicable() {
    let o = obs(vec![
        (
            "load",
            Res::Unsupported {
                reason: "kfunc bpf_task_from_pid".into(),
            },
        ),
        ("get", Res::Unavailable),
        (
            "st.lookup",
            Res::Err {
                errno: "ENOENT".into(),
            },
        ),
    ]);
    // Entry 0 names the unsupported get (and a lookup that depends on it); entry 1 does not.
    let mut i = instance(vec![
        ("get", "ptr:*"),
        ("st.lookup", "0x0"),
        ("st.lookup", "ENOENT"),
    ]);
    i.rules[2].group = 1;
    assert_eq!(verdict(&i, &o, None), Verdict::Pass);
    i.rules[2].pattern = "0x1".into();
    assert!(matches!(verdict(&i, &o, None), Verdict::Fail(f) if f.len() == 1));
    i.rules.truncate(2);
    assert_eq!(verdict(&i, &o, None), Verdict::NotRun);
    assert_eq!(
        line(&o, None),
        "flags=0x1 → load=unsupported(kfunc bpf_task_from_pid) st.lookup=ENOENT"
    );
    let mut s = Summary::default();
    s.add(&o, &Verdict::NotRun);
    assert_eq!((s.unsupported, s.accepted), (1, 0));
}

fn with_rules(src: &str, rules: Vec<(&str, &str)>) -> crate::case::Instance {
    let mut c = crate::case::parse(std::path::Path::new("case.json"), src).expect("valid");
    let mut i = c.instances.remove(0);
    i.rules = rules
        .into_iter()
        .map(|(r, p)| crate::case::Rule {
            result: r.into(),
            pattern: p.into(),
            because: None,
            group: 0,
            kernel: None,
        })
        .collect();
    i
}

fn fails(i: &crate::case::Instance, o: &Observation) -> Vec<String> {
    match verdict(i, o, None) {
        Verdict::Fail(f) => f,
        v => panic!("expected a failure, got {v:?}"),
    }
}

#[test]
fn a_result_absent_because_its_program_did_not_run_names_the_load_outcome() {
    let i = instance(vec![("get", "NULL")]);
    let load = |r: Res| obs(vec![("st", Res::Created { value_size: None }), ("load", r)]);
    let rejected = load(Res::Rejected {
        errno: "EACCES".into(),
        line: "R1 invalid mem access 'scalar'".into(),
    });
    assert_eq!(
        fails(&i, &rejected),
        vec!["get: expected NULL, but the program was rejected (EACCES: R1 invalid mem access 'scalar') (doc)"]
    );
    let cases = [
        (
            Res::NotCompiled {
                reason: "the stack buffers need 632 bytes; the BPF stack has 512".into(),
            },
            "get: expected NULL, but the program was not compiled (the stack buffers need 632 bytes; the BPF stack has 512) (doc)",
        ),
        (
            Res::RunFailed {
                errno: "EINVAL".into(),
            },
            "get: expected NULL, but the program did not run (test run: EINVAL) (doc)",
        ),
        (
            Res::LoadOnly,
            "get: expected NULL, but the program was only loaded (its type is not run) (doc)",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(fails(&i, &load(r)), vec![want.to_string()]);
    }
    // A program that ran and still left the result out: nothing to explain.
    assert_eq!(
        fails(&i, &load(Res::Loaded)),
        vec!["get: expected NULL, got absent (doc)"]
    );
}

#[test]
fn with_two_programs_the_failure_names_the_one_that_was_rejected() {
    let src = r#"{ "about": "a", "maps": { "st": { "type": "task_storage", "value_size": 8 } },
        "steps": [ { "prog": [ { "current_task": {} } ] },
                   { "prog": [ { "get": { "map": "st", "task": "current", "value": "small", "flags": 1 } } ] } ] }"#;
    let i = with_rules(src, vec![("get", "NULL"), ("current_task", "ptr")]);
    let o = obs(vec![
        ("load#1", Res::Loaded),
        ("current_task", Res::TaskPtr),
        (
            "load#2",
            Res::Rejected {
                errno: "EINVAL".into(),
                line: "invalid read from stack R3 off=-7 size=8".into(),
            },
        ),
    ]);
    assert_eq!(
        fails(&i, &o),
        vec!["get: expected NULL, but program `load#2` was rejected (EINVAL: invalid read from stack R3 off=-7 size=8)"]
    );
}

#[test]
fn a_result_absent_because_a_map_was_not_created_says_so() {
    let i = instance(vec![("get", "NULL"), ("load", "ok")]);
    let o = obs(vec![(
        "st",
        Res::Err {
            errno: "EINVAL".into(),
        },
    )]);
    assert_eq!(
        fails(&i, &o),
        vec![
            "get: expected NULL, but no step ran: map `st` was not created (EINVAL) (doc)",
            "load: expected ok, but no step ran: map `st` was not created (EINVAL) (doc)",
        ]
    );
}

/// A case whose rules are read from its own `expect` (so `when.kernel` goes through resolution).
fn with_expect(expect: &str) -> crate::case::Instance {
    let src = format!(
        r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value_size": 8 }} }},
        "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "flags": 1 }} }} ] }} ],
        "expect": {expect} }}"#
    );
    let mut c = crate::case::parse(std::path::Path::new("case.json"), &src).expect("valid");
    c.instances.remove(0)
}

fn series(major: u32, minor: u32) -> Option<KernelSeries> {
    Some(KernelSeries { major, minor })
}

#[test]
fn a_kernel_condition_applies_only_on_the_series_it_admits() {
    let i = with_expect(
        r#"[ { "then": { "load": "ok" } },
             { "when": { "kernel": "<6.16" }, "then": { "get": "NULL" }, "because": "before" },
             { "when": { "kernel": " >=6.16" }, "then": { "get": "ptr:*" }, "because": "since 6.16" } ]"#,
    );
    assert_eq!(i.rules.len(), 3);
    let null = obs(vec![("load", Res::Loaded), ("get", Res::Null)]);
    assert_eq!(verdict(&i, &null, series(6, 12)), Verdict::Pass);
    assert_eq!(
        verdict(&i, &null, series(6, 16)),
        Verdict::Fail(vec!["get: expected ptr:*, got NULL (since 6.16)".into()])
    );
    assert_eq!(
        verdict(&i, &null, series(7, 3)),
        verdict(&i, &null, series(6, 16))
    );
    // An unknown series: only the unconditioned rule applies.
    assert_eq!(verdict(&i, &null, None), Verdict::Pass);
    let loaded = obs(vec![(
        "load",
        Res::Rejected {
            errno: "EINVAL".into(),
            line: "x".into(),
        },
    )]);
    assert!(matches!(verdict(&i, &loaded, None), Verdict::Fail(f) if f.len() == 1));
}

#[test]
fn rules_only_for_other_kernels_leave_no_rule() {
    let i = with_expect(r#"[ { "when": { "kernel": "6.1 - 6.12" }, "then": { "get": "NULL" } } ]"#);
    let o = obs(vec![("load", Res::Loaded), ("get", Res::Null)]);
    assert_eq!(verdict(&i, &o, series(6, 1)), Verdict::Pass);
    assert_eq!(verdict(&i, &o, series(6, 16)), Verdict::NoRule);
    assert_eq!(verdict(&i, &o, None), Verdict::NoRule);
    let mut s = Summary::default();
    s.add(&o, &verdict(&i, &o, series(6, 16)));
    assert_eq!((s.expect_none, s.expect_pass), (1, 0));
}

#[test]
fn checks_list_every_rule_with_its_state() {
    let i = with_expect(
        r#"[ { "then": { "load": "ok", "get": "ptr:*" }, "because": "doc" },
             { "when": { "kernel": ">=6.1,<6.16" }, "then": { "get": "NULL" } } ]"#,
    );
    let o = obs(vec![("load", Res::Loaded), ("get", Res::Null)]);
    let c = checks(&i, &o, series(7, 3));
    let got: Vec<(usize, &str, &str, Option<&str>, &CheckState)> = c
        .iter()
        .map(|c| {
            (
                c.group,
                c.result.as_str(),
                c.pattern.as_str(),
                c.kernel.as_deref(),
                &c.state,
            )
        })
        .collect();
    let not_held = CheckState::NotHeld {
        got: "got NULL".into(),
    };
    assert_eq!(
        got,
        vec![
            (0, "load", "ok", None, &CheckState::Held),
            (0, "get", "ptr:*", None, &not_held),
            (
                1,
                "get",
                "NULL",
                Some(">=6.1, <6.16"),
                &CheckState::NotApplicable
            ),
        ]
    );
    assert_eq!(c[0].because.as_deref(), Some("doc"));
    assert_eq!(c[2].because, None);
    assert_eq!(checks(&i, &o, series(6, 12))[2].state, CheckState::Held);
    // A run that did not happen: every rule is listed, none applies.
    let mut refused = o.clone();
    refused.outcome = Outcome::Refused {
        errno: "EPERM".into(),
        what: "x".into(),
    };
    assert!(checks(&i, &refused, series(6, 12))
        .iter()
        .all(|c| c.state == CheckState::NotApplicable));
    // As JSON, the states read as words.
    let json = serde_json::to_value(&c).expect("checks serialize");
    assert_eq!(json[0]["state"], "held");
    assert_eq!(
        json[1]["state"],
        serde_json::json!({ "not_held": { "got": "got NULL" } })
    );
    assert_eq!(json[2]["state"], "not_applicable");
    assert_eq!(json[2]["kernel"], ">=6.1, <6.16");
    let back: Vec<Check> = serde_json::from_value(json).expect("and read back");
    assert_eq!(back, c);
}

#[test]
fn the_verdict_is_the_checks_in_other_words() {
    let i = with_expect(r#"[ { "then": { "get": "NULL", "load": "ok" }, "because": "doc" } ]"#);
    let rejected = obs(vec![
        ("st", Res::Created { value_size: None }),
        (
            "load",
            Res::Rejected {
                errno: "EACCES".into(),
                line: "R1 invalid mem access 'scalar'".into(),
            },
        ),
    ]);
    let c = checks(&i, &rejected, None);
    assert_eq!(
        c[0].state,
        CheckState::NotHeld {
            got: "but the program was rejected (EACCES: R1 invalid mem access 'scalar')".into()
        }
    );
    let from_checks: Vec<String> = c
        .iter()
        .filter_map(|c| match &c.state {
            CheckState::NotHeld { got } => Some(format!(
                "{}: expected {}, {got} ({})",
                c.result,
                c.pattern,
                c.because.as_deref().unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(verdict(&i, &rejected, None), Verdict::Fail(from_checks));
    // A step the kernel cannot run: its entry's rules are not applicable, and nothing ran.
    let unsupported = obs(vec![(
        "load",
        Res::Unsupported {
            reason: "map type task_storage".into(),
        },
    )]);
    assert!(checks(&i, &unsupported, None)
        .iter()
        .all(|c| c.state == CheckState::NotApplicable));
    assert_eq!(verdict(&i, &unsupported, None), Verdict::NotRun);
}
