//! The arguments and results of a `call` op: argument sources (constants, run-time values,
//! maps, tasks, stack buffers, earlier results, the context…) and how r0 is recorded. Leaves
//! are resolved like any other (`"$dim"` included) and located on error.

use std::collections::HashMap;

use serde_json::Value;

use super::instance::{Arg, Buf, BufFill, MapSpec, OpSpec, OwnerArg, OwnerRef, Ret};
use super::locate::FieldPath;
use super::resolve::{err, known, Ctx, ResolveError};
use super::value::{kind_of, parse_u32, parse_u64, Pattern, TaskArg};
use crate::tables::{self, OwnerKind};

/// What argument resolution needs to know about the program so far.
pub(super) struct Scope<'a> {
    pub ctx: &'a Ctx<'a>,
    pub children: &'a [String],
    /// Owners created by earlier `new` steps, with their kinds.
    pub owners: &'a [(String, &'static OwnerKind)],
    pub map_index: &'a dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
    /// The case's maps, for the fields of typed values.
    pub maps: &'a [MapSpec],
    /// The ops resolved so far, and their names → index.
    pub ops: &'a [OpSpec],
    pub index: &'a HashMap<String, usize>,
}

/// The source keys of an argument object, for error messages.
const SOURCES: &[&str] = &[
    "runtime", "map", "task", "pid", "buf", "result", "arg", "plus", "walk", "cgroup",
];

