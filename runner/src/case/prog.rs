//! A `prog` step: its operations, its program type, attach target and whether it stays
//! attached, each leaf resolved like any other (`"$dim"` included) and located on error.

use std::collections::HashMap;

use serde_json::Value;

use super::args::{has_value, is_pointer, parse_ret, Scope};
use super::instance::{Arg, Buf, Call, Cond, Func, MapSpec, OpSpec, Ret, StepSpec, Width};
use super::locate::FieldPath;
use super::model::{CallDef, IfDef, Op, ProgBody};
use super::names::ops_path;
use super::resolve::{bool_leaf, err, opt, parse_prog_type, Ctx, ResolveError};
use super::trigger::{resolve_run, ProgRun};
use super::value::{kind_of, parse_u32, parse_u64, FlagsArg, TaskArg, ValueArg};
use crate::tables::helpers::{self, RetDefault};
use crate::tables::{self, OwnerKind, ProgType};

/// Resolves one `prog` step at `p`; `prog_type` is the case's program type, `children` those
/// spawned by earlier steps; names come from `next_name` in step order; `maps` are the case's
/// resolved maps (the fields of typed values).
#[allow(clippy::too_many_arguments)]
pub(super) fn resolve_prog(
    ctx: &Ctx<'_>,
    body: &ProgBody,
    p: &FieldPath,
    prog_type: &'static ProgType,
    children: &[String],
    owners: &[(String, &'static OwnerKind)],
    next_name: &mut dyn FnMut() -> String,
    map_index: &dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
    maps: &[MapSpec],
) -> Result<StepSpec, ResolveError> {
    let name = next_name();
    let asm = match body {
        ProgBody::Program(ps) => match &ps.asm {
            Some(text) => Some(Box::new(super::asm::resolve_asm(
                text,
                &p.key("prog"),
                !ps.ops.is_empty(),
                next_name(),
                map_index,
            )?)),
            None => None,
        },
        ProgBody::Ops(_) => None,
    };
    let object = match body {
        ProgBody::Program(ps) => {
            super::object::resolve_object(ctx, ps, &p.key("prog"), asm.is_some(), next_name)?
                .map(Box::new)
        }
        _ => None,
    };
    let mut out: Vec<OpSpec> = Vec::new();
    // Op names in this program → index (names are unique: `name_results` checked them).
    let mut index: HashMap<String, usize> = HashMap::new();
    let ops_path = ops_path(p, body);
    let mut r = Ops {
        ctx,
        children,
        owners,
        map_index,
        maps,
        next_name,
        out: &mut out,
        index: &mut index,
    };
    r.ops(body.ops(), &ops_path)?;
    if out.is_empty() && asm.is_none() && object.is_none() {
        return err(ops_path, "a program needs at least one operation");
    }
    let (prog_type, attach_to, stay, run) = match body {
        ProgBody::Ops(_) => (prog_type, None, false, ProgRun::default()),
        ProgBody::Program(ps) => {
            let pt = match &ps.kind {
                None => prog_type,
                Some(k) => ctx.typed(k, &p.key("prog").key("type"), parse_prog_type)?,
            };
            let attach_to = match &ps.attach_to {
                None => None,
                Some(v) => Some(ctx.typed(v, &p.key("prog").key("attach_to"), parse_btf_name)?),
            };
            let stay = opt(ctx, &ps.stay, &p.key("prog").key("stay"), false, bool_leaf)?;
            if attach_to.is_some() && pt.attach_btf.is_none() {
                return err(
                    p.key("prog").key("attach_to"),
                    format!("{} programs are not attached to a kernel function", pt.name),
                );
            }
            if stay
                && matches!(
                    pt.run,
                    tables::RunMode::AttachTrigger(tables::Attach::PerfSoftware, _)
                )
            {
                return err(
                    p.key("prog").key("stay"),
                    format!(
                        "{} programs count timer ticks: their counts differ from run to run",
                        pt.name
                    ),
                );
            }
            if stay && (asm.is_some() || object.is_some()) {
                return err(
                    p.key("prog").key("stay"),
                    "a program given as `asm` or `object` cannot stay attached: it counts nothing",
                );
            }
            if stay && !pt.attached() {
                return err(
                    p.key("prog").key("stay"),
                    format!("{} programs are not attached", pt.name),
                );
            }
            let run = resolve_run(ctx, ps, &p.key("prog"), pt, stay, children, owners)?;
            (pt, attach_to, stay, run)
        }
    };
    Ok(StepSpec::Prog {
        name,
        ops: out,
        prog_type,
        attach_to,
        stay,
        run,
        asm,
        object,
    })
}

/// A name in the kernel's BTF (a function, or a `btf_trace_*` typedef): a C identifier.
fn parse_btf_name(v: &Value) -> Result<String, String> {
    let name = v
        .as_str()
        .ok_or_else(|| format!("expected a kernel function name, found {}", kind_of(v)))?;
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        Ok(name.to_string())
    } else {
        Err(format!(
            "`{name}` is not a kernel function name (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

/// The helper a `get` or `delete` calls for its owner's kind.
fn storage_helper(name: &str, q: &FieldPath) -> Result<&'static tables::Helper, ResolveError> {
    helpers::helper(name).ok_or_else(|| (q.clone(), false, format!("no helper `{name}`")))
}

/// Resolves a list of ops into `out`, flattened: an `if` is followed by its branches.
struct Ops<'a, 'b> {
    ctx: &'a Ctx<'a>,
    children: &'a [String],
    owners: &'a [(String, &'static OwnerKind)],
    map_index: &'a dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
    maps: &'a [MapSpec],
    next_name: &'b mut dyn FnMut() -> String,
    out: &'b mut Vec<OpSpec>,
    index: &'b mut HashMap<String, usize>,
}

impl Ops<'_, '_> {
    fn ops(&mut self, ops: &[Op], path: &FieldPath) -> Result<(), ResolveError> {
        for (j, op) in ops.iter().enumerate() {
            self.op(op, &path.index(j))?;
        }
        Ok(())
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            ctx: self.ctx,
            children: self.children,
            owners: self.owners,
            map_index: self.map_index,
            maps: self.maps,
            ops: self.out,
            index: self.index,
        }
    }

    fn push(&mut self, spec: OpSpec) {
        self.index.insert(spec.name().to_string(), self.out.len());
        self.out.push(spec);
    }

    fn task(&self, v: &Value, p: &FieldPath) -> Result<TaskArg, ResolveError> {
        self.ctx.typed(v, p, |v| TaskArg::parse(v, self.children))
    }

    /// The owner argument of a `get` or `delete` at `q`: one of its `task`, `cgroup`, `inode`
    /// or `sk`; the kind says which helper is called.
    fn storage_owner(
        &self,
        given: [&Option<Value>; 4],
        q: &FieldPath,
    ) -> Result<(Arg, &'static OwnerKind), ResolveError> {
        const FIELDS: [(&str, &OwnerKind); 4] = [
            ("task", &tables::TASK_OWNER),
            ("cgroup", &tables::CGROUP_OWNER),
            ("inode", &tables::FILE_OWNER),
            ("sk", &tables::SOCKET_OWNER),
        ];
        let mut present = FIELDS
            .iter()
            .zip(given)
            .filter_map(|(f, v)| v.as_ref().map(|v| (f, v)));
        let Some(((field, kind), v)) = present.next() else {
            return err(
                q.clone(),
                "missing the owner: `task` (task storage), `cgroup`, `inode` or `sk`",
            );
        };
        if let Some(((other, _), _)) = present.next() {
            return err(
                q.key(other),
                format!("one owner: `{field}` is given, `{other}` too"),
            );
        }
        let p = q.key(field);
        let arg = match kind.made {
            tables::Made::Child => Arg::Task(self.task(v, &p)?),
            tables::Made::Cgroup => self.ctx.typed(v, &p, |v| self.scope().owner(v, kind))?,
            // Found in the hook's arguments or context, like any other argument.
            _ => match self.scope().leaf_value(v, &p)? {
                Value::String(s) if s == "scalar" => Arg::Const(1),
                _ => self.scope().arg(v, &p)?,
            },
        };
        Ok((arg, kind))
    }

    fn op(&mut self, op: &Op, op_path: &FieldPath) -> Result<(), ResolveError> {
        let ctx = self.ctx;
        let op_name = (self.next_name)();
        let spec = match op {
            // `get`, `delete` and `current_task` are spellings of `call`.
            Op::Get(d) => {
                let q = op_path.key("get");
                let map = (self.map_index)(&d.map, q.key("map"))?;
                let (owner, kind) =
                    self.storage_owner([&d.task, &d.cgroup, &d.inode, &d.sk], &q)?;
                OpSpec::get_of(
                    op_name,
                    map,
                    storage_helper(kind.get, &q)?,
                    owner,
                    ctx.typed(&d.value, &q.key("value"), ValueArg::parse)?,
                    ctx.typed(&d.flags, &q.key("flags"), FlagsArg::parse)?,
                )
            }
            Op::CurrentTask(_) => OpSpec::current_task(op_name),
            Op::Delete(d) => {
                let q = op_path.key("delete");
                let map = (self.map_index)(&d.map, q.key("map"))?;
                let (owner, kind) =
                    self.storage_owner([&d.task, &d.cgroup, &d.inode, &d.sk], &q)?;
                OpSpec::delete_of(op_name, map, storage_helper(kind.delete, &q)?, owner)
            }
            Op::Call(d) => self.call(d, op_name, &op_path.key("call"))?,
            Op::Let(d) => {
                let q = op_path.key("let");
                let value = self.scope().arg(&d.value, &q.key("value"))?;
                let ret = match &d.ret {
                    Some(v) => {
                        let maps =
                            |n: &str| (self.map_index)(n, q.key("ret")).map_err(|(_, _, e)| e);
                        self.ctx.typed(v, &q.key("ret"), |v| parse_ret(v, &maps))?
                    }
                    None => Ret::Ptr,
                };
                OpSpec::Call(Call {
                    name: op_name,
                    func: Func::Value,
                    args: vec![value],
                    ret,
                })
            }
            Op::Read(d) => {
                let q = op_path.key("read");
                OpSpec::Read {
                    name: op_name,
                    from: self.scope().earlier(
                        &d.from,
                        q.key("from"),
                        is_pointer,
                        "pointer result",
                    )?,
                    offset: opt(ctx, &d.offset, &q.key("offset"), 0, parse_u32)?,
                    width: opt(ctx, &d.size, &q.key("size"), Width::B8, Width::parse)?,
                    null_check: opt(ctx, &d.null_check, &q.key("null_check"), true, bool_leaf)?,
                }
            }
            Op::Write(d) | Op::Add(d) => {
                let kind = if matches!(op, Op::Add(_)) {
                    "add"
                } else {
                    "write"
                };
                let q = op_path.key(kind);
                let (name, to) = (
                    op_name,
                    self.scope()
                        .earlier(&d.to, q.key("to"), is_pointer, "pointer result")?,
                );
                let value = ctx.typed(&d.value, &q.key("value"), parse_u64)?;
                let offset = opt(ctx, &d.offset, &q.key("offset"), 0, parse_u32)?;
                let width = opt(ctx, &d.size, &q.key("size"), Width::B8, Width::parse)?;
                let null_check = opt(ctx, &d.null_check, &q.key("null_check"), true, bool_leaf)?;
                if kind == "add" {
                    OpSpec::Add {
                        name,
                        to,
                        value,
                        offset,
                        width,
                        null_check,
                    }
                } else {
                    OpSpec::Write {
                        name,
                        to,
                        value,
                        offset,
                        width,
                        null_check,
                    }
                }
            }
            Op::Return(v) => {
                let q = op_path.key("return");
                let n = ctx.typed(v, &q, parse_u64)?;
                let value = i32::try_from(n as i64)
                    .map_err(|_| (q, false, format!("{n:#x} does not fit in 32 bits")))?;
                OpSpec::Return {
                    name: op_name,
                    value,
                }
            }
            Op::If(d) => return self.if_(d, op_name, &op_path.key("if")),
        };
        self.push(spec);
        Ok(())
    }

    fn call(&mut self, d: &CallDef, name: String, q: &FieldPath) -> Result<OpSpec, ResolveError> {
        let fname = self.ctx.typed(
            &Value::String(d.func.clone()),
            &q.key("fn"),
            parse_func_name,
        )?;
        let func = match helpers::helper(&fname) {
            Some(h) => Func::Helper(h),
            None => Func::Kfunc(fname.clone()),
        };
        if d.args.len() > 5 {
            return err(
                q.key("args").index(5),
                format!(
                    "a call has at most 5 arguments (r1-r5), found {}",
                    d.args.len()
                ),
            );
        }
        let scope = self.scope();
        let args = d
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| scope.arg(a, &q.key("args").index(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let first_map = args.iter().find_map(|a| match a {
            Arg::Map(m) => Some(*m),
            _ => None,
        });
        let ret = match &d.ret {
            Some(v) => {
                let maps = |n: &str| (self.map_index)(n, q.key("ret")).map_err(|(_, _, e)| e);
                self.ctx.typed(v, &q.key("ret"), |v| parse_ret(v, &maps))?
            }
            None => {
                let default = match &func {
                    Func::Helper(h) => helpers::helper_ret(h.name),
                    Func::Kfunc(k) => helpers::kfunc_ret(k),
                    Func::Value => RetDefault::Ptr,
                };
                match default {
                    RetDefault::Int => Ret::Int,
                    RetDefault::Ptr => Ret::Ptr,
                    RetDefault::Task => Ret::Task,
                    RetDefault::U64 => Ret::U64,
                    RetDefault::Void => Ret::Void,
                    RetDefault::Value => match first_map {
                        Some(m) => Ret::Value(m),
                        None => {
                            return err(
                                q.clone(),
                                format!(
                                "{fname} returns a map value: it needs a map argument, or `ret`"
                            ),
                            )
                        }
                    },
                }
            }
        };
        // A buffer's default size is the value size of the call's map.
        if first_map.is_none() {
            for (i, a) in args.iter().enumerate() {
                if buf_without_size(a) {
                    return err(
                        q.key("args").index(i),
                        "a buffer needs a `size` when the call has no map argument",
                    );
                }
            }
        }
        Ok(OpSpec::Call(Call {
            name,
            func,
            args,
            ret,
        }))
    }

    fn if_(&mut self, d: &IfDef, name: String, q: &FieldPath) -> Result<(), ResolveError> {
        let given: Vec<&str> = [
            ("nonnull", d.nonnull.is_some()),
            ("null", d.null.is_some()),
            ("eq", d.eq.is_some()),
            ("ne", d.ne.is_some()),
            ("lt", d.lt.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        let kind = match given.as_slice() {
            [k] => *k,
            [] => {
                return err(
                    q.clone(),
                    "an `if` needs one condition: `nonnull`, `null`, `eq`, `ne` or `lt`",
                )
            }
            [_, second, ..] => {
                return Err((
                    q.key(second),
                    true,
                    format!("an `if` has one condition; `{}` is already there", given[0]),
                ))
            }
        };
        let scope = self.scope();
        let what = "result with a value";
        let cond = match (kind, &d.nonnull, &d.null) {
            ("nonnull", Some(n), _) => {
                Cond::NonNull(scope.earlier(n, q.key(kind), has_value, what)?)
            }
            ("null", _, Some(n)) => Cond::Null(scope.earlier(n, q.key(kind), has_value, what)?),
            _ => {
                let pair = match kind {
                    "eq" => &d.eq,
                    "ne" => &d.ne,
                    _ => &d.lt,
                };
                let Some((n, v)) = pair else {
                    return err(q.clone(), "no condition");
                };
                let op = scope.earlier(n, q.key(kind).index(0), has_value, what)?;
                let c = self.ctx.typed(v, &q.key(kind).index(1), parse_u64)?;
                match kind {
                    "eq" => Cond::Eq(op, c),
                    "ne" => Cond::Ne(op, c),
                    _ => Cond::Lt(op, c),
                }
            }
        };
        let at = self.out.len();
        self.push(OpSpec::If {
            name,
            cond,
            then_len: 0,
            else_len: 0,
        });
        self.ops(&d.then, &q.key("then"))?;
        let then_len = self.out.len() - at - 1;
        self.ops(&d.otherwise, &q.key("else"))?;
        let else_len = self.out.len() - at - 1 - then_len;
        if let OpSpec::If {
            then_len: t,
            else_len: e,
            ..
        } = &mut self.out[at]
        {
            (*t, *e) = (then_len, else_len);
        }
        Ok(())
    }
}

fn buf_without_size(a: &Arg) -> bool {
    match a {
        Arg::Buf(Buf { size: None, .. }) => true,
        Arg::Plus(a, _) | Arg::Walk { base: a, .. } => buf_without_size(a),
        _ => false,
    }
}

/// A helper or kfunc name: a C identifier.
fn parse_func_name(v: &Value) -> Result<String, String> {
    parse_btf_name(v).map_err(|e| e.replace("kernel function", "helper or kfunc"))
}
