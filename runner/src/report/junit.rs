//! JUnit XML of a `results.json`, for CI systems that show test reports (Jenkins, GitLab and
//! the JUnit viewers of other CIs).
//!
//! One `<testsuite>` per kernel (named by its label, its identity as properties), with a `boot`
//! and a `problems` test case of class `kernel`, then one `<testcase>` per instance (class = case
//! name, name = the instance id without it). Statuses come from [`super::status`]. Deterministic:
//! no timestamps, no times, attributes in a fixed order.
//!
//! Owns: the XML and its escaping. Must not: decide what passed (that is `status`).

use super::status::{self, Item, Status};
use crate::results::{KernelRun, Results};

/// The JUnit XML of every kernel of `r`, with a trailing newline.
pub fn junit(r: &Results) -> String {
    let suites: Vec<Suite> = r
        .kernels
        .iter()
        .map(|k| suite(k, &suite_name(r, k)))
        .collect();
    let total = suites
        .iter()
        .fold(Counts::default(), |a, s| a.add(&s.counts));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"bpfcase\"{}>\n",
        total.attributes()
    ));
    for s in &suites {
        x.push_str(&s.xml);
    }
    x.push_str("</testsuites>\n");
    x
}

/// The kernel's label, or `label (spec)` when another kernel of the run has the same label.
fn suite_name(r: &Results, k: &KernelRun) -> String {
    let same = r
        .kernels
        .iter()
        .filter(|o| o.identity.label == k.identity.label)
        .count();
    if same > 1 {
        format!("{} ({})", k.identity.label, k.identity.spec)
    } else {
        k.identity.label.clone()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn add(self, o: &Counts) -> Counts {
        Counts {
            tests: self.tests + o.tests,
            failures: self.failures + o.failures,
            errors: self.errors + o.errors,
            skipped: self.skipped + o.skipped,
        }
    }

    fn count(&mut self, s: &Status) {
        self.tests += 1;
        match s {
            Status::Pass | Status::NoRule => {}
            Status::Fail(_) => self.failures += 1,
            Status::Skip(_) => self.skipped += 1,
            Status::Error(_) | Status::Missing(_) => self.errors += 1,
        }
    }

    fn attributes(&self) -> String {
        format!(
            " tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
            self.tests, self.failures, self.errors, self.skipped
        )
    }
}

struct Suite {
    counts: Counts,
    xml: String,
}

fn suite(k: &KernelRun, name: &str) -> Suite {
    let mut counts = Counts::default();
    let mut cases = String::new();
    let boot = status::boot(k);
    counts.count(&boot);
    cases.push_str(&testcase("kernel", "boot", &boot, None, &[]));
    if let Some(p) = status::problems(k) {
        counts.count(&p);
        cases.push_str(&testcase("kernel", "problems", &p, None, &[]));
    }
    for Item {
        id,
        case,
        line,
        logs,
        status,
    } in status::items(k)
    {
        counts.count(&status);
        let name = status::short_id(id);
        cases.push_str(&testcase(case, name, &status, line.as_deref(), logs));
    }
    let id = &k.identity;
    let mut props = vec![("spec", Some(id.spec.clone()))];
    props.push(("release", id.release.clone()));
    props.push(("build", id.build.clone()));
    props.push(("origin", Some(id.origin.clone())));
    props.push(("package", id.package.clone()));
    props.push(("package_version", id.package_version.clone()));
    props.push(("image_sha256", id.image_sha256.clone()));
    props.push(("btf", id.btf.map(|b| b.to_string())));
    props.push(("unusable", k.unusable.clone()));
    let mut xml = format!(
        "  <testsuite name=\"{}\"{}>\n    <properties>\n",
        attr(name),
        counts.attributes()
    );
    for (n, v) in props {
        if let Some(v) = v {
            xml.push_str(&format!(
                "      <property name=\"{n}\" value=\"{}\"/>\n",
                attr(&v)
            ));
        }
    }
    xml.push_str("    </properties>\n");
    xml.push_str(&cases);
    xml.push_str("  </testsuite>\n");
    Suite { counts, xml }
}

/// One `<testcase>`: plain for a pass, with `<system-out>` for an instance no rule covers,
/// `<failure>`, `<skipped>` or `<error>` otherwise. The message is in the attribute and the
/// details (the observation, the verifier log) in the text, since consumers read one or the
/// other.
fn testcase(
    class: &str,
    name: &str,
    s: &Status,
    line: Option<&str>,
    logs: &[(String, String)],
) -> String {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\"",
        attr(class),
        attr(name)
    );
    let observed = line.map(|l| format!("observed: {l}\n")).unwrap_or_default();
    let mut logs_text = String::new();
    for (prog, log) in logs {
        logs_text.push_str(&format!("verifier log of {prog}:\n{log}\n"));
    }
    let child = |tag: &str, message: &str, detail: &str| {
        let mut c = format!("      <{tag} message=\"{}\"", attr(message));
        if detail.is_empty() {
            c.push_str("/>\n");
        } else {
            c.push_str(&format!(">{}</{tag}>\n", text(detail)));
        }
        c
    };
    let body = match s {
        Status::Pass => return format!("{open}/>\n"),
        Status::NoRule => format!(
            "      <system-out>{}</system-out>\n",
            text(&format!(
                "no rule covers this instance\n{observed}{logs_text}"
            ))
        ),
        Status::Fail(f) => child(
            "failure",
            &f.join("; "),
            &format!("{}\n{observed}{logs_text}", f.join("\n")),
        ),
        Status::Skip(why) => child("skipped", why, why),
        Status::Error(why) | Status::Missing(why) if observed.is_empty() => {
            child("error", why, &format!("{why}\n{logs_text}"))
        }
        Status::Error(why) | Status::Missing(why) => {
            child("error", why, &format!("{observed}{logs_text}"))
        }
    };
    format!("{open}>\n{body}    </testcase>\n")
}

/// What XML 1.0 cannot hold even escaped (C0 controls but tab, LF and CR; U+FFFE, U+FFFF)
/// becomes `\xNN` / `\u{NNNN}`, so nothing is lost silently.
fn clean(s: &str, mut push: impl FnMut(&mut String, char), out: &mut String) {
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' => push(out, c),
            '\u{0}'..='\u{1f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            _ => push(out, c),
        }
    }
}

/// Text content: `&`, `<` and `>` escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    clean(
        s,
        |o, c| match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            _ => o.push(c),
        },
        &mut out,
    );
    out
}

/// An attribute value in double quotes: also quotes escaped, and tab, LF and CR as character
/// references, which attribute normalization would otherwise turn into spaces.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    clean(
        s,
        |o, c| match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            _ => o.push(c),
        },
        &mut out,
    );
    out
}

#[cfg(test)]
#[path = "junit_tests.rs"]
mod tests;
