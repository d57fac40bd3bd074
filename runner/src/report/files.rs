//! The report files rendered from one results file, by name, in the order they are written.

use crate::results::Results;

/// (file name, contents) of every report rendered from `r`.
pub fn render(r: &Results) -> Vec<(String, String)> {
    vec![
        ("junit.xml".into(), super::junit::junit(r)),
        (
            "kcidb.json".into(),
            super::kcidb::kcidb(r, super::kcidb::DEFAULT_ORIGIN),
        ),
    ]
}
