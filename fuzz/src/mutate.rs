//! A JSON-aware mutator for the pipeline target. Byte mutations of a case file mostly break its
//! JSON; half of the time this one instead parses the input, changes one node of the document
//! and writes it back: a leaf becomes an edge value (0, 512, u32::MAX, `"max"`, `"small"` …) or
//! a copy of another node, a member or element is removed, duplicated or added. The other half,
//! and for inputs that are not JSON, libFuzzer's own byte mutations run (`fallback`), so the
//! parser's error paths are fuzzed too.

use serde_json::{Map, Value};

/// Values that sit on the edges of what the compiler and the parser accept: stack and offset
/// limits, integer widths, and the format's special words.
const EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "7",
    "8",
    "9",
    "16",
    "63",
    "64",
    "65",
    "504",
    "505",
    "511",
    "512",
    "513",
    "32767",
    "32768",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775808",
    "1.5",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "\"\"",
    "\"u32::MAX\"",
    "\"u64::MAX\"",
    "\"i32::MAX\"",
    "\"1<<31\"",
    "\"1<<63\"",
    "\"0xffff_ffff | 1\"",
    "\"max\"",
    "\"max+1\"",
    "\"small\"",
    "\"uninit\"",
    "\"absent\"",
    "\"current\"",
    "\"self\"",
    "\"runtime:1\"",
    "\"runtime:0xffffffffffffffff\"",
    "\"fill:0xff\"",
    "\"task_storage\"",
    "\"hash\"",
    "\"syscall\"",
    "\"fentry\"",
    "\"lsm.s\"",
    "\"$prog\"",
    "\"*\"",
    "\"[\"",
    "\"é→\"",
    "\"\\u0000\"",
];

/// Member names a mutation may add to an object.
const KEYS: &[&str] = &[
    "about",
    "name",
    "maps",
    "program",
    "type",
    "object",
    "matrix",
    "exclude",
    "steps",
    "expect",
    "when",
    "then",
    "because",
    "value_size",
    "key_size",
    "max_entries",
    "flags",
    "btf",
    "preset",
    "prog",
    "ops",
    "get",
    "delete",
    "read",
    "write",
    "current_task",
    "lookup",
    "update",
    "next_key",
    "spawn",
    "exit",
    "reap",
    "map",
    "task",
    "value",
    "offset",
    "size",
    "null_check",
    "from",
    "to",
    "as",
    "attach_to",
    "stay",
];

/// A small deterministic generator: the same seed gives the same mutation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates `data[..size]` in place into at most `max_size` bytes; returns the new size.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng(u64::from(seed) << 1 | 1);
    let doc = serde_json::from_slice::<Value>(&data[..size.min(data.len())]).ok();
    let Some(mut doc) = doc.filter(|_| rng.below(2) == 0) else {
        return fallback(data, size, max_size);
    };
    change_one_node(&mut doc, &mut rng);
    let text = if rng.below(2) == 0 {
        serde_json::to_vec(&doc)
    } else {
        serde_json::to_vec_pretty(&doc)
    };
    match text {
        Ok(text) if text.len() <= max_size.min(data.len()) => {
            data[..text.len()].copy_from_slice(&text);
            text.len()
        }
        _ => fallback(data, size, max_size),
    }
}

fn change_one_node(doc: &mut Value, rng: &mut Rng) {
    let nodes = count(doc);
    let other = nth(doc, rng.below(nodes)).cloned().unwrap_or(Value::Null);
    let edge = EDGES[rng.below(EDGES.len())];
    let edge: Value = serde_json::from_str(edge).unwrap_or(Value::Null);
    let choice = rng.below(4);
    // Never the whole document: a case is an object, and its members are what to change.
    let pick = 1 + rng.below(nodes.saturating_sub(1));
    let key_pick = rng.below(KEYS.len() + 1);
    let Some(node) = nth_mut(doc, pick) else {
        return; // a document of one node: nothing below it to change
    };
    match (choice, node) {
        (0, node) => *node = edge,
        (1, node) => *node = other,
        (2, Value::Array(a)) if !a.is_empty() => {
            let i = rng.below(a.len());
            a.remove(i);
        }
        (2, Value::Object(o)) if !o.is_empty() => {
            let i = rng.below(o.len());
            if let Some(k) = o.keys().nth(i).cloned() {
                o.remove(&k);
            }
        }
        (_, Value::Array(a)) => {
            let item = match a.get(rng.below(a.len())) {
                Some(v) if rng.below(2) == 0 => v.clone(),
                _ => other,
            };
            let at = rng.below(a.len() + 1);
            a.insert(at, item);
        }
        (_, Value::Object(o)) => {
            let key = match KEYS.get(key_pick) {
                Some(k) => (*k).to_string(),
                None => fresh_key(o),
            };
            let value = if rng.below(2) == 0 { edge } else { other };
            o.insert(key, value);
        }
        (_, node) => *node = edge,
    }
}

/// A name not yet in the object, after one of its own (a second map `st2` beside `st`).
fn fresh_key(o: &Map<String, Value>) -> String {
    let base = o.keys().next().map_or("k", String::as_str);
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|k| !o.contains_key(k))
        .unwrap_or_default()
}

/// Nodes of the document, counted in pre-order.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The node at pre-order position `n`.
fn nth(v: &Value, n: usize) -> Option<&Value> {
    fn walk<'a>(v: &'a Value, n: &mut usize) -> Option<&'a Value> {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter().find_map(|c| walk(c, n)),
            Value::Object(o) => o.values().find_map(|c| walk(c, n)),
            _ => None,
        }
    }
    let mut n = n;
    walk(v, &mut n)
}

/// The node at pre-order position `n`, to change.
fn nth_mut(v: &mut Value, n: usize) -> Option<&mut Value> {
    fn walk<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|c| walk(c, n)),
            Value::Object(o) => o.values_mut().find_map(|c| walk(c, n)),
            _ => None,
        }
    }
    let mut n = n;
    walk(v, &mut n)
}
