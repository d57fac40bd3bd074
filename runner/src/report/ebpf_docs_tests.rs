use super::*;
use crate::report::matrix::fixture::sample;

fn parse(y: &str) -> serde_norway::Value {
    serde_norway::from_str(y).unwrap_or_else(|e| panic!("{e}:\n{y}"))
}

#[test]
fn emits_the_measured_since_per_program_type() {
    let y = ebpf_docs(&sample());
    let v = parse(&y);
    let xdp = &v["programs"]["BPF_PROG_TYPE_XDP"];
    let names: Vec<&str> = xdp
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bpf_get_current_task_btf", "bpf_task_storage_get"]);
    assert_eq!(xdp[1]["since"]["version"].as_str(), Some("6.18"), "{y}");
    assert_eq!(xdp[0]["since"]["version"].as_str(), Some("6.1"));
    // fentry on the host was refused (no answer); TRACING loaded from 6.1 on.
    let tracing = &v["programs"]["BPF_PROG_TYPE_TRACING"];
    assert_eq!(tracing[1]["since"]["version"].as_str(), Some("6.1"));
    assert!(y.contains(
        "  - name: bpf_task_storage_get\n    # refused up to 6.12, loads from 6.18 on, so since a release after 6.12 up to 6.18 (xdp); 5 of 6 kernels answered; the documentation does not list this type\n    since:\n      version: \"6.18\"\n"
    ), "{y}");
    assert!(y.contains(
        "    # no such helper up to 5.10, loads from 6.1 on, so since a release after 5.10 up to 6.1 (fentry); 5 of 6 kernels answered\n"
    ), "{y}");
    assert!(y.contains(
        "    # loads from 6.1 on; no kernel measured refuses it (5.10 gave no answer), so 6.1 is an upper bound (syscall); 5 of 6 kernels answered; the documentation lists this type\n"
    ), "{y}");
    assert!(y.starts_with("# Program types that may call each helper"));
    assert!(y.contains("# Kernels measured (6): 5.10, 6.1, 6.12, 6.18, host-6.18, 7.3\n"));
}

#[test]
fn versions_stay_strings() {
    // 6.10 read as a YAML number would be 6.1.
    assert_eq!(quoted("6.10"), "\"6.10\"");
    assert_eq!(
        parse(&format!("v: {}", quoted("6.10")))["v"].as_str(),
        Some("6.10")
    );
    assert_eq!(scalar("bpf_task_storage_get"), "bpf_task_storage_get");
    assert_eq!(scalar("6.1"), "\"6.1\"");
    assert_eq!(scalar("no"), "\"no\"");
    assert_eq!(scalar("a: b"), "\"a: b\"");
    let odd = "a\"b\\c\nd\u{1}";
    assert_eq!(
        parse(&format!("v: {}", quoted(odd)))["v"].as_str(),
        Some(odd)
    );
}

#[test]
fn a_type_where_nothing_loaded_is_an_empty_list_with_the_reason() {
    let mut r = sample();
    // Only the XDP programs: on no kernel after 6.12 either.
    for k in &mut r.kernels {
        for i in &mut k.instances {
            if i.observation.id == "program_types/prog=xdp" {
                for (n, res) in &mut i.observation.results {
                    if n == "load#2" {
                        *res = crate::exec::Res::Rejected {
                            errno: "EINVAL".into(),
                            line: "program of this type cannot use helper bpf_task_storage_get#156"
                                .into(),
                        };
                    }
                }
            }
        }
    }
    let y = ebpf_docs(&r);
    let v = parse(&y);
    let xdp = v["programs"]["BPF_PROG_TYPE_XDP"].as_sequence().unwrap();
    assert_eq!(xdp.len(), 1, "bpf_get_current_task_btf only:\n{y}");
    assert!(y.contains("  # bpf_task_storage_get: refused up to 7.3, loaded on no kernel (xdp); 6 of 6 kernels answered; the documentation does not list this type\n"), "{y}");
}

#[test]
fn the_same_observations_give_the_same_bytes() {
    let r = sample();
    let y = ebpf_docs(&r);
    assert_eq!(ebpf_docs(&r), y);
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(ebpf_docs(&back), y);
    let mut empty = r.clone();
    empty.cases.clear();
    let e = ebpf_docs(&empty);
    assert!(e.ends_with("programs: {}\n"), "{e}");
    assert!(parse(&e)["programs"].as_mapping().unwrap().is_empty());
}

#[test]
fn renders_a_cut_of_a_real_run() {
    let r = crate::report::matrix::tests::real();
    let y = ebpf_docs(&r);
    let v = parse(&y);
    let xdp = &v["programs"]["BPF_PROG_TYPE_XDP"];
    let since: Vec<(&str, &str)> = xdp
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["since"]["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        since,
        [
            ("bpf_get_current_task_btf", "6.1"),
            ("bpf_task_storage_delete", "6.16"),
            ("bpf_task_storage_get", "6.16"),
        ]
    );
    assert!(y.contains("    # refused up to 6.12, loads from 6.16 on, so since a release after 6.12 up to 6.16 (xdp); 10 of 11 kernels answered; the documentation does not list this type\n"), "{y}");
    assert_eq!(
        v["programs"]["BPF_PROG_TYPE_TRACING"][2]["since"]["version"].as_str(),
        Some("6.1"),
        "{y}"
    );
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(ebpf_docs(&back), y);
}
