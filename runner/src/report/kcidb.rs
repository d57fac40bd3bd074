//! KernelCI KCIDB I/O JSON (schema v5.3) of a `results.json`, for submission to a KCIDB
//! database.
//!
//! Per kernel: a checkout (the Debian source version, or the kernel itself), a build (the kernel
//! image: x86_64, its package and release), a `boot` test, a `bpfcase` test that sums the run
//! up, and one test per instance under `bpfcase.<case>.<id segments>` ([`test_path`]). Statuses
//! come from [`super::status`]: pass → PASS, no rule → DONE (ran, no verdict), fail → FAIL,
//! unsupported or refused → SKIP, error → ERROR, never reported → MISS. Deterministic: no
//! timestamps, no durations, keys in a fixed order.
//!
//! Owns: the KCIDB shape, object ids and test paths. Must not: decide what passed.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::status::{self, Status};
use crate::results::{KernelIdentity, KernelRun, Results};

/// The origin (`<origin>:` prefix of every id) when none is given.
pub const DEFAULT_ORIGIN: &str = "bpfcase";

/// The first segment of every instance test's path: the test suite.
pub const SUITE: &str = "bpfcase";

/// The longest `log_excerpt` the schema allows, in characters.
const LOG_EXCERPT_MAX: usize = 16384;

/// Whether `origin` is a KCIDB origin (`^[a-z0-9_]+$`); [`kcidb`] makes any other one into one.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "`{origin}` is not a KCIDB origin: lower-case letters, digits and `_` only"
        ))
    }
}

/// `origin` as a KCIDB origin: lower-cased, other characters as `_`, `bpfcase` when empty.
fn origin_of(origin: &str) -> String {
    let o: String = origin
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if o.is_empty() {
        DEFAULT_ORIGIN.into()
    } else {
        o
    }
}

/// The KCIDB v5.3 document of every kernel of `r`, pretty-printed with a trailing newline.
pub fn kcidb(r: &Results, origin: &str) -> String {
    let origin = origin_of(origin);
    let mut checkouts: Vec<Value> = Vec::new();
    let mut builds = Vec::new();
    let mut tests = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for k in &r.kernels {
        // The same kernel twice in a run still gets builds (and tests) of its own.
        let mut stable = build_key(&k.identity);
        let n = seen.iter().filter(|s| **s == stable).count();
        seen.push(stable.clone());
        if n > 0 {
            stable = format!("{stable}~{}", n + 1);
        }
        let checkout_id = format!("{origin}:{}", clean(&checkout_key(&k.identity, &stable)));
        let build_id = format!("{origin}:{}", clean(&stable));
        if !checkouts.iter().any(|c| c["id"] == checkout_id.as_str()) {
            checkouts.push(checkout(k, &checkout_id, &origin));
        }
        builds.push(build(k, &build_id, &checkout_id, &origin));
        tests.extend(kernel_tests(k, &build_id, &origin));
    }
    let doc = json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
    s.push('\n');
    s
}

/// What names the kernel image, the same on every run: the Debian package and version, else the
/// image's SHA-256, else the release with a hash of `uname -v`, else the spec.
fn build_key(id: &KernelIdentity) -> String {
    if let (Some(p), Some(v)) = (&id.package, &id.package_version) {
        return format!("{p}_{v}");
    }
    if let Some(h) = &id.image_sha256 {
        return format!("sha256-{h}");
    }
    if let Some(rel) = &id.release {
        let build = id.build.as_deref().unwrap_or("");
        let h = Sha256::digest(build.as_bytes());
        let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return format!("{}-{rel}-{hex}", id.spec);
    }
    id.spec.clone()
}

/// The source a kernel was built from: Debian's `linux` at the package version (every flavour
/// of one version shares it), else the kernel itself.
fn checkout_key(id: &KernelIdentity, build: &str) -> String {
    match (&id.package, &id.package_version) {
        (Some(_), Some(v)) => format!("debian-linux_{v}"),
        _ => build.to_string(),
    }
}

