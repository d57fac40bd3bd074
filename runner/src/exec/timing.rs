//! Where an instance's time goes: a stopwatch that is always in exactly one phase, so the phases
//! of an instance add up to its whole time, and counters of what was created and what reused.
//!
//! Owns: the phase list and the accounting. Must not: change what an instance does; reading the
//! clock is the only cost it adds.

use std::time::{Duration, Instant};

/// A part of an instance's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Compiling its programs (user space only).
    Compile,
    /// Building and loading map BTF.
    Btf,
    /// Creating (or taking back) its maps and the result map, and setting their pre-state.
    Maps,
    /// Linking and loading programs: the verifier.
    Load,
    /// Writing run-time parameters and running the programs (test run, attach, trigger).
    Run,
    /// Reading result slots and making the user-space calls of its steps.
    Observe,
    /// Emptying storage, detaching, closing programs, maps and pidfds, ending children.
    Close,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Compile,
        Phase::Btf,
        Phase::Maps,
        Phase::Load,
        Phase::Run,
        Phase::Observe,
        Phase::Close,
    ];

    /// The phase's name in results (`Breakdown::phases`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Compile => "compile",
            Phase::Btf => "btf",
            Phase::Maps => "maps",
            Phase::Load => "load",
            Phase::Run => "run",
            Phase::Observe => "observe",
            Phase::Close => "close",
        }
    }

    /// What the phase covers, for a breakdown line.
    pub fn words(self) -> &'static str {
        match self {
            Phase::Compile => "compile (user space)",
            Phase::Btf => "map BTF: build, load",
            Phase::Maps => "maps: create or take back, pre-state",
            Phase::Load => "program load (verifier)",
            Phase::Run => "run: parameters, test run / attach + trigger",
            Phase::Observe => "observe: result slots, user-space steps",
            Phase::Close => "close: empty storage, close objects, children",
        }
    }
}

/// Counts of kernel objects an instance needed: made new, or taken from an earlier instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub instances: u64,
    pub btf_built: u64,
    pub btf_reused: u64,
    pub maps_created: u64,
    pub maps_reused: u64,
    /// Kept maps that were not empty after an instance (or could not be checked): closed.
    pub maps_dropped: u64,
    pub result_maps_created: u64,
    pub result_maps_reused: u64,
    pub progs_loaded: u64,
    /// Loads answered from the cache: an accepted program, or the verifier's earlier refusal.
    pub progs_reused: u64,
}

/// Time per phase and counts, summed over the instances since the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    pub phases: [Duration; Phase::ALL.len()],
    pub counts: Counts,
}

impl Timings {
    pub fn get(&self, p: Phase) -> Duration {
        self.phases[p as usize]
    }

    /// The time of all phases together.
    pub fn total(&self) -> Duration {
        self.phases.iter().sum()
    }
}

/// The stopwatch: `switch` charges the time since the last switch to the phase that was
/// running and starts another.
pub(super) struct Clock {
    running: Option<(Phase, Instant)>,
    pub(super) t: Timings,
}

impl Clock {
    pub(super) fn new() -> Clock {
        Clock {
            running: None,
            t: Timings::default(),
        }
    }

    /// Starts `p`; returns the phase that was running (to switch back to), if any.
    pub(super) fn switch(&mut self, p: Phase) -> Option<Phase> {
        let now = Instant::now();
        let prev = self.charge(now);
        self.running = Some((p, now));
        prev
    }

    /// Back to `prev` (from `switch`), or stopped.
    pub(super) fn resume(&mut self, prev: Option<Phase>) {
        match prev {
            Some(p) => {
                self.switch(p);
            }
            None => self.stop(),
        }
    }

    pub(super) fn stop(&mut self) {
        self.charge(Instant::now());
        self.running = None;
    }

    fn charge(&mut self, now: Instant) -> Option<Phase> {
        let (p, since) = self.running?;
        self.t.phases[p as usize] += now.saturating_duration_since(since);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_exclusive_and_add_up() {
        let mut c = Clock::new();
        assert_eq!(c.switch(Phase::Maps), None);
        std::thread::sleep(Duration::from_millis(2));
        let prev = c.switch(Phase::Btf);
        assert_eq!(prev, Some(Phase::Maps));
        std::thread::sleep(Duration::from_millis(2));
        c.resume(prev);
        c.switch(Phase::Load);
        c.stop();
        assert!(c.t.get(Phase::Maps) >= Duration::from_millis(2));
        assert!(c.t.get(Phase::Btf) >= Duration::from_millis(2));
        assert_eq!(c.t.get(Phase::Run), Duration::ZERO);
        assert_eq!(c.t.total(), c.t.phases.iter().sum::<Duration>());
        // Stopped: nothing more is charged.
        let before = c.t.clone();
        std::thread::sleep(Duration::from_millis(1));
        c.stop();
        assert_eq!(c.t, before);
    }

    #[test]
    fn resume_without_a_previous_phase_stops() {
        let mut c = Clock::new();
        let prev = c.switch(Phase::Compile);
        c.resume(prev);
        assert!(c.running.is_none());
    }
}
