//! The report files rendered from one results file, by name, in the order they are written.

use crate::results::Results;

/// (file name, contents) of every report rendered from `r`; `origin` names the submitter in
/// the KCIDB data (see [`super::kcidb::check_origin`]).
pub fn render(r: &Results, origin: &str) -> Vec<(String, String)> {
    vec![
        ("conformance.md".into(), super::markdown::markdown(r)),
        ("conformance.html".into(), super::html::html(r)),
        ("junit.xml".into(), super::junit::junit(r)),
        ("kcidb.json".into(), super::kcidb::kcidb(r, origin)),
        ("ebpf-docs.yaml".into(), super::ebpf_docs::ebpf_docs(r)),
    ]
}
