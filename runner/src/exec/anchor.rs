//! Anchors: a do-nothing `fentry` program kept attached, for the executor's life, to each
//! trampoline target (an fentry, fexit, fmod_ret or LSM hook function) that an instance's
//! program attaches to.
//!
//! Why: while a kernel function's BPF trampoline holds no program, attaching one registers
//! the trampoline with ftrace and detaching the last one unregisters it, which waits for
//! RCU-tasks grace periods (on 6.1 to 6.19 about 200 ms per attach and detach under TCG, most
//! of a guest's time). With a program already on the trampoline, attaching and detaching
//! another only updates it.
//!
//! What an instance can tell: the anchor is `r0 = 0; exit` in the same trampoline, ahead of
//! the instance's programs. It reads, writes and calls nothing, returns what leaves a traced
//! function alone, and has its own recursion guard, so what the instance's programs do and see
//! is unchanged; observations are the same with and without anchors (see `Env::anchors`).
//! It takes one of the trampoline's program slots, and the trampoline stays between
//! instances (a function that is only called is slower, nothing else).
//!
//! Owns: the anchors and when one is made. Must not: anchor where `reuse` is off (each
//! instance on its own), or make an instance fail: an anchor that cannot be made is not made.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::bpf::{self, LoadParams, VmlinuxBtf};
use crate::compile::asm::Insn;
use crate::tables::ProgType;

/// `BPF_PROG_TYPE_TRACING`, `BPF_TRACE_FENTRY`.
const TRACING: u32 = 26;
const FENTRY: u32 = 24;
/// The attach types whose programs go through a BPF trampoline: fentry, fexit, fmod_ret, LSM.
const TRAMPOLINE: [u32; 4] = [24, 25, 26, 27];
/// Its log: an anchor's load is not an observation.
const LOG_SIZE: usize = 4096;

/// An anchor program and its attachment (dropped first: detached, then closed).
struct Anchor {
    _link: OwnedFd,
    _prog: OwnedFd,
}

/// Whether anchoring pays for one target. Registering a trampoline waits on some kernels and
/// for some targets (an LSM hook on 6.1 to 6.19: an attach and detach of about 90 ms under
/// TCG, against 35 ms anchored) and not for others (7.x, or 6.12's fentry on a test function:
/// 30 ms, against 40 to 55 ms anchored), so the executor times each target's first
/// [`SAMPLES`] attach and detach cycles without an anchor, then as many with one, and keeps
/// the faster (by each kind's quickest cycle: a first attachment also pays one-time costs).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    /// Quickest cycle of each kind so far, and how many of each were timed.
    Measuring {
        plain: (Duration, usize),
        anchored: (Duration, usize),
    },
    /// Anchored cycles were faster (the quickest cycle of each kind), or anchored without
    /// timing (`Anchoring::Always`: None).
    On(Option<(Duration, Duration)>),
    /// Cycles without an anchor were no slower (the quickest of each kind), or no anchor
    /// could be made (None).
    Off(Option<(Duration, Duration)>),
}

/// Whether an executor anchors trampolines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anchoring {
    /// Where timing a few attachments with and without an anchor shows it pays.
    #[default]
    Measured,
    Never,
    /// On every trampoline target, without timing anything (for comparing).
    Always,
}

impl Anchoring {
    /// `0` (never) or `1` (always), as `BPFCASE_ANCHORS` and `bpfcase.anchors=` say it.
    pub fn from_word(w: &str) -> Option<Anchoring> {
        match w {
            "0" => Some(Anchoring::Never),
            "1" => Some(Anchoring::Always),
            _ => None,
        }
    }
}

/// Cycles of each kind timed before deciding.
const SAMPLES: usize = 3;

/// What the cycle about to run measures, for [`Anchors::measured`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Trial {
    target: String,
    anchored: bool,
}

struct Target {
    verdict: Verdict,
    anchor: Option<Anchor>,
}

impl Target {
    fn new() -> Target {
        Target {
            verdict: Verdict::Measuring {
                plain: (Duration::MAX, 0),
                anchored: (Duration::MAX, 0),
            },
            anchor: None,
        }
    }
}

/// The targets seen, by function name: whether each gains from an anchor, and its anchor.
#[derive(Default)]
pub(super) struct Anchors {
    targets: HashMap<String, Target>,
}

