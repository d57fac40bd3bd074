use super::fixture::{kernel, obs, result, sample};
use super::*;
use crate::results::VerdictKind;

fn labels(m: &Matrix) -> Vec<String> {
    m.kernels.iter().map(|k| k.label.clone()).collect()
}

fn row<'a>(m: &'a Matrix, id: &str) -> &'a Row<'a> {
    m.rows.iter().find(|r| r.id == id).unwrap()
}

#[test]
fn kernels_go_in_series_order_host_after_its_guest_unknown_last() {
    let r = sample();
    let m = Matrix::new(&r);
    assert_eq!(
        labels(&m),
        [
            "5.10",
            "6.1",
            "6.12",
            "6.18",
            "host-6.18",
            "7.3",
            "debian:6.16"
        ]
    );
    assert_eq!(m.ran(), vec![0, 1, 2, 3, 4, 5]);
    // 6.10 sorts after 6.9, not between 6.1 and 6.2.
    let k = |l: &str, rel: &str| kernel(l, l, Some(rel), vec![]);
    let ks = [k("6.10", "6.10.0"), k("6.9", "6.9.1"), k("6.2", "6.2.0")];
    assert_eq!(order(&ks), vec![2, 1, 0]);
}

#[test]
fn outcome_text_is_the_snapshot_line_body() {
    let r = sample();
    let m = Matrix::new(&r);
    let x = row(&m, "program_types/prog=xdp");
    assert_eq!(
        x.texts[1].as_deref(),
        Some("load#1=ok current_task=ptr load#2=rejected(EINVAL: unknown func bpf_task_storage_get#156)")
    );
    // Map creation that succeeded is scenery, as in snapshots; a failed one is shown.
    assert_eq!(
        x.texts[0].as_deref(),
        Some("st=unsupported(map type task_storage) load#1=unsupported(helper bpf_get_current_task_btf (#158) is unknown to this kernel) load#2=unsupported(map type task_storage)")
    );
    assert_eq!(x.texts[6], None, "the unusable kernel has no observation");
}

#[test]
fn ranges_collapse_adjacent_equal_outcomes() {
    let r = sample();
    let m = Matrix::new(&r);
    let x = row(&m, "program_types/prog=xdp");
    let spans: Vec<String> = m
        .ranges(x)
        .iter()
        .map(|g| m.span(g.first, g.last))
        .collect();
    assert_eq!(spans, ["5.10", "6.1", "6.12", "6.18 – 7.3"]);
    assert!(m.differs(x));
    let zero = row(&m, "get_flags/flags=0x0");
    let z: Vec<(String, String)> = m
        .ranges(zero)
        .iter()
        .map(|g| (m.span(g.first, g.last), g.text.clone()))
        .collect();
    assert_eq!(
        z,
        [
            (
                "5.10".to_string(),
                "unsupported(map type task_storage)".to_string()
            ),
            ("6.1 – 7.3".to_string(), "load=ok get=NULL".to_string())
        ]
    );
}

#[test]
fn a_missing_observation_ends_a_range() {
    let mk = |label: &str, ids: &[&str]| {
        let rs = ids
            .iter()
            .map(|id| {
                result(
                    obs(id, vec![("get", crate::exec::Res::Null)]),
                    VerdictKind::Pass,
                    &[],
                )
            })
            .collect();
        kernel(label, label, Some(&format!("{label}.0")), rs)
    };
    let mut r = sample();
    r.kernels = vec![
        mk("6.1", &["a/x", "a/y"]),
        mk("6.2", &["a/y"]),
        mk("6.3", &["a/x", "a/y"]),
    ];
    let m = Matrix::new(&r);
    let x = row(&m, "a/x");
    let spans: Vec<String> = m
        .ranges(x)
        .iter()
        .map(|g| m.span(g.first, g.last))
        .collect();
    assert_eq!(spans, ["6.1", "6.3"]);
    assert!(!m.differs(x), "the same outcome wherever it was observed");
    assert_eq!(
        x.info, None,
        "an instance only the kernels name still has a row"
    );
}

