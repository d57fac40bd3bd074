use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::report::status::fixture::*;
use crate::results::VerdictKind;

/// The published KCIDB v5.3 schema, vendored (see `runner/tests/data/README.md`).
const SCHEMA: &str = include_str!("../../tests/data/kcidb-v5.3.schema.json");

/// The schema's patterns write NUL as the ECMA-262 escape `\0`, which the Rust regex engines
/// take for a backreference: `\x00` means the same and compiles.
fn fix_nul(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "pattern" => *s = s.replace(r"\0", r"\x00"),
                    _ => fix_nul(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fix_nul),
        _ => {}
    }
}

/// A Draft-07 validator with format checks, as kcidb-io validates.
fn validator() -> jsonschema::Validator {
    let mut schema: Value = serde_json::from_str(SCHEMA).expect("the vendored schema is JSON");
    fix_nul(&mut schema);
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn doc(r: &crate::results::Results) -> Value {
    serde_json::from_str(&kcidb(r, DEFAULT_ORIGIN)).expect("kcidb emits JSON")
}

fn tests_of(d: &Value) -> &Vec<Value> {
    d["tests"].as_array().expect("tests")
}

fn test<'a>(d: &'a Value, id: &str) -> &'a Value {
    tests_of(d)
        .iter()
        .find(|t| t["misc"]["instance"] == id)
        .unwrap_or_else(|| panic!("no test for {id}"))
}

#[test]
fn the_fixture_is_valid_v5_3() {
    let v = validator();
    let d = doc(&everything());
    assert_eq!(errors(&v, &d), Vec::<String>::new());
    assert_eq!(d["version"], json!({"major": 5, "minor": 3}));
}

#[test]
fn edge_cases_are_valid_v5_3() {
    let v = validator();
    let mut host = kernel("host", vec![ran("c/x=\0", VerdictKind::Fail)]);
    host.identity.label = "host-6.8".into();
    host.identity.package = None;
    host.identity.package_version = None;
    host.identity.image_sha256 = None;
    host.identity.origin = "the running kernel\0".into();
    host.instances[0].failures = vec!["get: expected \0".into()];
    host.instances[0].observation.logs = vec![("load".into(), "x\0".repeat(20000))];
    let twice = kernel("debian:6.1", vec![ran("c/x=1", VerdictKind::Pass)]);
    let r = results(vec![host, twice.clone(), twice]);
    let d = doc(&r);
    assert_eq!(errors(&v, &d), Vec::<String>::new());
    assert_eq!(
        d["builds"][0].get("config_name"),
        None,
        "not guessed for the host"
    );
    assert_eq!(d["builds"].as_array().unwrap().len(), 3);
    assert_ne!(d["builds"][1]["id"], d["builds"][2]["id"]);
    // Odd origins become valid ones.
    let d: Value = serde_json::from_str(&kcidb(&r, "My Lab!")).unwrap();
    assert_eq!(errors(&v, &d), Vec::<String>::new());
    assert_eq!(d["builds"][0]["origin"], "my_lab_");
    assert!(check_origin("My Lab!").is_err() && check_origin("").is_err());
    assert!(check_origin("bpfcase_ci").is_ok());
}

#[test]
fn the_validator_rejects_broken_documents() {
    let v = validator();
    let good = doc(&everything());
    // (what, where, the new value or none to remove it)
    let breaks = [
        ("lower-case status", "/tests/0/status", Some(json!("pass"))),
        ("an empty segment", "/tests/2/path", Some(json!("a..b"))),
        ("a slash in a path", "/tests/2/path", Some(json!("a/b"))),
        ("no build_id", "/tests/0/build_id", None),
        ("minor 4", "/version/minor", Some(json!(4))),
        ("build with `valid`", "/builds/0/valid", Some(json!(true))),
        (
            "upper-case origin",
            "/tests/0/origin",
            Some(json!("BpfCase")),
        ),
        ("NUL in a comment", "/tests/0/comment", Some(json!("a\0b"))),
        (
            "a time without zone",
            "/tests/0/start_time",
            Some(json!("2025-01-01T00:00:10")),
        ),
    ];
    for (what, at, value) in breaks {
        let mut d = good.clone();
        let (parent, key) = at.rsplit_once('/').unwrap();
        let obj = d
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap();
        match value {
            Some(v) => obj.insert(key.into(), v),
            None => obj.remove(key),
        };
        assert!(!errors(&v, &d).is_empty(), "accepted: {what}");
    }
    // The same edit with a good value passes: formats are checked, not fields refused.
    let mut d = good.clone();
    d["tests"][0]["start_time"] = json!("2025-01-01T00:00:10+00:00");
    assert_eq!(errors(&v, &d), Vec::<String>::new());
}

