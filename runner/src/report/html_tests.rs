use super::*;
use crate::report::matrix::fixture::sample;

#[test]
fn escapes_text_and_attributes() {
    assert_eq!(
        esc("<script>alert(\"x\" + 'y')</script> & co"),
        "&lt;script&gt;alert(&quot;x&quot; + &#39;y&#39;)&lt;/script&gt; &amp; co"
    );
    let v = serde_json::json!({"a": "</script><!-- & \u{2028}"});
    let j = script_json(&v);
    assert!(
        !j.contains('<') && !j.contains('>') && !j.contains('&'),
        "{j}"
    );
    assert_eq!(serde_json::from_str::<serde_json::Value>(&j).unwrap(), v);
}

#[test]
fn no_text_from_the_results_escapes_into_markup() {
    let page = html(&sample());
    // The fixture's about, instance id and verifier log carry <script> and quotes.
    assert_eq!(
        page.matches("<script").count(),
        2,
        "only the data block and the page's own script"
    );
    assert!(!page.contains("<b>&"), "the id x=<b>&\"' is escaped");
    assert!(page.contains("x=&lt;b&gt;&amp;&quot;&#39;"));
    assert!(page.contains("title=\"text to escape: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;\""));
    let data = page
        .split("id=\"data\">")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    let lines: Vec<&str> = v["l"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"unknown func <script>alert(\"x\")</script>"),
        "{lines:?}"
    );
}

#[test]
fn one_self_contained_page() {
    let page = html(&sample());
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(page.ends_with("</html>\n"));
    for external in ["<link", "src=", "@import", "url(", "http://"] {
        assert!(!page.contains(external), "{external}");
    }
    // The only address is the documentation page's link.
    assert_eq!(
        page.matches("https://").count(),
        1,
        "the documentation link of the one documented helper"
    );
}

#[test]
fn findings_and_changes_come_before_the_grid() {
    let page = html(&sample());
    let at = |t: &str| page.find(t).unwrap_or_else(|| panic!("{t}"));
    assert!(at("<h2>Findings</h2>") < at("<h2>Changed between adjacent kernels</h2>"));
    assert!(at("<h2>Changed between adjacent kernels</h2>") < at("<table class=\"grid\">"));
    assert!(at("<table class=\"grid\">") < at("<h2>Program types per helper</h2>"));
    assert!(page.contains("<li class=\"doc\"><b>Documentation:</b> <code>bpf_task_storage_get</code> may be called from XDP programs from 6.18 on (not up to 6.12), but its documentation does not list XDP.</li>"));
    assert!(page.contains("<details><summary><b>6.1 → 6.12</b>: 2 changed</summary>"));
    assert!(page
        .contains("<li>get_flags <code>flags=0x2</code>: <code>get: ptr:0x0 → NULL</code></li>"));
}

#[test]
fn grid_cells_are_coloured_by_state_and_open_the_case() {
    let page = html(&sample());
    // get_flags (case 1) on 6.1 (column 1): one failing instance, changed since 5.10.
    assert!(page.contains("<button type=\"button\" class=\"s-fail chg\" data-c=\"1\" data-k=\"1\" title=\"get_flags on 6.1: some expectations fail (1 of 2)\">✗ 1</button>"), "{page}");
    assert!(page.contains("class=\"s-error chg\" data-c=\"2\" data-k=\"5\""));
    assert!(page.contains("class=\"s-unsup\" data-c=\"1\" data-k=\"0\""));
    assert!(
        !page.contains("debian:6.16</th>"),
        "the unusable kernel has no column"
    );
    assert!(page.contains("<tr class=\"discrepancy\"><td>xdp</td><td>XDP</td><td>no</td>"));
    assert!(page.contains("<td class=\"m m-not\" title=\"program_types/prog=xdp load#2: rejected(EINVAL: unknown func bpf_task_storage_get#156)\">may not</td>"));
}

#[test]
fn the_data_block_dedupes_strings_and_lines() {
    let page = html(&sample());
    let data = page
        .split("id=\"data\">")
        .nth(1)
        .unwrap()
        .split("</script>")
        .next()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    let once = |key: &str| {
        let mut seen = std::collections::BTreeSet::new();
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| seen.insert(s.to_string()))
    };
    assert!(
        once("s") && once("l") && once("d"),
        "each string, line and text once"
    );
    assert_eq!(v["k"].as_array().unwrap().len(), 6);
    let xdp = &v["rows"][1];
    assert_eq!(xdp["id"], "prog=xdp");
    let on61 = &xdp["o"][1];
    assert_eq!(
        v["s"][on61[0].as_u64().unwrap() as usize],
        "load#1=ok current_task=ptr load#2=rejected(EINVAL: unknown func bpf_task_storage_get#156)"
    );
    assert_eq!(on61[1], 2, "no rule");
    assert_eq!(
        on61[3][0][0], "load#2",
        "the verifier log of the rejected program"
    );
    let text = |d: u64| -> String {
        let lines: Vec<&str> = v["d"][d as usize]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| v["l"][l.as_u64().unwrap() as usize].as_str().unwrap())
            .collect();
        lines.join("\n")
    };
    assert_eq!(
        text(on61[3][0][1].as_u64().unwrap()),
        "0: (85) call bpf_task_storage_get#156\nunknown func <script>alert(\"x\")</script>"
    );
    // One listing per distinct program, shared by the instances that compile to it.
    let listing = |r: usize, p: usize| v["rows"][r]["p"][p][2].as_u64().unwrap();
    assert_eq!(
        listing(1, 1),
        listing(2, 1),
        "xdp and fentry programs list the same calls"
    );
    assert_ne!(listing(0, 0), listing(1, 0));
    assert_eq!(text(listing(0, 0)), "   0: r0 = 0\n   1: exit");
    let flags = &v["rows"][4]["o"][1];
    assert_eq!(flags[1], 1, "get_flags/flags=0x2 fails on 6.1");
    assert_eq!(
        v["s"][flags[2].as_u64().unwrap() as usize],
        "get: expected NULL, got ptr:0x0 (unknown flags are refused)"
    );
}

#[test]
fn the_same_observations_give_the_same_bytes() {
    let r = sample();
    let page = html(&r);
    assert_eq!(html(&r), page);
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(html(&back), page);
    let mut t = r.clone();
    for k in &mut t.kernels {
        k.timings.clear();
    }
    assert_eq!(html(&t), page);
}

#[test]
fn renders_a_cut_of_a_real_run() {
    let r = crate::report::matrix::tests::real();
    let page = html(&r);
    assert!(page.contains("<title>Conformance: 3 cases, 5 instances, 11 kernels</title>"));
    assert!(page.contains("<b>6.19 → 7.0</b>: 1 changed"));
    assert!(page.contains("<tr class=\"discrepancy\"><td>xdp</td><td>XDP</td><td>no</td>"));
    // program_types (case 1) on 6.16 (column 3): xdp fails its rule there.
    assert!(
        page.contains("class=\"s-fail chg\" data-c=\"1\" data-k=\"3\""),
        "{page}"
    );
    assert!(page.len() < 80_000, "{} bytes", page.len());
    let back = crate::results::Results::parse(&r.to_json()).unwrap();
    assert_eq!(html(&back), page);
}
