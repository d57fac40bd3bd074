//! Report layer: observations rendered as stable text — one line per instance for snapshots,
//! conformance verdicts from a case's expectations, run summaries.
//!
//! Owns: every textual form of an observation. Must not: touch the kernel. Redaction happens
//! before (the exec layer records no pointers, pids or fds), so rendering is a pure function.

mod compare;
pub mod diff;
pub mod files;
pub mod junit;
pub mod kcidb;
pub mod status;

use crate::bpf::Errno;
use crate::case::compare as case_compare;
use crate::case::{Case, Instance, KernelSeries, OpSpec, StepSpec};
use crate::exec::{Observation, Outcome, Res};

/// A result as text: the form snapshots show and expectations match against.
pub fn render(r: &Res) -> String {
    match r {
        Res::Created { value_size: None } | Res::Ok | Res::Loaded => "ok".into(),
        Res::Created {
            value_size: Some(n),
        } => format!("ok(value_size={n})"),
        Res::Err { errno } => errno.clone(),
        Res::RunFailed { errno } => format!("run-failed({errno})"),
        Res::Rejected { errno, line } => format!("rejected({errno}: {line})"),
        Res::NotCompiled { reason } => format!("not-compiled({reason})"),
        Res::Ptr { bytes, total } => format!("ptr:{}", hex(bytes, *total as usize)),
        Res::PtrUninit { .. } => "ptr:(uninit)".into(),
        Res::Uninit => "(uninit)".into(),
        Res::Null => "NULL".into(),
        Res::LoadOnly => "ok(load only)".into(),
        Res::Unsupported { reason } => format!("unsupported({reason})"),
        Res::Refused { errno, what } => format!("refused({errno}: {what})"),
        Res::Unavailable => "unsupported".into(),
        Res::TaskPtr => "ptr".into(),
        Res::Attached {
            runs,
            recursion_misses,
        } => format!("ok(runs={runs} recursion_misses={recursion_misses})"),
        Res::Count {
            calls,
            failures,
            failure,
        } => format!("calls={calls} {failure}={failures}"),
        Res::AttachedFor { runs } => format!("ok({})", some("runs", *runs)),
        Res::CountFor { calls } => some("calls", *calls),
        Res::Ret { value } => ret(*value),
        Res::Nonzero => "nonzero".into(),
        Res::Branch { then } => if *then { "then" } else { "else" }.into(),
        Res::Value { bytes } => hex(bytes, bytes.len()),
        Res::Fields { fields } => fields_text(fields),
        Res::SkippedNull => "skipped(NULL)".into(),
        Res::NoTask => "no-task".into(),
        Res::NoOwner { kind } => format!("no-{kind}"),
        Res::NotReached => "not-reached".into(),
    }
}

/// A count known only to be zero or not: `runs=0`, `runs>0`.
fn some(name: &str, nonzero: bool) -> String {
    if nonzero {
        format!("{name}>0")
    } else {
        format!("{name}=0")
    }
}

/// A typed value: `{cnt:0x1;neg:-2;buf:0xaa*2;task:null}`: unsigned integers and arrays in hex
/// (arrays as `<bytes>`), signed integers in decimal, pointers `null` or `set`.
fn fields_text(fields: &[(String, crate::case::layout::FieldValue)]) -> String {
    use crate::case::layout::FieldValue;
    let parts: Vec<String> = fields
        .iter()
        .map(|(n, v)| {
            let t = match v {
                FieldValue::Uint(u) => format!("{u:#x}"),
                FieldValue::Int(i) => i.to_string(),
                FieldValue::Bytes(b) => hex(b, b.len()),
                FieldValue::Ptr(true) => "set".into(),
                FieldValue::Ptr(false) => "null".into(),
            };
            format!("{n}:{t}")
        })
        .collect();
    format!("{{{}}}", parts.join(";"))
}

/// A helper's return value: a negative errno by name (`-ENOENT`), anything else in decimal.
fn ret(v: i64) -> String {
    if (-4095..0).contains(&v) {
        let name = Errno(-v as i32).name();
        if !name.starts_with("errno") {
            return format!("-{name}");
        }
    }
    v.to_string()
}

