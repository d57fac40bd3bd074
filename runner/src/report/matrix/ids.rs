//! Instance ids of one case written compactly: ids that together cover every combination of
//! some binding values become one pattern, `flags={0x2,0x3}/value=*/task=null`, where `*`
//! stands for every value the case has for that dimension.
//!
//! Owns: the id pattern syntax. Must not: depend on observations.

/// The value set of each dimension, in the order the case's ids give them.
type Pattern<'a> = Vec<Vec<&'a str>>;

/// `ids` (a subset of the case's ids `all`, each `case/k=v/k=v…`) as patterns, in order of
/// first appearance. Ids that do not share one `k=v` shape are returned as they are, without
/// the case name.
pub fn compact(ids: &[&str], all: &[&str]) -> Vec<String> {
    let plain = || ids.iter().map(|i| super::short_id(i).to_string()).collect();
    let (Some(parsed), Some(universe)) = (parse_all(ids), parse_all(all)) else {
        return plain();
    };
    let Some(keys) = parsed
        .first()
        .map(|p| p.iter().map(|(k, _)| *k).collect::<Vec<_>>())
    else {
        return Vec::new();
    };
    let same_keys = |p: &Vec<(&str, &str)>| p.iter().map(|(k, _)| *k).eq(keys.iter().copied());
    if keys.is_empty() || !parsed.iter().chain(&universe).all(same_keys) {
        return plain();
    }
    let domain: Vec<Vec<&str>> = (0..keys.len())
        .map(|d| {
            let mut v: Vec<&str> = Vec::new();
            for p in universe.iter().chain(&parsed) {
                if !v.contains(&p[d].1) {
                    v.push(p[d].1);
                }
            }
            v
        })
        .collect();
    let mut rows: Vec<Vec<&str>> = parsed
        .iter()
        .map(|p| p.iter().map(|(_, v)| *v).collect())
        .collect();
    rows.dedup();
    let patterns = split(&rows, &domain);
    let every = |p: &Pattern| {
        p.iter()
            .zip(&domain)
            .all(|(s, d)| s.len() == d.len() && d.len() > 1)
    };
    patterns
        .iter()
        .map(|p| {
            if every(p) {
                return "every instance".to_string();
            }
            p.iter()
                .zip(&keys)
                .zip(&domain)
                .map(|((set, k), d)| match set.as_slice() {
                    [v] => format!("{k}={v}"),
                    _ if set.len() == d.len() => format!("{k}=*"),
                    _ => format!("{k}={{{}}}", set.join(",")),
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

fn parse_all<'a>(ids: &[&'a str]) -> Option<Vec<Vec<(&'a str, &'a str)>>> {
    ids.iter()
        .map(|id| {
            let (_, rest) = id.split_once('/')?;
            rest.split('/').map(|seg| seg.split_once('=')).collect()
        })
        .collect()
}

/// The distinct values of dimension `d` among `rows`, in domain order.
fn values<'a>(rows: &[Vec<&'a str>], d: usize, domain: &[Vec<&'a str>]) -> Vec<&'a str> {
    domain[d]
        .iter()
        .copied()
        .filter(|v| rows.iter().any(|r| r[d] == *v))
        .collect()
}

/// Patterns covering exactly `rows`: one when they form a product of their values, else the
/// fewest found by splitting on one dimension with several values (the first such on a tie)
/// and merging the parts that look alike.
fn split<'a>(rows: &[Vec<&'a str>], domain: &[Vec<&'a str>]) -> Vec<Pattern<'a>> {
    let sets: Pattern = (0..domain.len()).map(|d| values(rows, d, domain)).collect();
    let product: usize = sets.iter().map(Vec::len).product();
    if product == rows.len() {
        return vec![sets];
    }
    let mut best: Option<Vec<Pattern>> = None;
    for d in (0..domain.len()).filter(|&d| sets[d].len() > 1) {
        let out = split_on(rows, domain, &sets, d);
        if best.as_ref().is_none_or(|b| out.len() < b.len()) {
            best = Some(out);
        }
    }
    best.unwrap_or_else(|| vec![sets])
}

fn split_on<'a>(
    rows: &[Vec<&'a str>],
    domain: &[Vec<&'a str>],
    sets: &Pattern<'a>,
    d: usize,
) -> Vec<Pattern<'a>> {
    let mut out: Vec<Pattern> = Vec::new();
    for v in &sets[d] {
        let part: Vec<Vec<&str>> = rows.iter().filter(|r| r[d] == *v).cloned().collect();
        for p in split(&part, domain) {
            let alike = |q: &Pattern| (0..domain.len()).all(|e| e == d || q[e] == p[e]);
            match out.iter_mut().find(|q| alike(q)) {
                Some(q) => q[d].push(v),
                None => out.push(p),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        let mut v = Vec::new();
        for f in ["0x0", "0x2", "1<<63"] {
            for val in ["null", "0x11"] {
                for t in ["current", "null"] {
                    v.push(format!("c/flags={f}/value={val}/task={t}"));
                }
            }
        }
        v
    }

    fn run(pick: impl Fn(&str) -> bool) -> Vec<String> {
        let all = all();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let ids: Vec<&str> = all.iter().copied().filter(|i| pick(i)).collect();
        compact(&ids, &all)
    }

    #[test]
    fn products_become_one_pattern() {
        assert_eq!(
            run(|i| i.ends_with("task=null") && !i.contains("0x0/")),
            ["flags={0x2,1<<63}/value=*/task=null"]
        );
        assert_eq!(run(|_| true), ["every instance"]);
        assert_eq!(
            run(|i| i == "c/flags=0x0/value=null/task=current"),
            ["flags=0x0/value=null/task=current"]
        );
    }

    #[test]
    fn other_sets_split_and_merge_alike_parts() {
        // task=null everywhere, plus flags=0x0 with task=current and value=null.
        let got = run(|i| i.ends_with("task=null") || i == "c/flags=0x0/value=null/task=current");
        assert_eq!(
            got,
            [
                "flags=0x0/value=null/task=current",
                "flags=*/value=*/task=null"
            ]
        );
        let got = run(|i| !i.contains("0x2/") && (i.contains("null/") || i.ends_with("current")));
        assert_eq!(
            got,
            [
                "flags={0x0,1<<63}/value=null/task=*",
                "flags={0x0,1<<63}/value=0x11/task=current"
            ]
        );
    }

    #[test]
    fn ids_of_another_shape_stay_as_they_are() {
        assert_eq!(compact(&["c/a=1", "c/b"], &["c/a=1", "c/b"]), ["a=1", "b"]);
        assert_eq!(compact(&["c"], &["c"]), ["(single)"]);
        assert!(compact(&[], &["c/a=1"]).is_empty());
    }
}