impl Scope<'_> {
    /// The leaf with a `"$dim"` replaced.
    pub fn leaf_value(&self, v: &Value, p: &FieldPath) -> Result<Value, ResolveError> {
        self.leaf(v, p)
    }

    /// The leaf with a `"$dim"` replaced.
    fn leaf(&self, v: &Value, p: &FieldPath) -> Result<Value, ResolveError> {
        self.ctx.typed(v, p, |v| Ok::<Value, String>(v.clone()))
    }

    /// One argument at `p`.
    pub fn arg(&self, v: &Value, p: &FieldPath) -> Result<Arg, ResolveError> {
        let v = self.leaf(v, p)?;
        match &v {
            Value::Null => Ok(Arg::Const(0)),
            Value::String(s) if s == "ctx" => Ok(Arg::Ctx),
            Value::Number(_) | Value::String(_) => parse_u64(&v).map(Arg::Const).map_err(|e| {
                (
                    p.clone(),
                    false,
                    format!(
                        "{e}; an argument is a number, \"ctx\", or an object with one of `{}`",
                        SOURCES.join("`, `")
                    ),
                )
            }),
            Value::Object(o) => {
                let Some(kind) = o.keys().find(|k| SOURCES.contains(&k.as_str())) else {
                    if let Some(k) = o.keys().next() {
                        return Err((
                            p.key(k),
                            true,
                            format!(
                                "unknown argument source `{k}`, expected one of `{}`",
                                SOURCES.join("`, `")
                            ),
                        ));
                    }
                    return err(
                        p.clone(),
                        format!("an argument object has one of `{}`", SOURCES.join("`, `")),
                    );
                };
                let extra: &[&str] = match kind.as_str() {
                    "buf" => &["size"],
                    "result" => &["offset", "field"],
                    "plus" => &["by"],
                    "walk" => &["fields", "type"],
                    _ => &[],
                };
                if let Some(k) = o
                    .keys()
                    .find(|k| *k != kind && !extra.contains(&k.as_str()))
                {
                    let also = if extra.is_empty() {
                        String::new()
                    } else {
                        format!(" (besides `{}`)", extra.join("`, `"))
                    };
                    return Err((
                        p.key(k),
                        true,
                        format!("unknown field `{k}` in a `{kind}` argument{also}"),
                    ));
                }
                let q = p.key(kind);
                let inner = &o[kind];
                let num = |key: &str, parse: fn(&Value) -> Result<u32, String>| match o.get(key) {
                    None => Ok(None),
                    Some(n) => self.ctx.typed(n, &p.key(key), parse).map(Some),
                };
                match kind.as_str() {
                    "runtime" => self.ctx.typed(inner, &q, parse_u64).map(Arg::Runtime),
                    "map" => {
                        let name = self.leaf(inner, &q)?;
                        match name.as_str() {
                            Some(n) => (self.map_index)(n, q).map(Arg::Map),
                            None => {
                                err(q, format!("expected a map name, found {}", kind_of(&name)))
                            }
                        }
                    }
                    "task" => self
                        .ctx
                        .typed(inner, &q, |v| TaskArg::parse(v, self.children))
                        .map(Arg::Task),
                    "cgroup" => self
                        .ctx
                        .typed(inner, &q, |v| self.owner(v, &tables::CGROUP_OWNER)),
                    "pid" => self
                        .ctx
                        .typed(inner, &q, |v| match TaskArg::parse(v, self.children)? {
                            TaskArg::Child(c) => Ok(c),
                            _ => Err("a pid is a child spawned by an earlier step".to_string()),
                        })
                        .map(Arg::Pid),
                    "buf" => {
                        let fill = self.ctx.typed(inner, &q, parse_fill)?;
                        let size = num("size", parse_u32)?;
                        Ok(Arg::Buf(Buf { fill, size }))
                    }
                    "result" => {
                        let name = self.leaf(inner, &q)?;
                        let Some(n) = name.as_str() else {
                            return err(
                                q,
                                format!("expected a result name, found {}", kind_of(&name)),
                            );
                        };
                        let op = self.earlier(n, q, has_value, "result with a value")?;
                        let offset = match o.get("field") {
                            Some(_) if o.contains_key("offset") => {
                                return err(
                                    p.key("field"),
                                    "`field` and `offset` both place the address: give one",
                                );
                            }
                            Some(f) => self.field_offset(op, n, f, &p.key("field"))?,
                            None => num("offset", parse_u32)?.unwrap_or(0),
                        };
                        let offset = offset_i32(offset, &p.key("offset"))?;
                        Ok(Arg::Result { op, offset })
                    }
                    "arg" => {
                        let n = self.ctx.typed(inner, &q, parse_u32)?;
                        if n > 11 {
                            return err(
                                q,
                                format!("hook argument {n}: a tracing hook has at most 12"),
                            );
                        }
                        Ok(Arg::HookArg(n))
                    }
                    "walk" => {
                        let base = self.arg(inner, &q)?;
                        let start = match o.get("type") {
                            None => "task_struct".to_string(),
                            Some(t) => self.ctx.typed(t, &p.key("type"), ident)?,
                        };
                        let fp = p.key("fields");
                        let Some(fields) = o.get("fields") else {
                            return err(p.clone(), "`walk` needs `fields`, the members to follow");
                        };
                        let Value::Array(list) = fields else {
                            return err(
                                fp,
                                format!(
                                    "expected a list of member names, found {}",
                                    kind_of(fields)
                                ),
                            );
                        };
                        if list.is_empty() {
                            return err(fp, "a walk follows at least one member");
                        }
                        let fields = list
                            .iter()
                            .enumerate()
                            .map(|(i, f)| self.ctx.typed(f, &fp.index(i), ident))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Arg::Walk {
                            base: Box::new(base),
                            start,
                            fields,
                        })
                    }
                    _ => {
                        let a = self.arg(inner, &q)?;
                        let Some(by) = o.get("by") else {
                            return err(p.clone(), "`plus` needs `by`, the number of bytes to add");
                        };
                        let by = self.ctx.typed(by, &p.key("by"), parse_u64)?;
                        let by = i32::try_from(by as i64).map_err(|_| {
                            (
                                p.key("by"),
                                false,
                                format!("{by:#x} does not fit in 32 bits"),
                            )
                        })?;
                        Ok(Arg::Plus(Box::new(a), by))
                    }
                }
            }
            other => err(
                p.clone(),
                format!(
                    "expected an argument (a number, \"ctx\" or an object), found {}",
                    kind_of(other)
                ),
            ),
        }
    }

    /// An owner argument of kind `kind`: null (0), `"scalar"` (1), `"self"` (the runner's own)
    /// or the name an earlier `new` step gave one.
    pub fn owner(&self, v: &Value, kind: &'static OwnerKind) -> Result<Arg, String> {
        let named: Vec<&str> = self
            .owners
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        match v {
            Value::Null => Ok(Arg::Const(0)),
            Value::String(s) => match s.as_str() {
                "null" => Ok(Arg::Const(0)),
                "scalar" => Ok(Arg::Const(1)),
                "self" => Ok(Arg::Owner(OwnerArg {
                    kind,
                    who: OwnerRef::Runner,
                })),
                n if named.contains(&n) => Ok(Arg::Owner(OwnerArg {
                    kind,
                    who: OwnerRef::Named(n.to_string()),
                })),
                other => Err(format!(
                    "unknown {} `{other}`: expected null, \"scalar\", \"self\" or one made by an earlier `new` step{}",
                    kind.name,
                    if named.is_empty() { String::new() } else { format!(" ({})", named.join(", ")) }
                )),
            },
            other => Err(format!("expected a {} name or null, found {}", kind.name, kind_of(other))),
        }
    }

    /// The index of the earlier op `name` that `ok` accepts.
    /// The offset of field `f` of the typed value result `name` (op `op`) points into: the
    /// map of a call whose `ret` is `value:MAP`, or else the call's first map argument.
    fn field_offset(
        &self,
        op: usize,
        name: &str,
        f: &Value,
        p: &FieldPath,
    ) -> Result<u32, ResolveError> {
        let f = self.leaf(f, p)?;
        let Some(f) = f.as_str() else {
            return err(
                p.clone(),
                format!("expected a field name, found {}", kind_of(&f)),
            );
        };
        let map = match &self.ops[op] {
            OpSpec::Call(c) => match c.ret {
                Ret::Value(m) => Some(m),
                _ => c.maps().first().copied(),
            },
            _ => None,
        };
        let Some(map) = map.map(|m| &self.maps[m]) else {
            return err(
                p.clone(),
                format!("`{name}` points into no map value: `field` needs a call on a map"),
            );
        };
        let Some(layout) = &map.layout else {
            return err(
                p.clone(),
                format!(
                    "map `{}` has no typed value: `field` needs one (or use `offset`)",
                    map.name
                ),
            );
        };
        match layout.field(f) {
            Some(field) => Ok(field.offset),
            None => err(
                p.clone(),
                format!(
                    "map `{}` has no field `{f}`{}",
                    map.name,
                    known(layout.fields.iter().map(|x| x.name.clone()))
                ),
            ),
        }
    }

    pub fn earlier(
        &self,
        name: &str,
        path: FieldPath,
        ok: impl Fn(&OpSpec) -> bool,
        what: &str,
    ) -> Result<usize, ResolveError> {
        match self.index.get(name).copied() {
            Some(i) if ok(&self.ops[i]) => Ok(i),
            Some(_) => err(path, format!("`{name}` is not a {what}")),
            None => err(
                path,
                format!(
                    "no earlier {what} named `{name}` in this program{}",
                    known(
                        self.ops
                            .iter()
                            .filter(|o| ok(o))
                            .map(|o| o.name().to_string())
                    )
                ),
            ),
        }
    }
}

