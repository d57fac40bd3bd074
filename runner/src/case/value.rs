//! Leaf values of the case format: numbers written as JSON numbers or expressions, byte
//! patterns, tasks and pidfd keys. Pure parsing, no kernel knowledge.

use serde_json::Value;

/// Parses a u64 written as a JSON number or a string expression: decimal, `0x…` hex, `1<<N`,
/// `u64::MAX`/`u32::MAX`/`i64::MAX`, a negative decimal (two's complement), or terms joined by `|`.
pub fn parse_u64(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(i) = n.as_i64() {
                Ok(i as u64)
            } else {
                Err(format!("{n} is not an integer"))
            }
        }
        Value::String(s) => parse_u64_expr(s),
        other => Err(format!("expected an integer, found {}", kind_of(other))),
    }
}

/// A u64 that must fit in 32 bits.
pub fn parse_u32(v: &Value) -> Result<u32, String> {
    let n = parse_u64(v)?;
    u32::try_from(n).map_err(|_| match v {
        Value::String(s) => {
            format!("`{s}` is {n:#x}, which does not fit in 32 bits (at most 0xffffffff)")
        }
        // A JSON integer, in decimal as written (a negative one too).
        other => format!("{other} does not fit in 32 bits (0 to 4294967295)"),
    })
}

fn parse_u64_expr(s: &str) -> Result<u64, String> {
    let mut acc = 0u64;
    for term in s.split('|') {
        acc |= parse_term(term.trim()).map_err(|e| format!("`{s}`: {e}"))?;
    }
    Ok(acc)
}

fn parse_term(t: &str) -> Result<u64, String> {
    match t {
        "u64::MAX" => return Ok(u64::MAX),
        "u32::MAX" => return Ok(u32::MAX as u64),
        "i64::MAX" => return Ok(i64::MAX as u64),
        "i32::MAX" => return Ok(i32::MAX as u64),
        _ => {}
    }
    if let Some((a, b)) = t.split_once("<<") {
        let base = parse_term(a.trim())?;
        let shift = parse_term(b.trim())?;
        if shift >= 64 {
            return Err(format!("shift by {shift} overflows 64 bits"));
        }
        return base
            .checked_shl(shift as u32)
            .filter(|v| v >> shift == base)
            .ok_or_else(|| "shift overflows 64 bits".to_string());
    }
    if let Some(neg) = t.strip_prefix('-').filter(|n| !n.starts_with(['-', '+'])) {
        let n: i64 = neg
            .parse::<i64>()
            .map_err(|_| format!("`{t}` is not a number"))?;
        return Ok((-n) as u64);
    }
    let parsed = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(&hex.replace('_', ""), 16)
    } else {
        t.replace('_', "").parse::<u64>()
    };
    parsed.map_err(|_| format!("`{t}` is not a number (decimal, 0x…, 1<<N, u64::MAX)"))
}

pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Bytes given for a map value: a number stored little-endian and zero-padded to the value
/// size (`"0x1122334455667788"`, `7`), or every byte the same (`"fill:0xaa"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Number(u64),
    Fill(u8),
}

impl Pattern {
    pub fn parse(v: &Value) -> Result<Pattern, String> {
        if let Value::String(s) = v {
            if let Some(b) = s.strip_prefix("fill:") {
                let n = parse_u64_expr(b)?;
                return u8::try_from(n)
                    .map(Pattern::Fill)
                    .map_err(|_| format!("fill byte {n:#x} does not fit in a byte"));
            }
        }
        parse_u64(v).map(Pattern::Number).map_err(|e| {
            format!("{e}; a value is a number (stored little-endian) or \"fill:0xNN\"")
        })
    }

    /// The pattern laid out over `size` bytes.
    pub fn bytes(&self, size: usize) -> Vec<u8> {
        match *self {
            Pattern::Number(n) => {
                let mut v = vec![0u8; size];
                let le = n.to_le_bytes();
                let k = size.min(8);
                v[..k].copy_from_slice(&le[..k]);
                v
            }
            Pattern::Fill(b) => vec![b; size],
        }
    }
}

/// The `value` argument of `bpf_task_storage_get` inside a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueArg {
    /// NULL.
    Null,
    /// A stack buffer of exactly value_size bytes holding the pattern.
    Init(Pattern),
    /// A stack buffer one byte smaller than value_size (the verifier should refuse it).
    Small,
    /// A stack buffer of value_size bytes that the program never writes.
    Uninit,
}

