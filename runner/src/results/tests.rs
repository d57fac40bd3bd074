use super::*;
use crate::exec::{Observation, Outcome, Res};

fn inst(case: &str, id: &str) -> InstanceResult {
    InstanceResult {
        case: case.into(),
        observation: Observation {
            id: id.into(),
            outcome: Outcome::Ran,
            results: vec![("get".into(), Res::Null)],
            logs: Vec::new(),
        },
        verdict: VerdictKind::Pass,
        failures: Vec::new(),
        checks: Vec::new(),
    }
}

fn kernel(spec: &str, ids: &[&str]) -> KernelRun {
    KernelRun {
        identity: KernelIdentity {
            spec: spec.into(),
            label: spec.trim_start_matches("debian:").into(),
            release: Some(format!(
                "{}.0-1-cloud-amd64",
                spec.trim_start_matches("debian:")
            )),
            build: None,
            origin: format!("{spec} = linux-image"),
            package: Some("linux-image".into()),
            package_version: Some("1".into()),
            image_sha256: Some("ab".repeat(32)),
            btf: Some(true),
        },
        unusable: None,
        problems: Vec::new(),
        did_not_report: Vec::new(),
        timings: vec![Timing {
            accel: "tcg".into(),
            start: None,
            initramfs_s: Some(0.1),
            boot_s: Some(3.0),
            total_s: 9.0,
            breakdown: None,
        }],
        summary: Summary {
            instances: ids.len(),
            expect_pass: ids.len(),
            ..Summary::default()
        },
        instances: ids
            .iter()
            .map(|id| inst(id.split('/').next().unwrap_or(""), id))
            .collect(),
    }
}

fn case(name: &str, ids: &[&str]) -> CaseInfo {
    CaseInfo {
        name: name.into(),
        file: format!("cases/{name}.json"),
        about: "about".into(),
        instances: ids
            .iter()
            .map(|id| InstanceInfo {
                id: (*id).into(),
                bindings: Vec::new(),
                program_type: "syscall".into(),
                programs: vec![ProgramInfo {
                    step: "load".into(),
                    program_type: "syscall".into(),
                    uapi_type: "SYSCALL".into(),
                    calls: vec!["bpf_task_storage_get".into()],
                    listing: "   0: r0 = 0\n   1: exit".into(),
                }],
            })
            .collect(),
    }
}

fn whole() -> Results {
    Results {
        schema_version: SCHEMA_VERSION,
        runner: Runner::this(),
        plan: Plan {
            kernels: vec!["debian:6.1".into(), "debian:7.3".into()],
            cases: vec!["cases/a.json".into(), "cases/b.json".into()],
            filters: Vec::new(),
        },
        shard: None,
        cases: vec![case("a", &["a/x=1", "a/x=2"]), case("b", &["b/y=1"])],
        kernels: vec![
            kernel("debian:6.1", &["a/x=1", "a/x=2", "b/y=1"]),
            kernel("debian:7.3", &["a/x=1", "a/x=2", "b/y=1"]),
        ],
    }
}

/// `whole` as the shard `i`/`n` of it would record it.
fn shard_of(r: &Results, i: u32, n: u32) -> Results {
    let s = Shard { index: i, count: n };
    let sel = s.select(r.plan.kernels.len(), r.plan.cases.len());
    let mut out = r.clone();
    out.shard = Some(s);
    let files: Vec<usize> = {
        let mut f: Vec<usize> = sel.iter().flat_map(|(_, cs)| cs.clone()).collect();
        f.sort();
        f.dedup();
        f
    };
    out.cases = files.iter().map(|&c| r.cases[c].clone()).collect();
    out.kernels = sel
        .iter()
        .map(|(k, cs)| {
            let mut k = r.kernels[*k].clone();
            let names: Vec<&str> = cs.iter().map(|&c| r.cases[c].name.as_str()).collect();
            k.instances.retain(|i| names.contains(&i.case.as_str()));
            k.summary = Summary {
                instances: k.instances.len(),
                expect_pass: k.instances.len(),
                ..Summary::default()
            };
            k
        })
        .collect();
    out
}

#[test]
fn round_trips_through_json() {
    let r = whole();
    let text = r.to_json();
    assert_eq!(Results::parse(&text).unwrap(), r);
    assert_eq!(Results::parse(&text).unwrap().to_json(), text);
}

#[test]
fn refuses_what_is_not_results() {
    assert!(Results::parse("{")
        .unwrap_err()
        .starts_with("line 1 column 1: not JSON"));
    assert_eq!(
        Results::parse("{}").unwrap_err(),
        "not a bpfcase results file (no `schema_version`)"
    );
    assert_eq!(
        Results::parse(r#"{"schema_version": 9}"#).unwrap_err(),
        format!("schema version 9; this bpfcase reads version {SCHEMA_VERSION}")
    );
    let mut v: serde_json::Value = serde_json::from_str(&whole().to_json()).unwrap();
    v["kernels"][1]["instances"][0]["verdict"] = "maybe".into();
    let e = Results::parse(&v.to_string()).unwrap_err();
    assert!(
        e.starts_with("at kernels[1].instances[0].verdict: unknown variant `maybe`"),
        "{e}"
    );
}

#[test]
fn the_schema_describes_the_model() {
    let s: serde_json::Value = serde_json::from_str(&schema()).unwrap();
    assert_eq!(s["title"], "Results");
    for field in ["schema_version", "runner", "plan", "cases", "kernels"] {
        assert!(s["properties"].get(field).is_some(), "{field}");
    }
    assert!(schema().contains("KernelIdentity"));
}

#[test]
fn shards_merge_into_the_whole_run() {
    let r = whole();
    for n in 1..=5 {
        let parts: Vec<(String, Results)> = (1..=n)
            .rev() // the order files are given in does not matter
            .map(|i| (format!("shard{i}.json"), shard_of(&r, i, n)))
            .collect();
        let mut m = merge(&parts).unwrap();
        let mut want = r.clone();
        for k in m.kernels.iter_mut().chain(want.kernels.iter_mut()) {
            k.timings.clear();
        }
        assert_eq!(m, want, "{n} shards");
    }
}

#[test]
fn merge_refuses_incomplete_or_foreign_parts() {
    let r = whole();
    let s = |i, n| (format!("s{i}.json"), shard_of(&r, i, n));
    assert_eq!(
        merge(&[s(1, 3), s(3, 3)]).unwrap_err().to_string(),
        "shard 2/3 missing: merge every shard of the run"
    );
    assert_eq!(
        merge(&[s(1, 2), s(1, 2), s(2, 2)]).unwrap_err().to_string(),
        "shard 1/2 is given twice: s1.json and s1.json"
    );
    assert!(merge(&[s(1, 2), s(2, 3)]).is_err());
    assert_eq!(merge(&[]).unwrap_err().to_string(), "nothing to merge");
    let mut other = r.clone();
    other.kernels[0].identity.release = Some("6.1.0-99-cloud-amd64".into());
    let e = merge(&[("a.json".into(), r.clone()), ("b.json".into(), other)])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("kernel debian:6.1 is not the same kernel"),
        "{e}"
    );
    let e = merge(&[("a.json".into(), r.clone()), ("b.json".into(), r.clone())])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "a/x=1 ran on debian:6.1 in both a.json and b.json");
}
