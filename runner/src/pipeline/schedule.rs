//! Which guest starts first: the longest expected first, so that the last guest to finish is
//! not a long one started late. What a kernel costs is learned from earlier runs (kept in the
//! cache as seconds to boot and seconds per instance, per kernel spec); a kernel never seen is
//! expected to cost the mean of those known, or a fixed guess.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::KernelRun;

const FILE: &str = "timings.json";

/// Without any history: a TCG boot to the runner, and an instance.
const GUESS_BOOT_S: f64 = 4.0;
const GUESS_PER_INSTANCE_S: f64 = 0.03;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub boot_s: f64,
    pub per_instance_s: f64,
}

impl Cost {
    pub fn of(&self, instances: usize) -> f64 {
        self.boot_s + self.per_instance_s * instances as f64
    }
}

/// The costs learned so far, by kernel spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Costs(pub BTreeMap<String, Cost>);

impl Costs {
    pub fn load(cache: &Path) -> Costs {
        std::fs::read_to_string(cache.join(FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Keeps the costs (written whole, then renamed); a cache that cannot be written only
    /// loses the ordering hint.
    pub fn store(&self, cache: &Path) {
        let Ok(text) = serde_json::to_string_pretty(self) else {
            return;
        };
        let tmp = cache.join(format!(".{FILE}.{}", std::process::id()));
        let _ = std::fs::create_dir_all(cache)
            .and_then(|()| std::fs::write(&tmp, text + "\n"))
            .and_then(|()| std::fs::rename(&tmp, cache.join(FILE)));
        let _ = std::fs::remove_file(&tmp);
    }

    /// What a guest run of `spec` showed: its boot and its cost per instance.
    pub fn learn(&mut self, spec: &str, run: &KernelRun) {
        let Some(t) = run.timings.first() else { return };
        let (Some(boot), n) = (t.boot_s, run.instances.len()) else {
            return;
        };
        if n == 0 || run.unusable.is_some() {
            return;
        }
        let per = ((t.total_s - boot).max(0.0)) / n as f64;
        self.0.insert(
            spec.to_string(),
            Cost {
                boot_s: boot,
                per_instance_s: per,
            },
        );
    }

    /// The expected cost of `spec` running `instances` instances.
    pub fn expect(&self, spec: &str, instances: usize) -> f64 {
        let cost = self.0.get(spec).copied().unwrap_or_else(|| {
            if self.0.is_empty() {
                Cost {
                    boot_s: GUESS_BOOT_S,
                    per_instance_s: GUESS_PER_INSTANCE_S,
                }
            } else {
                let n = self.0.len() as f64;
                Cost {
                    boot_s: self.0.values().map(|c| c.boot_s).sum::<f64>() / n,
                    per_instance_s: self.0.values().map(|c| c.per_instance_s).sum::<f64>() / n,
                }
            }
        });
        cost.of(instances)
    }
}

/// The order to start `jobs` (spec, instances): longest expected first; equal costs keep the
/// plan's order.
pub fn order(costs: &Costs, jobs: &[(String, usize)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..jobs.len()).collect();
    let cost: Vec<f64> = jobs.iter().map(|(s, n)| costs.expect(s, *n)).collect();
    idx.sort_by(|&a, &b| cost[b].total_cmp(&cost[a]).then(a.cmp(&b)));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(v: &[(&str, f64, f64)]) -> Costs {
        Costs(
            v.iter()
                .map(|(s, b, p)| {
                    (
                        s.to_string(),
                        Cost {
                            boot_s: *b,
                            per_instance_s: *p,
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn the_longest_expected_starts_first() {
        let c = costs(&[("debian:6.1", 3.0, 0.03), ("debian:7.3", 5.0, 0.01)]);
        let jobs = vec![
            ("debian:7.3".to_string(), 300), // 8 s
            ("debian:6.1".to_string(), 300), // 12 s
            ("debian:5.10".to_string(), 1),  // the mean: 4 + 0.02
        ];
        assert_eq!(order(&c, &jobs), vec![1, 0, 2]);
    }

    #[test]
    fn without_history_the_plan_order_stays_for_equal_work() {
        let jobs = vec![
            ("a".to_string(), 10),
            ("b".to_string(), 10),
            ("c".to_string(), 20),
        ];
        assert_eq!(order(&Costs::default(), &jobs), vec![2, 0, 1]);
    }

    #[test]
    fn costs_round_trip_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let c = costs(&[("debian:6.1", 3.25, 0.5)]);
        c.store(dir.path());
        assert_eq!(Costs::load(dir.path()), c);
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert_eq!(Costs::load(dir.path()), Costs::default());
    }
}