impl ValueArg {
    pub fn parse(v: &Value) -> Result<ValueArg, String> {
        match v {
            Value::Null => Ok(ValueArg::Null),
            Value::String(s) if s == "null" => Ok(ValueArg::Null),
            Value::String(s) if s == "small" => Ok(ValueArg::Small),
            Value::String(s) if s == "uninit" => Ok(ValueArg::Uninit),
            other => Pattern::parse(other)
                .map(ValueArg::Init)
                .map_err(|e| format!("{e}, or null, \"small\", \"uninit\"")),
        }
    }
}

/// The `flags` argument of `bpf_task_storage_get`: a constant the verifier sees, or a value
/// it cannot know, written by user space before the run (`"runtime:0x1"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsArg {
    Const(u64),
    Runtime(u64),
}

impl FlagsArg {
    pub fn parse(v: &Value) -> Result<FlagsArg, String> {
        if let Value::String(s) = v {
            if s == "runtime" {
                return Err(
                    "\"runtime\" needs the value passed at run time: \"runtime:0x1\"".into(),
                );
            }
            if let Some(rest) = s.strip_prefix("runtime:") {
                return parse_u64_expr(rest).map(FlagsArg::Runtime);
            }
        }
        parse_u64(v).map(FlagsArg::Const)
    }
}

/// A task argument inside a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskArg {
    /// `bpf_get_current_task_btf()`.
    Current,
    /// A NULL pointer.
    Null,
    /// A plain integer where a task pointer belongs (the verifier should refuse it).
    Scalar,
    /// A child process spawned by an earlier step, found with the `bpf_task_from_pid` kfunc.
    Child(String),
}

impl TaskArg {
    pub fn parse(v: &Value, children: &[String]) -> Result<TaskArg, String> {
        match v {
            Value::Null => Ok(TaskArg::Null),
            Value::String(s) => match s.as_str() {
                "current" => Ok(TaskArg::Current),
                "null" => Ok(TaskArg::Null),
                "scalar" => Ok(TaskArg::Scalar),
                name if children.iter().any(|c| c == name) => Ok(TaskArg::Child(name.into())),
                other => Err(format!(
                    "unknown task `{other}`: expected \"current\", null, \"scalar\" or a child spawned by an earlier step{}",
                    list_children(children)
                )),
            },
            other => Err(format!("expected a task name or null, found {}", kind_of(other))),
        }
    }
}

/// The key of a user-space map call: a pidfd, or something that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyArg {
    /// `pidfd_open(getpid())`: the runner itself (the task that runs the programs).
    SelfTask,
    /// The pidfd of a child spawned by an earlier step (opened when it was spawned).
    Child(String),
    /// An open fd that is not a pidfd (`/dev/null`).
    NotPidfd,
    /// An fd number that is not open.
    ClosedFd,
    /// The fd of an owner a `new` step created (a cgroup's directory).
    Owner(String),
}

impl KeyArg {
    /// `children`: the names of spawned children and of created owners.
    pub fn parse(v: &Value, children: &[String], owners: &[String]) -> Result<KeyArg, String> {
        match v {
            Value::String(s) => match s.as_str() {
                "self" | "current" => Ok(KeyArg::SelfTask),
                "not_pidfd" => Ok(KeyArg::NotPidfd),
                "closed_fd" => Ok(KeyArg::ClosedFd),
                name if children.iter().any(|c| c == name) => Ok(KeyArg::Child(name.into())),
                name if owners.iter().any(|c| c == name) => Ok(KeyArg::Owner(name.into())),
                other => Err(format!(
                    "unknown key `{other}`: expected \"self\", \"not_pidfd\", \"closed_fd\", a child spawned or an owner made by an earlier step{}",
                    list_children(&[children, owners].concat())
                )),
            },
            other => Err(format!("expected a key name, found {}", kind_of(other))),
        }
    }
}

fn list_children(children: &[String]) -> String {
    if children.is_empty() {
        String::new()
    } else {
        format!(" ({})", children.join(", "))
    }
}

/// Flags of a user-space map update.
pub fn parse_update_flags(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) if s == "any" => Ok(0),
        Value::String(s) if s == "noexist" => Ok(1),
        Value::String(s) if s == "exist" => Ok(2),
        Value::String(s) if s == "lock" => Ok(4),
        other => parse_u64(other).map_err(|e| format!("{e}; or \"any\", \"noexist\", \"exist\"")),
    }
}