/// Bytes as little-endian 64-bit words in hex (`0x1122334455667788`), runs of equal words as
/// `word*N`, `+N bytes` when only a prefix of `total` bytes was read.
pub fn hex(bytes: &[u8], total: usize) -> String {
    let words: Vec<String> = bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            format!("{:#x}", u64::from_le_bytes(w))
        })
        .collect();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut j = i + 1;
        while j < words.len() && words[j] == words[i] {
            j += 1;
        }
        parts.push(if j - i > 1 {
            format!("{}*{}", words[i], j - i)
        } else {
            words[i].clone()
        });
        i = j;
    }
    let mut s = parts.join(",");
    if s.is_empty() {
        s.push_str("(empty)");
    }
    if total > bytes.len() {
        s.push_str(&format!(",+{} bytes", total - bytes.len()));
    }
    s
}

/// Whether a result is worth a snapshot column: successful map creation and process actions
/// are the scenery, not the observation.
fn shown(name: &str, r: &Res, inst: Option<&Instance>) -> bool {
    let process =
        name.starts_with("spawn:") || name.starts_with("exit:") || name.starts_with("reap:");
    // Only a map's creation gives `Created`: the same line with or without the instance.
    let map = inst.is_none_or(|i| i.maps.iter().any(|m| m.name == name));
    let scenery = (process && *r == Res::Ok) || (map && *r == (Res::Created { value_size: None }));
    // The ops of an unsupported program: its `load` result already says why.
    !scenery && *r != Res::Unavailable
}

/// The observation as one line: `<id without the case name> → name=result …`.
pub fn line(obs: &Observation, inst: Option<&Instance>) -> String {
    let id = obs.id.split_once('/').map_or("(single)", |(_, rest)| rest);
    let body = match &obs.outcome {
        Outcome::Ran => obs
            .results
            .iter()
            .filter(|(n, r)| shown(n, r, inst))
            .map(|(n, r)| format!("{n}={}", render(r)))
            .collect::<Vec<_>>()
            .join(" "),
        Outcome::Unsupported { reason } => format!("unsupported({reason})"),
        Outcome::Refused { errno, what } => format!("refused({errno}: {what})"),
        Outcome::Error { message } => format!("error({message})"),
    };
    format!("{id} → {body}")
}

/// A case's snapshot: a header and one line per instance, in matrix order.
pub fn snapshot(case: &Case, observations: &[Observation]) -> String {
    let mut s = format!("# {}: {}\n", case.name, case.about);
    for obs in observations {
        let inst = case.instances.iter().find(|i| i.id == obs.id);
        s.push_str(&line(obs, inst));
        s.push('\n');
    }
    s
}

/// How an observation compares with the documented semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every applicable rule holds.
    Pass,
    /// Rules that do not hold: `name: expected P, got R (because …)`, or, for a result that is
    /// absent because its program did not run, `name: expected P, but the program was rejected
    /// (EACCES: …) (because …)`.
    Fail(Vec<String>),
    /// No rule covers this instance (on this kernel).
    NoRule,
    /// The instance did not run (unsupported, refused, error): nothing to compare.
    NotRun,
}

/// One rule of an instance, judged against an observation.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Check {
    /// Index of the rule's `expect` entry.
    pub group: usize,
    pub result: String,
    pub pattern: String,
    pub because: Option<String>,
    /// The entry's `when.kernel`, canonical (`>=6.1, <6.16`).
    pub kernel: Option<String>,
    pub state: CheckState,
}

/// What became of a rule.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// The result matches the pattern.
    Held,
    /// It does not; `got` is what the failure says after `expected PATTERN, `: `got TEXT`, or
    /// `but WHY` for a result absent because its program did not run.
    NotHeld { got: String },
    /// The rule says nothing here: the instance did not run, a step its entry names could not
    /// run (unsupported, refused), or the kernel is not of a series its `when.kernel` admits
    /// (or its series is unknown).
    NotApplicable,
}

/// Every rule of the instance, in order, judged against the observation made on a kernel of
/// series `kernel` (None: unknown, so no rule with a kernel condition applies).
pub fn checks(inst: &Instance, obs: &Observation, kernel: Option<KernelSeries>) -> Vec<Check> {
    judge(inst, obs, kernel).0
}

