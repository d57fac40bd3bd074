use super::*;
use crate::exec::Outcome;
use crate::report::status::fixture::*;
use crate::results::VerdictKind;

fn parse(x: &str) -> roxmltree::Document<'_> {
    match roxmltree::Document::parse(x) {
        Ok(d) => d,
        Err(e) => panic!("not well-formed XML: {e}\n{x}"),
    }
}

fn num(n: roxmltree::Node, a: &str) -> usize {
    n.attribute(a)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{a} missing on {n:?}"))
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn testcase<'a, 'i>(
    suite: roxmltree::Node<'a, 'i>,
    class: &str,
    name: &str,
) -> roxmltree::Node<'a, 'i> {
    suite
        .children()
        .find(|c| {
            c.has_tag_name("testcase")
                && c.attribute("classname") == Some(class)
                && c.attribute("name") == Some(name)
        })
        .unwrap_or_else(|| panic!("no testcase {class} {name}"))
}

#[test]
fn counts_match_the_test_cases() {
    let x = junit(&everything());
    let doc = parse(&x);
    let root = doc.root_element();
    assert!(root.has_tag_name("testsuites"));
    let suites: Vec<_> = root
        .children()
        .filter(|c| c.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 3);
    let mut sum = [0usize; 4];
    for s in &suites {
        let cases: Vec<_> = s
            .children()
            .filter(|c| c.has_tag_name("testcase"))
            .collect();
        let with = |t: &str| cases.iter().filter(|c| child(**c, t).is_some()).count();
        let got = [cases.len(), with("failure"), with("error"), with("skipped")];
        let said = ["tests", "failures", "errors", "skipped"].map(|a| num(*s, a));
        assert_eq!(got, said, "suite {:?}", s.attribute("name"));
        for i in 0..4 {
            sum[i] += got[i];
        }
    }
    assert_eq!(
        sum,
        ["tests", "failures", "errors", "skipped"].map(|a| num(root, a))
    );
    // 6.1: boot, problems, 7 instances, 1 that did not report. One failure; the error outcome,
    // the kernel problem and the instance that did not report are errors; two skips.
    assert_eq!(
        ["tests", "failures", "errors", "skipped"].map(|a| num(suites[0], a)),
        [10, 1, 3, 2]
    );
    assert_eq!(
        ["tests", "failures", "errors", "skipped"].map(|a| num(suites[1], a)),
        [9, 0, 1, 2]
    );
}

#[test]
fn each_status_has_its_element() {
    let x = junit(&everything());
    let doc = parse(&x);
    let s = doc.root_element().first_element_child().unwrap();
    assert_eq!(s.attribute("name"), Some("6.1"));
    let pass = testcase(s, "get_flags", "flags=0x0/value=null");
    assert_eq!(pass.children().filter(|c| c.is_element()).count(), 0);

    let fail = child(testcase(s, "get_flags", "flags=0x1/value=null"), "failure").unwrap();
    assert_eq!(
        fail.attribute("message"),
        Some("get: expected ptr:*, got NULL (because <F_CREATE> & 'create')")
    );
    assert!(fail
        .text()
        .unwrap()
        .contains("observed: flags=0x1/value=null → get=NULL"));

    let no_rule = testcase(s, "children", "(single)");
    let out = child(no_rule, "system-out").unwrap().text().unwrap();
    assert!(out.starts_with("no rule covers this instance\n"), "{out}");

    let refused = child(testcase(s, "program_types", "prog=fentry.s"), "skipped").unwrap();
    assert_eq!(
        refused.attribute("message"),
        Some("load=refused(EPERM: fentry)")
    );
    let unsupported = testcase(s, "map_create", "flags=no_prealloc|mmapable");
    assert_eq!(
        child(unsupported, "skipped").unwrap().attribute("message"),
        Some("unsupported(map type task_storage)")
    );
    let error = child(testcase(s, "map_create", "flags=0x0"), "error").unwrap();
    assert_eq!(
        error.attribute("message"),
        Some("error(reading the result map: EFAULT\\x07)")
    );
    let missing = testcase(s, "get_flags", "flags=u64::MAX/value=null");
    assert!(child(missing, "error").is_some());
    let problems = child(testcase(s, "kernel", "problems"), "error").unwrap();
    assert!(problems
        .attribute("message")
        .unwrap()
        .contains("<bpf_check>"));
    assert_eq!(
        child(testcase(s, "kernel", "boot"), "error").map(|_| ()),
        None
    );
}

#[test]
fn a_kernel_that_could_not_run_is_one_boot_error() {
    let x = junit(&everything());
    let doc = parse(&x);
    let s = doc.root_element().last_element_child().unwrap();
    assert_eq!(s.attribute("name"), Some("debian:9.9"));
    let cases: Vec<_> = s
        .children()
        .filter(|c| c.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].attribute("name"), Some("boot"));
    let e = child(cases[0], "error").unwrap();
    assert_eq!(
        e.attribute("message"),
        Some("no package for debian:9.9 & \"trixie\"")
    );
    let props: Vec<_> = child(s, "properties")
        .unwrap()
        .children()
        .filter_map(|p| Some((p.attribute("name")?, p.attribute("value")?)))
        .collect();
    assert!(props.contains(&("spec", "debian:9.9")));
    assert!(props.contains(&("unusable", "no package for debian:9.9 & \"trixie\"")));
}