/// Whether an op leaves a value later arguments and conditions can use: a call's r0 (not a
/// void one) or what a read got.
pub(super) fn has_value(o: &OpSpec) -> bool {
    match o {
        OpSpec::Call(c) => c.ret != Ret::Void,
        OpSpec::Read { .. } => true,
        _ => false,
    }
}

/// Whether an op's result is a pointer a `read` or `write` may go through.
pub(super) fn is_pointer(o: &OpSpec) -> bool {
    o.call().is_some_and(|c| c.ret.is_pointer())
}

/// A C identifier (a struct or member name).
fn ident(v: &Value) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a name, found {}", kind_of(v)))?;
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a C identifier"))
    }
}

fn offset_i32(n: u32, p: &FieldPath) -> Result<i32, ResolveError> {
    i32::try_from(n).map_err(|_| (p.clone(), false, format!("offset {n} is too large")))
}

fn parse_fill(v: &Value) -> Result<BufFill, String> {
    match v {
        Value::String(s) if s == "small" => Ok(BufFill::Small),
        Value::String(s) if s == "uninit" => Ok(BufFill::Uninit),
        Value::String(s) if s == "half" => Ok(BufFill::Half),
        other => Pattern::parse(other)
            .map(BufFill::Init)
            .map_err(|e| format!("{e}, or \"small\", \"uninit\", \"half\"")),
    }
}

/// The `ret` of a call: `"int"`, `"ptr"`, `"task"`, `"u64"`, `"void"` or `"value:MAP"`.
pub(super) fn parse_ret(
    v: &Value,
    map_index: &dyn Fn(&str) -> Result<usize, String>,
) -> Result<Ret, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a result kind, found {}", kind_of(v)))?;
    match s {
        "int" => Ok(Ret::Int),
        "ptr" => Ok(Ret::Ptr),
        "task" => Ok(Ret::Task),
        "u64" => Ok(Ret::U64),
        "void" => Ok(Ret::Void),
        _ => match s.strip_prefix("value:") {
            Some(m) => map_index(m).map(Ret::Value),
            None => Err(format!(
                "unknown result kind `{s}`: expected \"int\", \"ptr\", \"task\", \"u64\", \"void\" or \"value:MAP\""
            )),
        },
    }
}