/// The checks, and whether a rule is not applicable because a step could not run.
fn judge(inst: &Instance, obs: &Observation, kernel: Option<KernelSeries>) -> (Vec<Check>, bool) {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let ran = obs.outcome == Outcome::Ran;
    // A step the kernel could not run says nothing about the documented semantics: an
    // `expect` entry naming one is not applicable.
    let unsupported = |name: &str| {
        matches!(
            obs.result(name),
            Some(Res::Unsupported { .. } | Res::Refused { .. } | Res::Unavailable)
        )
    };
    let names: std::collections::BTreeSet<String> = inst
        .maps
        .iter()
        .flat_map(|m| {
            let n = &m.name;
            [n.clone(), format!("{n}.preset"), format!("{n}.value_size")]
        })
        .chain(inst.steps.iter().flat_map(crate::case::step_names))
        .collect();
    let known = |s: &str| names.contains(s);
    let compares: Vec<Option<case_compare::Compare>> = inst
        .rules
        .iter()
        .map(|r| case_compare::rule(&r.result, &r.pattern, &known).and_then(Result::ok))
        .collect();
    // The results a rule reads: its own, or both sides of a comparison.
    let reads = |i: usize| -> Vec<&str> {
        match &compares[i] {
            None => vec![inst.rules[i].result.as_str()],
            Some(c) => {
                let mut v = vec![c.left.result.as_str()];
                if let case_compare::Operand::Result(r) = &c.right {
                    v.push(r.result.as_str());
                }
                v
            }
        }
    };
    let skipped: Vec<usize> = (0..inst.rules.len())
        .filter(|&i| reads(i).into_iter().any(unsupported))
        .map(|i| inst.rules[i].group)
        .collect();
    let mut not_run = false;
    let checks = inst
        .rules
        .iter()
        .zip(&compares)
        .map(|(r, cmp)| {
            let on_kernel = r
                .kernel
                .as_ref()
                .is_none_or(|k| kernel.is_some_and(|s| k.matches(s)));
            let state = if !ran || !on_kernel {
                CheckState::NotApplicable
            } else if skipped.contains(&r.group) {
                not_run = true;
                CheckState::NotApplicable
            } else if let Some(c) = cmp {
                compare::judge(c, obs)
            } else {
                let res = obs.result(&r.result);
                let got = res.map_or_else(|| "absent".to_string(), render);
                if glob::Pattern::new(&r.pattern).is_ok_and(|p| p.matches_with(&got, opts)) {
                    CheckState::Held
                } else {
                    // An absent result says nothing by itself: say what stopped it instead.
                    let got = match res.map_or_else(|| why_absent(inst, obs, &r.result), |_| None) {
                        Some(why) => format!("but {why}"),
                        None => format!("got {got}"),
                    };
                    CheckState::NotHeld { got }
                }
            };
            Check {
                group: r.group,
                result: r.result.clone(),
                pattern: r.pattern.clone(),
                because: r.because.clone(),
                kernel: r.kernel.as_ref().map(ToString::to_string),
                state,
            }
        })
        .collect();
    (checks, not_run)
}

/// The instance's verdict on a kernel of series `kernel`, from its [`checks`].
pub fn verdict(inst: &Instance, obs: &Observation, kernel: Option<KernelSeries>) -> Verdict {
    if obs.outcome != Outcome::Ran {
        return Verdict::NotRun;
    }
    let (checks, not_run) = judge(inst, obs, kernel);
    let mut fails = Vec::new();
    let mut applicable = 0;
    for c in &checks {
        match &c.state {
            CheckState::NotApplicable => continue,
            CheckState::Held => {}
            CheckState::NotHeld { got } => {
                let because = c
                    .because
                    .as_ref()
                    .map_or(String::new(), |b| format!(" ({b})"));
                fails.push(format!(
                    "{}: expected {}, {got}{because}",
                    c.result, c.pattern
                ));
            }
        }
        applicable += 1;
    }
    if applicable > 0 && fails.is_empty() {
        Verdict::Pass
    } else if applicable > 0 {
        Verdict::Fail(fails)
    } else if not_run {
        Verdict::NotRun
    } else {
        // No rule, or none for this kernel.
        Verdict::NoRule
    }
}