impl Anchors {
    /// Before a `pt` program attached to `attach_to` (or its type's fixed target) is attached:
    /// anchors its trampoline when that pays, or is being measured, and says what the cycle
    /// measures (None: nothing). `measure`: whether the cycle will be timed (a program that
    /// stays attached is not: it is only anchored where that was found to pay).
    pub(super) fn before(
        &mut self,
        pt: &ProgType,
        attach_to: Option<&str>,
        btf: &VmlinuxBtf,
        measure: bool,
        always: bool,
    ) -> Option<Trial> {
        let on_trampoline = pt
            .expected_attach_type
            .is_some_and(|t| TRAMPOLINE.contains(&t));
        let name = attach_to.or(pt.attach_btf).filter(|_| on_trampoline)?;
        let t = self
            .targets
            .entry(name.to_string())
            .or_insert_with(Target::new);
        if always && t.anchor.is_none() {
            t.anchor = anchor(pt, name, btf);
            t.verdict = match t.anchor {
                Some(_) => Verdict::On(None),
                None => Verdict::Off(None),
            };
        }
        let anchored = match t.verdict {
            Verdict::Measuring { plain, .. } if plain.1 < SAMPLES => false,
            Verdict::Measuring { .. } => true,
            Verdict::On(..) | Verdict::Off(_) => return None,
        };
        if !measure {
            return None;
        }
        if anchored && t.anchor.is_none() {
            t.anchor = anchor(pt, name, btf);
            if t.anchor.is_none() {
                t.verdict = Verdict::Off(None);
                return None;
            }
        }
        Some(Trial {
            target: name.to_string(),
            anchored,
        })
    }

    /// How long attaching and detaching took in the cycle `before` asked to measure.
    pub(super) fn measured(&mut self, trial: Trial, took: Duration) {
        let Some(t) = self.targets.get_mut(&trial.target) else {
            return;
        };
        let Verdict::Measuring {
            mut plain,
            mut anchored,
        } = t.verdict
        else {
            return;
        };
        let kind = if trial.anchored {
            &mut anchored
        } else {
            &mut plain
        };
        *kind = (kind.0.min(took), kind.1 + 1);
        t.verdict = if anchored.1 < SAMPLES {
            Verdict::Measuring { plain, anchored }
        } else if anchored.0 < plain.0 {
            Verdict::On(Some((plain.0, anchored.0)))
        } else {
            t.anchor = None;
            Verdict::Off(Some((plain.0, anchored.0)))
        };
    }

    /// What was decided, for a breakdown: how many targets are anchored, of how many that
    /// were measured, with the median quickest cycle without and with an anchor of those, and
    /// the targets left without one with theirs.
    pub(super) fn verdict(&self) -> String {
        let ms = |(p, a): (Duration, Duration)| format!("{}/{} ms", p.as_millis(), a.as_millis());
        let mut names: Vec<&String> = self.targets.keys().collect();
        names.sort();
        let (mut on, mut timed, mut off) = (0, Vec::new(), Vec::new());
        for n in names {
            match self.targets[n].verdict {
                Verdict::On(t) => {
                    on += 1;
                    timed.extend(t);
                }
                Verdict::Off(Some(pa)) => off.push(format!("{n} {}", ms(pa))),
                Verdict::Off(None) => off.push(format!("{n}: none could be made")),
                Verdict::Measuring { .. } => {}
            }
        }
        let mut s = format!("on for {on} of {} targets", on + off.len());
        timed.sort();
        if let Some(&t) = timed.get(timed.len() / 2) {
            s.push_str(&format!(" ({})", ms(t)));
        }
        if !off.is_empty() {
            s.push_str(&format!("; off: {}", off.join(", ")));
        }
        s
    }
}

impl super::Env {
    /// Where this executor anchors trampolines (see [`Anchors::verdict`]), or `off`.
    pub fn anchoring(&self) -> String {
        let word = match self.anchors {
            _ if !self.reuse => return "off".into(),
            Anchoring::Never => return "off".into(),
            Anchoring::Always => "always: ",
            Anchoring::Measured => "",
        };
        format!("{word}{}", self.anchored.verdict())
    }