/// The sample results named by `BPFCASE_RESULTS`, when set: a real run's `results.json`.
#[test]
fn a_real_results_file_is_valid_v5_3() {
    let Some(path) = std::env::var_os("BPFCASE_RESULTS") else {
        return;
    };
    let r = crate::results::Results::read(&PathBuf::from(path)).expect("BPFCASE_RESULTS reads");
    let d = doc(&r);
    let errs = errors(&validator(), &d);
    assert!(
        errs.is_empty(),
        "{} errors, first: {:?}",
        errs.len(),
        &errs[..errs.len().min(5)]
    );
    let n: usize = r.kernels.iter().map(|k| k.instances.len()).sum();
    assert!(tests_of(&d).len() >= n + r.kernels.len());
}

#[test]
fn statuses_follow_the_junit_mapping() {
    let d = doc(&everything());
    let status = |id: &str| test(&d, id)["status"].as_str().unwrap().to_string();
    assert_eq!(status("get_flags/flags=0x0/value=null"), "PASS");
    assert_eq!(status("get_flags/flags=0x1/value=null"), "FAIL");
    assert_eq!(status("children"), "DONE");
    assert_eq!(status("program_types/prog=fentry.s"), "SKIP");
    assert_eq!(status("map_create/flags=no_prealloc|mmapable"), "SKIP");
    assert_eq!(status("map_create/flags=0x0"), "ERROR");
    assert_eq!(status("get_flags/flags=u64::MAX/value=null"), "MISS");
    let fail = test(&d, "get_flags/flags=0x1/value=null");
    assert_eq!(
        fail["misc"]["observation"],
        "flags=0x1/value=null → get=NULL"
    );
    assert!(fail["comment"]
        .as_str()
        .unwrap()
        .contains("expected ptr:*, got NULL"));
    let rejected = test(&d, "get_flags/flags=1<<32/value=null");
    assert!(rejected["log_excerpt"].as_str().unwrap().contains("\\x00"));
    assert_eq!(rejected["environment"]["misc"]["kernel_series"], "6.1");
}