#[test]
fn changes_between_adjacent_kernels_say_which_results_changed() {
    let r = sample();
    let m = Matrix::new(&r);
    let pairs: Vec<(String, String, [usize; 4])> = m
        .changes
        .iter()
        .map(|c| {
            let n = [
                c.rows.len(),
                c.appeared.len(),
                c.vanished.len(),
                c.neither.len(),
            ];
            (
                m.kernels[c.from].label.clone(),
                m.kernels[c.to].label.clone(),
                n,
            )
        })
        .collect();
    let p = |a: &str, b: &str, n| (a.to_string(), b.to_string(), n);
    // 5.10 measures nothing (no task storage); the host refuses fentry; 7.3 has a runner error,
    // which counts as an outcome.
    assert_eq!(
        pairs,
        [
            p("5.10", "6.1", [0, 5, 0, 0]),
            p("6.1", "6.12", [2, 0, 0, 0]),
            p("6.12", "6.18", [1, 0, 0, 0]),
            p("6.18", "host-6.18", [0, 0, 1, 0]),
            p("host-6.18", "7.3", [1, 1, 0, 0]),
        ]
    );
    let c = &m.changes[1];
    let xdp = c
        .rows
        .iter()
        .find(|(i, _)| m.rows[*i].id == "program_types/prog=xdp")
        .unwrap();
    assert_eq!(
        xdp.1,
        "load#2: rejected(EINVAL: unknown func bpf_task_storage_get#156) → rejected(EINVAL: program of this type cannot use helper bpf_task_storage_get#156)"
    );
    let fentry = diff(
        &row(&m, "program_types/prog=fentry").cells[3]
            .unwrap()
            .observation,
        &row(&m, "program_types/prog=fentry").cells[4]
            .unwrap()
            .observation,
    );
    assert!(
        fentry.starts_with(
            "load#1: ok → refused(EPERM: loading a fentry program); load#2: ok → refused"
        ),
        "{fentry}"
    );
    assert!(
        fentry.ends_with("current_task: ptr → absent; get: ptr:0x7 → absent"),
        "{fentry}"
    );
    let fentry = row(&m, "program_types/prog=fentry");
    assert_eq!(
        fentry.measured,
        [false, true, true, true, false, true, false]
    );
    assert!(
        !m.differs(fentry),
        "the same wherever it measured something"
    );
    assert_eq!(
        reasons(&fentry.cells[4].unwrap().observation),
        ["refused: loading a fentry program (EPERM)"]
    );
}

#[test]
fn conformance_classes_follow_the_verdicts_in_kernel_order() {
    let r = sample();
    let m = Matrix::new(&r);
    assert_eq!(row(&m, "get_flags/flags=0x0").class, Class::Holds);
    assert_eq!(
        row(&m, "get_flags/flags=0x2").class,
        Class::HoldsFrom("6.12".into())
    );
    assert_eq!(row(&m, "program_types/prog=xdp").class, Class::NoRule);
    let cols: Vec<Column> = (0..4)
        .map(|i| Column {
            run: &r.kernels[0],
            label: format!("k{i}"),
            series: None,
            ran: true,
        })
        .collect();
    let v = |ks: &[VerdictKind]| -> Vec<crate::results::InstanceResult> {
        ks.iter()
            .map(|k| result(obs("a/x", vec![]), *k, &[]))
            .collect()
    };
    use VerdictKind::*;
    let class = |ks: &[VerdictKind]| {
        let rs = v(ks);
        let cells: Vec<Option<&crate::results::InstanceResult>> = rs.iter().map(Some).collect();
        classify(&cols, &cells)
    };
    assert_eq!(
        class(&[Pass, Pass, Fail, NotRun]),
        Class::HoldsUntil("k1".into())
    );
    assert_eq!(class(&[NotRun, Fail, Fail, Fail]), Class::DoesNotHold);
    assert_eq!(class(&[Pass, Fail, Pass, Pass]), Class::Mixed);
    assert_eq!(class(&[NotRun, NotRun, NotRun, NotRun]), Class::NotRun);
    assert_eq!(class(&[NotRun, NoRule, NotRun, NotRun]), Class::NoRule);
}

#[test]
fn case_states_take_the_worst_instance() {
    let r = sample();
    let m = Matrix::new(&r);
    let states = |case: &str| {
        (0..m.kernels.len())
            .map(|c| m.state(case, c))
            .collect::<Vec<_>>()
    };
    use State::*;
    assert_eq!(
        states("get_flags"),
        [Unsupported, Fail, Pass, Pass, Pass, Pass, Empty]
    );
    assert_eq!(states("odd")[5], Error);
    assert_eq!(
        states("program_types")[4],
        Unsupported,
        "the host refuses fentry"
    );
    assert!(m.changed("program_types", 3) && !m.changed("get_flags", 3));
    assert!(
        !m.changed("get_flags", 0),
        "the first kernel has nothing before it"
    );
}