/// The kernel flavour in a Debian package name or release (`cloud-amd64` in
/// `linux-image-6.1.0-56-cloud-amd64-unsigned` and in `6.1.0-56-cloud-amd64`).
fn flavour(name: &str) -> Option<String> {
    let words: Vec<&str> = name.split('-').collect();
    let first = words
        .iter()
        .position(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut rest: Vec<&str> = words[first..]
        .iter()
        .copied()
        .skip_while(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    if rest.last() == Some(&"unsigned") {
        rest.pop();
    }
    (!rest.is_empty()).then(|| rest.join("-"))
}

/// `debian <flavour>` for a Debian kernel; nothing is guessed for another.
fn config_name(id: &KernelIdentity) -> Option<String> {
    let p = id.package.as_ref()?;
    Some(flavour(p).map_or("debian".into(), |f| format!("debian {f}")))
}

/// The kernel's identity as `misc`: only what is known.
fn identity_misc(id: &KernelIdentity) -> Value {
    let mut m = Map::new();
    m.insert("spec".into(), json!(id.spec));
    m.insert("label".into(), json!(id.label));
    let opt = [
        ("release", &id.release),
        ("build", &id.build),
        ("package", &id.package),
        ("package_version", &id.package_version),
        ("image_sha256", &id.image_sha256),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(b) = id.btf {
        m.insert("btf".into(), json!(b));
    }
    Value::Object(m)
}

fn checkout(k: &KernelRun, id: &str, origin: &str) -> Value {
    let i = &k.identity;
    let mut c = json!({"id": id, "origin": origin});
    if let Some(v) = &i.package_version {
        c["tree_name"] = json!("debian");
        c["comment"] = json!(clean(&format!("Debian linux {v}")));
        c["misc"] = json!({"source_package": "linux", "source_version": v});
    } else {
        c["comment"] = json!(clean(&i.origin));
        c["misc"] = json!({"spec": i.spec});
    }
    c
}

fn build(k: &KernelRun, id: &str, checkout_id: &str, origin: &str) -> Value {
    let i = &k.identity;
    let mut b = json!({
        "id": id,
        "checkout_id": checkout_id,
        "origin": origin,
        "comment": clean(&i.origin),
        "architecture": "x86_64",
    });
    if let Some(c) = config_name(i) {
        b["config_name"] = json!(clean(&c));
    }
    // A kernel that booted was built; one that could not run says nothing about its build.
    if k.unusable.is_none() || i.release.is_some() {
        b["status"] = json!("PASS");
    }
    b["misc"] = identity_misc(i);
    b
}

/// The environment of every test of a kernel: the kernel series (dots are not allowed in a
/// path) and how it ran.
fn environment(k: &KernelRun) -> Value {
    let mut misc = Map::new();
    misc.insert("kernel_label".into(), json!(k.identity.label));
    if let Some(s) = k.identity.series() {
        misc.insert("kernel_series".into(), json!(s));
    }
    let mut accels: Vec<&str> = k.timings.iter().map(|t| t.accel.as_str()).collect();
    accels.sort_unstable();
    accels.dedup();
    if !accels.is_empty() {
        misc.insert("accel".into(), json!(accels.join(",")));
    }
    json!({ "misc": misc })
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::NoRule => "DONE",
        Status::Fail(_) => "FAIL",
        Status::Skip(_) => "SKIP",
        Status::Error(_) => "ERROR",
        Status::Missing(_) => "MISS",
    }
}

/// The schema's order of statuses, most important first: a summary takes the first present.
const PRIORITY: [&str; 6] = ["FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP"];

fn detail(s: &Status) -> String {
    match s {
        Status::Pass => "pass".into(),
        Status::NoRule => "ran; no rule covers this instance".into(),
        Status::Fail(f) => f.join("; "),
        Status::Skip(w) | Status::Error(w) | Status::Missing(w) => w.clone(),
    }
}

fn kernel_tests(k: &KernelRun, build_id: &str, origin: &str) -> Vec<Value> {
    let env = environment(k);
    let test = |path: &str, s: &Status, comment: String| {
        json!({
            "id": format!("{build_id}:{path}"),
            "build_id": build_id,
            "origin": origin,
            "path": path,
            "status": status_name(s),
            "comment": clean(&comment),
            "environment": env,
        })
    };
    let boot = status::boot(k);
    let booted = match &k.identity.release {
        Some(rel) => format!("booted {rel}"),
        None => "did not boot".into(),
    };
    let comment = match &boot {
        Status::Pass => booted,
        s => format!("{booted}: {}", detail(s)),
    };
    let mut out = vec![test("boot", &boot, comment)];
    let Some(problems) = status::problems(k) else {
        return out;
    };
    let items = status::items(k);
    let mut suite = test(SUITE, &problems, format!("{}", k.summary));
    if let Status::Error(p) = &problems {
        suite["comment"] = json!(clean(&format!("{}; kernel problems: {p}", k.summary)));
        suite["log_excerpt"] = json!(excerpt(p));
    }
    // The most important status among the instances and the kernel's problems.
    let mut present: Vec<&str> = items.iter().map(|i| status_name(&i.status)).collect();
    if problems != Status::Pass {
        present.push(status_name(&problems));
    }
    let worst = PRIORITY
        .iter()
        .find(|p| present.contains(p))
        .copied()
        .unwrap_or("PASS");
    suite["status"] = json!(worst);
    suite["misc"] = json!({"problems": k.problems, "summary": k.summary});
    out.push(suite);
    for item in &items {
        let path = test_path(item.id);
        let mut t = test(
            &path,
            &item.status,
            format!("{}: {}", item.id, detail(&item.status)),
        );
        let logs: String = item
            .logs
            .iter()
            .map(|(p, l)| format!("verifier log of {p}:\n{l}\n"))
            .collect();
        if !logs.is_empty() {
            t["log_excerpt"] = json!(excerpt(&logs));
        }
        let mut misc = json!({"instance": item.id, "case": item.case});
        if let Some(l) = &item.line {
            misc["observation"] = json!(l);
        }
        if let Some(r) = k.instances.iter().find(|r| r.observation.id == item.id) {
            misc["verdict"] = json!(status::verdict_name(r.verdict));
            if !r.failures.is_empty() {
                misc["failures"] = json!(r.failures);
            }
        }
        t["misc"] = misc;
        out.push(t);
    }
    out
}

/// Text the schema accepts (`^[^\0]*$`): NUL as `\x00`.
fn clean(s: &str) -> String {
    s.replace('\0', "\\x00")
}

/// The end of `s` (where a verifier log says why), within the schema's length limit.
fn excerpt(s: &str) -> String {
    let s = clean(s);
    let n = s.chars().count();
    if n <= LOG_EXCERPT_MAX {
        return s;
    }
    let marker = "[…]\n";
    let keep = LOG_EXCERPT_MAX - marker.chars().count();
    let tail: String = s.chars().skip(n - keep).collect();
    format!("{marker}{tail}")
}

/// The KCIDB test path of an instance: `bpfcase.` then each `/`-separated segment of its id as a
/// path segment (`[a-zA-Z0-9_-]+`). Letters, digits and `_` stay; `=` becomes `-` when a letter,
/// digit, `_` or the end follows; every other byte (and such an `=`) becomes `--` and two
/// lower-case hex digits; an empty segment is `--`. So `get_flags/flags=1<<32` is
/// `bpfcase.get_flags.flags-1--3c--3c32`, and different ids always get different paths.
pub fn test_path(id: &str) -> String {
    let mut p = String::from(SUITE);
    for seg in id.split('/') {
        p.push('.');
        p.push_str(&segment(seg));
    }
    p
}

fn literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn segment(s: &str) -> String {
    if s.is_empty() {
        return "--".into();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in b.iter().enumerate() {
        if literal(c) {
            out.push(c as char);
        } else if c == b'=' && b.get(i + 1).is_none_or(|&n| literal(n)) {
            out.push('-');
        } else {
            out.push_str(&format!("--{c:02x}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "kcidb_tests.rs"]
mod tests;