#[test]
fn kernels_become_checkouts_builds_and_boot_tests() {
    let d = doc(&everything());
    let builds = d["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 3);
    let b = &builds[0];
    assert_eq!(
        b["id"],
        "bpfcase:linux-image-6.1.0-56-cloud-amd64-unsigned_6.1.192-2"
    );
    assert_eq!(b["checkout_id"], "bpfcase:debian-linux_6.1.192-2");
    assert_eq!(b["config_name"], "debian cloud-amd64");
    assert_eq!(b["architecture"], "x86_64");
    assert_eq!(b["status"], "PASS");
    assert_eq!(b["misc"]["release"], "6.1.0-56-cloud-amd64");
    let boots: Vec<_> = tests_of(&d)
        .iter()
        .filter(|t| t["path"] == "boot")
        .collect();
    assert_eq!(boots.len(), 3);
    assert_eq!(boots[0]["status"], "PASS");
    assert_eq!(boots[2]["status"], "ERROR");
    assert!(boots[2]["comment"].as_str().unwrap().contains("no package"));
    assert_eq!(
        builds[2].get("status"),
        None,
        "unknown for a kernel never found"
    );
    let suites: Vec<_> = tests_of(&d).iter().filter(|t| t["path"] == SUITE).collect();
    assert_eq!(suites.len(), 2, "no suite for the kernel that never ran");
    assert_eq!(suites[0]["status"], "FAIL");
    assert!(suites[0]["log_excerpt"]
        .as_str()
        .unwrap()
        .contains("WARNING"));
    assert_eq!(suites[1]["status"], "ERROR");
    // Every reference resolves and every id is unique.
    let ids = |k: &str| -> BTreeSet<String> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (c, b, t) = (ids("checkouts"), ids("builds"), ids("tests"));
    assert_eq!(t.len(), tests_of(&d).len());
    assert!(builds
        .iter()
        .all(|x| c.contains(x["checkout_id"].as_str().unwrap())));
    assert!(tests_of(&d)
        .iter()
        .all(|x| b.contains(x["build_id"].as_str().unwrap())));
}

#[test]
fn an_unusable_kernel_with_its_image_fails_to_boot() {
    let r = results(vec![unusable("debian:6.1", "no kernel BTF", true)]);
    let d = doc(&r);
    assert_eq!(tests_of(&d).len(), 1);
    assert_eq!(tests_of(&d)[0]["status"], "FAIL");
    assert_eq!(
        d["builds"][0]["id"],
        "bpfcase:linux-image-6.1.0-56-cloud-amd64-unsigned_6.1.192-2"
    );
}

#[test]
fn flavours_and_build_keys() {
    let f = |s| flavour(s);
    assert_eq!(
        f("linux-image-5.10.0-46-cloud-amd64").as_deref(),
        Some("cloud-amd64")
    );
    assert_eq!(
        f("linux-image-6.12.118+deb13-cloud-amd64-unsigned").as_deref(),
        Some("cloud-amd64")
    );
    assert_eq!(
        f("linux-binary-unsigned-7.2.13+deb14-cloud-amd64").as_deref(),
        Some("cloud-amd64")
    );
    assert_eq!(f("6.8.0-45-generic").as_deref(), Some("generic"));
    assert_eq!(f("6.12.0"), None);
    assert_eq!(f("linux-image"), None);
    let mut id = kernel("host", vec![]).identity;
    id.package = None;
    id.image_sha256 = None;
    let k = build_key(&id);
    assert!(
        k.starts_with("host-host.0-56-cloud-amd64-")
            && k.len() == "host-host.0-56-cloud-amd64-".len() + 12,
        "{k}"
    );
    id.build = Some("#2".into());
    assert_ne!(build_key(&id), k, "another build of the same release");
}

/// Reverses [`segment`], to prove the encoding loses nothing.
fn decode(seg: &str) -> Option<String> {
    if seg == "--" {
        return Some(String::new());
    }
    let b = seg.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let h = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 4;
            }
            b'-' => {
                out.push(b'=');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn valid_path(p: &str) -> bool {
    p.split('.').all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn check_path(id: &str) -> String {
    let p = test_path(id);
    assert!(valid_path(&p), "{id} → {p}");
    let segs: Vec<Option<String>> = p.split('.').skip(1).map(decode).collect();
    let back: Option<Vec<String>> = segs.into_iter().collect();
    assert_eq!(back.map(|s| s.join("/")).as_deref(), Some(id), "{p}");
    p
}

#[test]
fn paths_are_readable() {
    assert_eq!(
        test_path("get_flags/flags=1<<32/value=0x1"),
        "bpfcase.get_flags.flags-1--3c--3c32.value-0x1"
    );
    assert_eq!(
        test_path("program_types/prog=fentry.s"),
        "bpfcase.program_types.prog-fentry--2es"
    );
    assert_eq!(test_path("children"), "bpfcase.children");
    assert_eq!(test_path("a//b="), "bpfcase.a.--.b-");
    assert_eq!(test_path("x==y"), "bpfcase.x--3d-y");
}

#[test]
fn every_shipped_instance_id_has_its_own_valid_path() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let files = crate::case::discover(&[dir]).expect("the shipped cases are found");
    let mut paths = BTreeSet::new();
    let mut n = 0;
    for f in files {
        let case = crate::case::load(&f).expect("a shipped case loads");
        for i in &case.instances {
            n += 1;
            assert!(paths.insert(check_path(&i.id)), "collision for {}", i.id);
        }
    }
    assert!(n > 300, "only {n} instances");
}

#[test]
fn any_id_round_trips() {
    // A small deterministic generator over the characters ids are made of, and some others.
    let alphabet: Vec<char> = "ab_Z09=-./<|:+* \0é→".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = BTreeSet::new();
    for _ in 0..20000 {
        let mut s = String::new();
        for _ in 0..(x % 9) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = check_path(&s);
        seen.insert((s, p));
    }
    let distinct_paths: BTreeSet<_> = seen.iter().map(|(_, p)| p).collect();
    assert_eq!(distinct_paths.len(), seen.len());
}

#[test]
fn deterministic() {
    let r = everything();
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(kcidb(&r, "bpfcase"), kcidb(&back, "bpfcase"));
}