#[test]
fn nothing_that_did_not_run_is_a_pass() {
    let r = everything();
    let x = junit(&r);
    let doc = parse(&x);
    let suites: Vec<_> = doc
        .root_element()
        .children()
        .filter(|c| c.is_element())
        .collect();
    for (k, s) in r.kernels.iter().zip(&suites) {
        for i in &k.instances {
            let ran = i.observation.outcome == Outcome::Ran && i.verdict != VerdictKind::NotRun;
            let c = testcase(*s, &i.case, status::short_id(&i.observation.id));
            let marked = ["skipped", "error"].iter().any(|t| child(c, t).is_some());
            assert_eq!(!ran, marked, "{}", i.observation.id);
        }
    }
}

#[test]
fn escaping_round_trips_and_control_characters_are_replaced() {
    let nasty = "a<b>&c\"d'e\tf\ng\rh\u{0}\u{1}\u{1b}[0m\u{7f}\u{fffe}é→";
    let mut r = ran(&format!("c/x={nasty}"), VerdictKind::Fail);
    r.failures = vec![nasty.into()];
    r.observation.logs = vec![("load".into(), nasty.into())];
    let mut k = kernel("debian:6.1", vec![r]);
    k.identity.origin = nasty.into();
    let x = junit(&results(vec![k]));
    let doc = parse(&x);
    let s = doc.root_element().first_element_child().unwrap();
    let want = "a<b>&c\"d'e\tf\ng\rh\\x00\\x01\\x1b[0m\u{7f}\\u{fffe}é→";
    let c = testcase(s, "c", &format!("x={want}"));
    let f = child(c, "failure").unwrap();
    assert_eq!(f.attribute("message"), Some(want));
    // Text content keeps tab and LF; XML parsers turn CR into LF.
    let text = f.text().unwrap();
    assert!(text.contains(&want.replace('\r', "\n")), "{text:?}");
    let origin = child(s, "properties")
        .unwrap()
        .children()
        .find(|p| p.attribute("name") == Some("origin"))
        .unwrap();
    assert_eq!(origin.attribute("value"), Some(want));
}

#[test]
fn same_label_twice_names_the_spec() {
    let a = kernel("debian:6.1", vec![]);
    let mut b = kernel("/boot/vmlinuz-6.1", vec![]);
    b.identity.label = "6.1".into();
    let x = junit(&results(vec![a, b]));
    let doc = parse(&x);
    let names: Vec<_> = doc
        .root_element()
        .children()
        .filter_map(|s| s.attribute("name"))
        .collect();
    assert_eq!(names, ["6.1 (debian:6.1)", "6.1 (/boot/vmlinuz-6.1)"]);
}

#[test]
fn deterministic_and_the_same_after_a_round_trip_through_results_json() {
    let r = everything();
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(junit(&r), junit(&back));
    let x = junit(&r);
    assert!(
        !x.contains(" time=") && !x.contains("timestamp"),
        "no times"
    );
}