    /// [`Anchors::before`], when this executor keeps objects and anchors (the kernel's BTF is
    /// loaded by then: the program's attach target was looked up in it).
    pub(super) fn anchor(
        &mut self,
        pt: &ProgType,
        attach_to: Option<&str>,
        measure: bool,
    ) -> Option<Trial> {
        if !self.reuse || self.anchors == Anchoring::Never {
            return None;
        }
        let always = self.anchors == Anchoring::Always;
        match &self.vmlinux {
            Some(Ok(btf)) => self.anchored.before(pt, attach_to, btf, measure, always),
            _ => None,
        }
    }
}

/// An anchor for the trampoline of function `name`: an fentry program, else one of `pt`'s own
/// type.
fn anchor(pt: &ProgType, name: &str, btf: &VmlinuxBtf) -> Option<Anchor> {
    let id = btf.func_id(name)?;
    let fentry = (TRACING, Some(FENTRY), false);
    let own = (pt.id, pt.expected_attach_type, pt.sleepable);
    [fentry, own]
        .into_iter()
        .find_map(|kind| make(kind, id as u32))
}

/// Loads `r0 = 0; exit` as a program of `(type, attach type, sleepable)` on BTF function `id`
/// and attaches it.
fn make(
    (prog_type, expected_attach_type, sleepable): (u32, Option<u32>, bool),
    id: u32,
) -> Option<Anchor> {
    let insns = [
        // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        Insn {
            code: 0xb7,
            ..Insn::default()
        },
        // BPF_JMP | BPF_EXIT
        Insn {
            code: 0x95,
            ..Insn::default()
        },
    ];
    let params = LoadParams {
        prog_type,
        expected_attach_type,
        attach_btf_id: Some(id),
        sleepable,
        insns: &insns,
    };
    let prog = bpf::prog_load(&params, &mut [0u8; LOG_SIZE], 0).ok()?;
    let link = bpf::attach_btf_target(prog.as_fd()).ok()?;
    Some(Anchor {
        _link: link,
        _prog: prog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(target: &str, anchored: bool) -> Trial {
        Trial {
            target: target.into(),
            anchored,
        }
    }

    #[test]
    fn each_target_keeps_the_faster_kind_by_its_quickest_cycle() {
        let ms = Duration::from_millis;
        let mut a = Anchors::default();
        let cycles = |a: &mut Anchors, t: &str, anchored: bool, first: u64, rest: u64| {
            for i in 0..SAMPLES {
                a.measured(trial(t, anchored), ms(if i == 0 { first } else { rest }));
            }
        };
        for t in ["slow_to_register", "cheap", "tie"] {
            a.targets.insert(t.into(), Target::new());
        }
        // A first cycle pays one-time costs: the quickest counts.
        cycles(&mut a, "slow_to_register", false, 300, 95);
        cycles(&mut a, "cheap", false, 30, 28);
        cycles(&mut a, "tie", false, 30, 30);
        assert_eq!(a.verdict(), "on for 0 of 0 targets");
        a.measured(trial("slow_to_register", true), ms(60));
        // Not decided before SAMPLES anchored cycles.
        assert!(matches!(
            a.targets["slow_to_register"].verdict,
            Verdict::Measuring { .. }
        ));
        cycles(&mut a, "slow_to_register", true, 60, 40);
        cycles(&mut a, "cheap", true, 55, 25);
        cycles(&mut a, "tie", true, 31, 30);
        assert_eq!(
            a.targets["slow_to_register"].verdict,
            Verdict::On(Some((ms(95), ms(40))))
        );
        assert_eq!(
            a.targets["cheap"].verdict,
            Verdict::On(Some((ms(28), ms(25))))
        );
        // Anchored no quicker: off.
        let tie = Verdict::Off(Some((ms(30), ms(30))));
        assert_eq!(a.targets["tie"].verdict, tie);
        assert_eq!(
            a.verdict(),
            "on for 2 of 3 targets (95/40 ms); off: tie 30/30 ms"
        );
        // Decided targets measure nothing more; unknown ones are ignored.
        a.measured(trial("tie", true), ms(1));
        a.measured(trial("never_seen", false), ms(1));
        assert_eq!(a.targets["tie"].verdict, tie);
        assert_eq!(a.targets.len(), 3);
    }
}
