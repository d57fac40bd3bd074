//! `--shard I/N`: a deterministic slice of a run. The units of work are (kernel, case file)
//! pairs in plan order, kernel first; shard I of N takes the I-th of N contiguous, near-equal
//! runs of them. With as many shards as kernels each shard is one kernel with every case; with
//! more, a kernel's case files are split between neighbouring shards.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(String);

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = |why: &str| ShardError(format!("{why}: write I/N, e.g. 2/5"));
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let num = |t: &str| t.trim().parse::<u32>().ok();
        let (Some(index), Some(count)) = (num(i), num(n)) else {
            return Err(bad("not two whole numbers"));
        };
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(ShardError(format!(
                "shard {index} of {count}: I runs from 1 to N"
            )));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The (kernel index, case file indexes) this shard runs, out of `kernels` × `cases`;
    /// kernels without a unit here are left out. Every unit is in exactly one shard of N.
    pub fn select(&self, kernels: usize, cases: usize) -> Vec<(usize, Vec<usize>)> {
        let units = kernels * cases;
        let (i, n) = (self.index as usize - 1, self.count as usize);
        let (from, to) = (units * i / n, units * (i + 1) / n);
        let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
        for u in from..to {
            let (k, c) = (u / cases, u % cases);
            match out.last_mut() {
                Some((last, cs)) if *last == k => cs.push(c),
                _ => out.push((k, vec![c])),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(s: &str) -> Shard {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(shard("2/5"), Shard { index: 2, count: 5 });
        assert_eq!(shard("2/5").to_string(), "2/5");
        for bad in ["", "1", "0/3", "4/3", "1/0", "a/b", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(
            "0/3".parse::<Shard>().unwrap_err().to_string(),
            "shard 0 of 3: I runs from 1 to N"
        );
    }

    #[test]
    fn one_shard_per_kernel_takes_every_case() {
        for i in 1..=3 {
            let s = Shard { index: i, count: 3 };
            assert_eq!(s.select(3, 4), vec![(i as usize - 1, vec![0, 1, 2, 3])]);
        }
    }

    #[test]
    fn shards_cover_every_unit_once() {
        for kernels in 0..5 {
            for cases in 1..6 {
                for n in 1..9u32 {
                    let mut seen = Vec::new();
                    for i in 1..=n {
                        for (k, cs) in (Shard { index: i, count: n }).select(kernels, cases) {
                            seen.extend(cs.into_iter().map(|c| (k, c)));
                        }
                    }
                    let all: Vec<(usize, usize)> = (0..kernels)
                        .flat_map(|k| (0..cases).map(move |c| (k, c)))
                        .collect();
                    assert_eq!(seen, all, "{kernels} kernels, {cases} cases, {n} shards");
                }
            }
        }
    }

    #[test]
    fn more_shards_than_kernels_split_cases() {
        let s = |i| Shard { index: i, count: 4 }.select(2, 3);
        assert_eq!(s(1), vec![(0, vec![0])]);
        assert_eq!(s(2), vec![(0, vec![1, 2])]);
        assert_eq!(s(3), vec![(1, vec![0])]);
        assert_eq!(s(4), vec![(1, vec![1, 2])]);
    }
}