/// A short, stable text for a matrix value, as used in instance ids: JSON integers in hex,
/// strings as written, null as `null`.
pub fn label(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_u64() {
            Some(u) => format!("{u:#x}"),
            None => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn u64_expressions() {
        assert_eq!(parse_u64(&json!(3)), Ok(3));
        assert_eq!(parse_u64(&json!("1<<32")), Ok(1 << 32));
        assert_eq!(parse_u64(&json!("1<<63")), Ok(1 << 63));
        assert_eq!(parse_u64(&json!("u64::MAX")), Ok(u64::MAX));
        assert_eq!(parse_u64(&json!("0x10 | 1")), Ok(0x11));
        assert_eq!(parse_u64(&json!("-1")), Ok(u64::MAX));
        assert_eq!(parse_u64(&json!(-2)), Ok(u64::MAX - 1));
        assert!(parse_u64(&json!("1<<64")).is_err());
        assert!(parse_u64(&json!("3<<63")).is_err());
        assert!(parse_u64(&json!("abc")).is_err());
        assert!(parse_u64(&json!("--1")).is_err());
        assert!(parse_u64(&json!(1.5)).is_err());
        assert!(parse_u64(&json!(null)).is_err());
        assert_eq!(parse_u32(&json!("u32::MAX")), Ok(u32::MAX));
        // Numbers as written: JSON integers in decimal, expressions with their value.
        let too_big = "does not fit in 32 bits (0 to 4294967295)";
        assert_eq!(
            parse_u32(&json!(1u64 << 32)),
            Err(format!("4294967296 {too_big}"))
        );
        assert_eq!(parse_u32(&json!(-1)), Err(format!("-1 {too_big}")));
        assert_eq!(
            parse_u32(&json!("1<<32")),
            Err(
                "`1<<32` is 0x100000000, which does not fit in 32 bits (at most 0xffffffff)".into()
            )
        );
    }

    #[test]
    fn patterns_and_args() {
        assert_eq!(
            Pattern::parse(&json!("0x0102")).unwrap().bytes(4),
            vec![2, 1, 0, 0]
        );
        assert_eq!(
            Pattern::parse(&json!("fill:0xaa")).unwrap().bytes(3),
            vec![0xaa; 3]
        );
        assert_eq!(Pattern::Number(0x0102).bytes(1), vec![2]);
        assert!(Pattern::parse(&json!("fill:0x100")).is_err());
        assert_eq!(ValueArg::parse(&json!(null)), Ok(ValueArg::Null));
        assert_eq!(ValueArg::parse(&json!("small")), Ok(ValueArg::Small));
        assert_eq!(ValueArg::parse(&json!("uninit")), Ok(ValueArg::Uninit));
        assert!(ValueArg::parse(&json!("big")).is_err());
        assert_eq!(
            FlagsArg::parse(&json!("runtime:1")),
            Ok(FlagsArg::Runtime(1))
        );
        assert_eq!(
            FlagsArg::parse(&json!("1<<63")),
            Ok(FlagsArg::Const(1 << 63))
        );
        assert!(FlagsArg::parse(&json!("runtime")).is_err());
        let kids = vec!["c".to_string()];
        assert_eq!(
            TaskArg::parse(&json!("c"), &kids),
            Ok(TaskArg::Child("c".into()))
        );
        assert_eq!(TaskArg::parse(&json!(null), &kids), Ok(TaskArg::Null));
        assert!(TaskArg::parse(&json!("d"), &kids)
            .unwrap_err()
            .contains("(c)"));
        let owners = ["a".to_string()];
        assert_eq!(
            KeyArg::parse(&json!("self"), &kids, &owners),
            Ok(KeyArg::SelfTask)
        );
        assert_eq!(
            KeyArg::parse(&json!("a"), &kids, &owners),
            Ok(KeyArg::Owner("a".into()))
        );
        assert!(KeyArg::parse(&json!("b"), &kids, &owners)
            .unwrap_err()
            .contains("(c, a)"));
        assert!(KeyArg::parse(&json!(3), &kids, &owners).is_err());
        assert_eq!(parse_update_flags(&json!("noexist")), Ok(1));
    }

    #[test]
    fn labels() {
        assert_eq!(label(&json!(2)), "0x2");
        assert_eq!(label(&json!("1<<63")), "1<<63");
        assert_eq!(label(&json!(null)), "null");
        assert_eq!(label(&json!("current")), "current");
        assert_eq!(label(&json!("runtime:1")), "runtime:1");
        assert_eq!(label(&json!("fill:0xaa")), "fill:0xaa");
    }
}