#[test]
fn program_type_table_per_helper() {
    let r = sample();
    let m = Matrix::new(&r);
    let names: Vec<&str> = m.helpers.iter().map(|t| t.helper.as_str()).collect();
    assert_eq!(
        names,
        ["bpf_get_current_task_btf", "bpf_task_storage_get"],
        "kfuncs are not helpers"
    );
    let t = &m.helpers[1];
    let xdp = t.rows.iter().find(|r| r.prog_type == "xdp").unwrap();
    let may: Vec<Option<May>> = xdp
        .cells
        .iter()
        .map(|c| c.as_ref().map(|c| c.may))
        .collect();
    use May::*;
    assert_eq!(
        may,
        [
            Some(Unknown),
            Some(Not),
            Some(Not),
            Some(Call),
            Some(Call),
            Some(Call),
            None
        ]
    );
    assert_eq!(
        (xdp.first_call(), xdp.last_not(), xdp.documented),
        (Some(3), Some(2), Some(false))
    );
    let fentry = t.rows.iter().find(|r| r.prog_type == "fentry").unwrap();
    assert_eq!(
        fentry.cells[4].as_ref().unwrap().may,
        Unknown,
        "refused on the host"
    );
    assert_eq!(fentry.documented, Some(true), "fentry is TRACING");
    let btf = &m.helpers[0].rows[1];
    assert_eq!(btf.cells[0].as_ref().unwrap().may, Absent);
    assert_eq!(btf.last_not(), Some(0));
    // get_flags' syscall programs and program_types' share one row, which loaded on 6.1 on.
    let sys = &t.rows[0];
    assert_eq!(sys.prog_type, "syscall");
    assert!(sys.cells[0]
        .as_ref()
        .unwrap()
        .evidence
        .starts_with("program_types/prog=syscall load#2: unsupported"));
    let d = helpers::discrepancies(&m.helpers);
    assert_eq!(
        d,
        [Discrepancy::Undocumented {
            helper: "bpf_task_storage_get".into(),
            uapi: "XDP".into(),
            types: vec!["xdp".into()],
            from: 3,
            not_until: Some(2),
        }]
    );
}

#[test]
fn verifier_lines_name_a_helper_as_a_word() {
    use helpers::names_helper;
    assert!(names_helper(
        "unknown func bpf_task_storage_get#156",
        "bpf_task_storage_get"
    ));
    assert!(names_helper(
        "program of this type cannot use helper bpf_x#1",
        "bpf_x"
    ));
    assert!(!names_helper(
        "unknown func bpf_task_storage_get_x#9",
        "bpf_task_storage_get"
    ));
    assert!(!names_helper(
        "R2 type=scalar expected=ptr_",
        "bpf_task_storage_get"
    ));
}

#[test]
fn groups_keep_first_appearance_order() {
    let g = group([("b", 1), ("a", 2), ("b", 3)]);
    assert_eq!(g, vec![("b", vec![1, 3]), ("a", vec![2])]);
    assert_eq!(short_id("a/x=1/y=2"), "x=1/y=2");
    assert_eq!(short_id("a"), "(single)");
}

/// A cut of a real run: 11 kernels (Debian 5.10 … 7.3 and a 6.18 host), five instances.
pub(crate) fn real() -> crate::results::Results {
    crate::results::Results::parse(include_str!("../testdata/sample.json")).unwrap()
}

#[test]
fn a_real_run_in_series_order_with_its_documentation_discrepancy() {
    let r = real();
    let m = Matrix::new(&r);
    assert_eq!(
        labels(&m),
        [
            "5.10",
            "6.1",
            "6.12",
            "6.16",
            "6.17",
            "6.18",
            "host-6.18",
            "6.19",
            "7.0",
            "7.2",
            "7.3"
        ]
    );
    assert_eq!(
        row(&m, "program_types/prog=fmod_ret").class,
        Class::HoldsFrom("6.12".into())
    );
    assert_eq!(
        row(&m, "program_types/prog=xdp").class,
        Class::HoldsUntil("6.12".into())
    );
    let get = m
        .helpers
        .iter()
        .find(|t| t.helper == "bpf_task_storage_get")
        .unwrap();
    let xdp = get.rows.iter().find(|r| r.prog_type == "xdp").unwrap();
    assert_eq!(
        (
            xdp.first_call().map(|c| m.span(c, c)),
            xdp.last_not().map(|c| m.span(c, c))
        ),
        (Some("6.16".to_string()), Some("6.12".to_string()))
    );
    let d = helpers::discrepancies(&m.helpers);
    assert_eq!(d.len(), 2, "{d:?}");
    let steps: Vec<usize> = m.changes.iter().map(|c| c.rows.len()).collect();
    assert_eq!(steps, [1, 3, 2, 0, 0, 1, 1, 1, 0, 0]);
}