/// Why result `name` is absent from the observation, when a step it depends on says so: the
/// load of its program did not lead to a run (rejected by the verifier, not compiled, test run
/// failed, load only, unsupported), or a map could not be created, so that no step ran.
fn why_absent(inst: &Instance, obs: &Observation, name: &str) -> Option<String> {
    let programs: Vec<(&str, &[OpSpec])> = inst
        .steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Prog { name, ops, .. } => Some((name.as_str(), ops.as_slice())),
            _ => None,
        })
        .collect();
    let program = programs
        .iter()
        .find(|(_, ops)| ops.iter().any(|o| o.name() == name));
    if let Some((load, _)) = program {
        let which = if programs.len() == 1 {
            "the program".to_string()
        } else {
            format!("program `{load}`")
        };
        let why = match obs.result(load) {
            Some(Res::Rejected { errno, line }) => Some(format!("was rejected ({errno}: {line})")),
            Some(Res::NotCompiled { reason }) => Some(format!("was not compiled ({reason})")),
            Some(Res::RunFailed { errno }) => Some(format!("did not run (test run: {errno})")),
            Some(Res::LoadOnly) => Some("was only loaded (its type is not run)".to_string()),
            Some(Res::Unsupported { reason }) => Some(format!("is unsupported ({reason})")),
            Some(Res::Refused { errno, what }) => Some(format!("was refused ({errno}: {what})")),
            _ => None,
        };
        if let Some(why) = why {
            return Some(format!("{which} {why}"));
        }
    }
    inst.maps.iter().find_map(|m| match obs.result(&m.name) {
        Some(Res::Err { errno }) => Some(format!(
            "no step ran: map `{}` was not created ({errno})",
            m.name
        )),
        _ => None,
    })
}

/// The JSON record of one instance, as `run --format json` prints it and a guest sends it:
/// `{"case", "observation", "verdict"}`.
pub fn json_line(inst: &Instance, obs: &Observation, v: &Verdict) -> serde_json::Value {
    let verdict = match v {
        Verdict::Pass => serde_json::json!("pass"),
        Verdict::Fail(f) => serde_json::json!({ "fail": f }),
        Verdict::NoRule => serde_json::json!("no-rule"),
        Verdict::NotRun => serde_json::json!("not-run"),
    };
    serde_json::json!({ "case": inst.case, "observation": obs, "verdict": verdict })
}

/// Counts over a run.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Summary {
    pub instances: usize,
    /// Programs the verifier accepted / refused.
    pub accepted: usize,
    pub rejected: usize,
    pub unsupported: usize,
    pub refused: usize,
    pub errors: usize,
    pub expect_pass: usize,
    pub expect_fail: usize,
    pub expect_none: usize,
}

impl Summary {
    pub fn add(&mut self, obs: &Observation, v: &Verdict) {
        self.instances += 1;
        let step = |f: fn(&Res) -> bool| obs.results.iter().any(|(_, r)| f(r));
        match &obs.outcome {
            Outcome::Ran if step(|r| matches!(r, Res::Refused { .. })) => self.refused += 1,
            Outcome::Ran if step(|r| matches!(r, Res::Unsupported { .. })) => self.unsupported += 1,
            Outcome::Ran => {}
            Outcome::Unsupported { .. } => self.unsupported += 1,
            Outcome::Refused { .. } => self.refused += 1,
            Outcome::Error { .. } => self.errors += 1,
        }
        for (_, r) in &obs.results {
            match r {
                Res::Loaded
                | Res::RunFailed { .. }
                | Res::LoadOnly
                | Res::Attached { .. }
                | Res::AttachedFor { .. } => self.accepted += 1,
                Res::Rejected { .. } => self.rejected += 1,
                _ => {}
            }
        }
        match v {
            Verdict::Pass => self.expect_pass += 1,
            Verdict::Fail(_) => self.expect_fail += 1,
            Verdict::NoRule => self.expect_none += 1,
            Verdict::NotRun => {}
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} instances: programs {} accepted, {} rejected; {} unsupported, {} refused, {} errors; expectations {} pass, {} fail, {} without rule",
            self.instances,
            self.accepted,
            self.rejected,
            self.unsupported,
            self.refused,
            self.errors,
            self.expect_pass,
            self.expect_fail,
            self.expect_none
        )
    }
}

pub mod ebpf_docs;
pub mod findings;
pub mod html;
pub mod markdown;
pub mod matrix;
pub mod words;

#[cfg(test)]
mod tests;
