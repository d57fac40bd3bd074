//! Matrix expansion and resolution: a `CaseFile` template becomes fully typed `Instance`s.
//! Every `"$dim"` leaf is replaced by the instance's matrix value and parsed; every error names
//! the field path it comes from so that the caller can locate it in the source text.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::Value;

use super::instance::{step_names, Instance, Rule, StepSpec};
use super::kernel::KernelReq;
use super::locate::FieldPath;
use super::mapdef::{parse_lookup_flags, parse_update_flag_names, resolve_map, user_value};
use super::model::{CaseFile, LookupDef, Step};
use super::names::name_results;
use super::value::{kind_of, label, KeyArg};
use crate::tables::{self, ProgType};

/// (where, whether the key rather than the value is meant, what is wrong)
pub type ResolveError = (FieldPath, bool, String);

pub(super) struct Ctx<'a> {
    bindings: &'a IndexMap<String, Value>,
    used: &'a RefCell<BTreeSet<String>>,
}

impl Ctx<'_> {
    /// The leaf with a `$dim` reference replaced; the dimension name when it was one.
    pub(super) fn leaf<'v>(
        &self,
        v: &'v Value,
        path: &FieldPath,
    ) -> Result<(Cow<'v, Value>, Option<&'v str>), ResolveError> {
        if let Value::String(s) = v {
            if let Some(dim) = s.strip_prefix('$') {
                return match self.bindings.get(dim) {
                    Some(val) => {
                        self.used.borrow_mut().insert(dim.to_string());
                        Ok((Cow::Owned(val.clone()), Some(dim)))
                    }
                    None => Err((
                        path.clone(),
                        false,
                        format!(
                            "`${dim}` is not a matrix dimension{}",
                            known(self.bindings.keys().map(|k| format!("${k}")))
                        ),
                    )),
                };
            }
        }
        Ok((Cow::Borrowed(v), None))
    }

    pub(super) fn typed<T>(
        &self,
        v: &Value,
        path: &FieldPath,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, ResolveError> {
        let (val, dim) = self.leaf(v, path)?;
        parse(&val).map_err(|e| {
            let msg = match dim {
                Some(d) => format!("matrix value {val} of `${d}` does not fit: {e}"),
                None => e,
            };
            (path.clone(), false, msg)
        })
    }
}

pub(super) fn known(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", v.join(", "))
    }
}

pub(super) fn err<T>(path: FieldPath, msg: impl Into<String>) -> Result<T, ResolveError> {
    Err((path, false, msg.into()))
}

/// More combinations than any case needs; a matrix beyond it is a mistake, not a workload.
const MAX_INSTANCES: usize = 100_000;

/// The key of `when` that holds a requirement on the kernel series, not a dimension.
const KERNEL: &str = "kernel";

/// Expands the matrix and resolves every instance; the first error wins.
pub fn expand(cf: &CaseFile, case: &str) -> Result<Vec<Instance>, ResolveError> {
    let root = FieldPath::root();
    check_ident(case, &root.key("name"), "case name")?;
    let mpath = root.key("matrix");
    for (dim, values) in &cf.matrix {
        check_ident(dim, &mpath.key(dim), "dimension name").map_err(|(p, _, m)| (p, true, m))?;
        if dim == KERNEL {
            return Err((
                mpath.key(dim),
                true,
                "`kernel` is reserved: in `when` it is a requirement on the kernel series the instance runs on; give the dimension another name".into(),
            ));
        }
        if values.is_empty() {
            return err(mpath.key(dim), "a dimension needs at least one value");
        }
        // A value replaces `"$dim"` as it is written; it is not resolved again.
        for (j, v) in values.iter().enumerate() {
            if let Some(r) = v.as_str().filter(|s| s.starts_with('$')) {
                return err(
                    mpath.key(dim).index(j),
                    format!("a matrix value cannot be a reference (`{r}`): write the value itself"),
                );
            }
        }
    }
    for (i, rule) in cf.exclude.iter().enumerate() {
        check_dims(cf, rule.keys(), &root.key("exclude").index(i))?;
    }
    let mut kernels = Vec::new();
    for (i, e) in cf.expect.iter().enumerate() {
        let wpath = root.key("expect").index(i).key("when");
        check_dims(cf, e.when.keys().filter(|k| *k != KERNEL), &wpath)?;
        kernels.push(match e.when.get(KERNEL) {
            None => None,
            Some(v) => Some(KernelReq::from_json(v).or_else(|m| err(wpath.key(KERNEL), m))?),
        });
        for (k, pat) in &e.then {
            if let Err(g) = glob::Pattern::new(pat) {
                return err(
                    root.key("expect").index(i).key("then").key(k),
                    format!("bad pattern: {g}"),
                );
            }
        }
    }
    if cf.steps.is_empty() {
        return err(root.key("steps"), "a case needs at least one step");
    }

    let combinations = cf
        .matrix
        .values()
        .try_fold(1usize, |n, v| n.checked_mul(v.len()))
        .filter(|n| *n <= MAX_INSTANCES);
    if combinations.is_none() {
        return err(
            mpath.clone(),
            format!("the matrix has more than {MAX_INSTANCES} combinations"),
        );
    }
    let names = name_results(cf)?;
    let used = RefCell::new(BTreeSet::new());
    let mut instances = Vec::new();
    let mut ids = BTreeSet::new();
    for combo in product(&cf.matrix) {
        if cf.exclude.iter().any(|rule| matches(rule, &combo)) {
            continue;
        }
        let ctx = Ctx {
            bindings: &combo,
            used: &used,
        };
        let inst = resolve(cf, case, &ctx, &names, &kernels)?;
        if !ids.insert(inst.id.clone()) {
            return err(
                mpath.clone(),
                format!("two combinations have the same id `{}`", inst.id),
            );
        }
        instances.push(inst);
    }
    if instances.is_empty() {
        return err(root.key("exclude"), "every combination is excluded");
    }
    let used = used.into_inner();
    if let Some(dim) = cf.matrix.keys().find(|d| !used.contains(*d)) {
        return Err((
            mpath.key(dim),
            true,
            format!("dimension `{dim}` is not used by any map or step"),
        ));
    }
    Ok(instances)
}

pub(super) fn check_ident(s: &str, path: &FieldPath, what: &str) -> Result<(), ResolveError> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        err(
            path.clone(),
            format!("{what} `{s}` may only use letters, digits, `_` and `-`"),
        )
    }
}

fn check_dims<'a>(
    cf: &CaseFile,
    keys: impl Iterator<Item = &'a String>,
    path: &FieldPath,
) -> Result<(), ResolveError> {
    for k in keys {
        if !cf.matrix.contains_key(k) {
            return Err((
                path.key(k),
                true,
                format!(
                    "`{k}` is not a matrix dimension{}",
                    known(cf.matrix.keys().cloned())
                ),
            ));
        }
    }
    Ok(())
}

/// The Cartesian product of the dimensions, first dimension outermost.
fn product(matrix: &IndexMap<String, Vec<Value>>) -> Vec<IndexMap<String, Value>> {
    let mut out = vec![IndexMap::new()];
    for (dim, values) in matrix {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for partial in &out {
            for v in values {
                let mut m = partial.clone();
                m.insert(dim.clone(), v.clone());
                next.push(m);
            }
        }
        out = next;
    }
    out
}

/// Whether every condition on a dimension matches; a condition is a value or a list of
/// alternatives, compared as JSON or by label (`2` matches `"0x2"`). `kernel` is no dimension
/// (the matrix cannot name one): the verdict judges it, on the kernel the instance ran on.
pub fn matches(cond: &IndexMap<String, Value>, combo: &IndexMap<String, Value>) -> bool {
    cond.iter()
        .filter(|(k, _)| *k != KERNEL)
        .all(|(dim, want)| {
            let Some(have) = combo.get(dim) else {
                return false;
            };
            let alts: Vec<&Value> = match want {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            alts.iter().any(|w| *w == have || label(w) == label(have))
        })
}

fn resolve(
    cf: &CaseFile,
    case: &str,
    ctx: &Ctx<'_>,
    names: &[String],
    kernels: &[Option<KernelReq>],
) -> Result<Instance, ResolveError> {
    let root = FieldPath::root();
    let mut id = case.to_string();
    let mut bindings = Vec::new();
    for (dim, v) in ctx.bindings {
        let l = label(v);
        id.push_str(&format!("/{dim}={l}"));
        bindings.push((dim.clone(), l));
    }

    let ppath = root.key("program").key("type");
    let prog_type = ctx.typed(&cf.program.kind, &ppath, parse_prog_type)?;

    let mut maps = Vec::new();
    for (name, def) in &cf.maps {
        maps.push(resolve_map(ctx, name, def, &root.key("maps").key(name))?);
    }
    // A map is named directly or through a dimension (`"map": "$map"`).
    let map_index = |name: &str, path: FieldPath| -> Result<usize, ResolveError> {
        let v = Value::String(name.to_string());
        ctx.typed(&v, &path, |v| {
            let n = v
                .as_str()
                .ok_or_else(|| format!("expected a map name, found {}", kind_of(v)))?;
            cf.maps
                .get_index_of(n)
                .ok_or_else(|| format!("unknown map `{n}`{}", known(cf.maps.keys().cloned())))
        })
    };

    let mut names = names.iter().cloned();
    let mut next_name = || {
        names
            .next()
            .expect("one name per result, made by name_results")
    };
    let mut children: Vec<String> = Vec::new();
    let mut owners: Vec<(String, &'static tables::OwnerKind)> = Vec::new();
    let owner_names = |owners: &[(String, &'static tables::OwnerKind)]| -> Vec<String> {
        owners.iter().map(|(n, _)| n.clone()).collect()
    };
    let mut steps = Vec::new();
    let spath = root.key("steps");
    for (i, step) in cf.steps.iter().enumerate() {
        let p = spath.index(i);
        let spec = match step {
            Step::Prog(body) => super::prog::resolve_prog(
                ctx,
                body,
                &p,
                prog_type,
                &children,
                &owners,
                &mut next_name,
                &map_index,
                &maps,
            )?,
            Step::Update(d) => {
                let q = p.key("update");
                let map = map_index(&d.map, q.key("map"))?;
                StepSpec::Update {
                    name: next_name(),
                    map,
                    key: ctx.typed(&d.task, &q.key("task"), |v| {
                        KeyArg::parse(v, &children, &owner_names(&owners))
                    })?,
                    value: user_value(ctx, &maps[map], &d.value, &q.key("value"))?,
                    flags: opt(ctx, &d.flags, &q.key("flags"), 0, parse_update_flag_names)?,
                }
            }
            Step::Lookup(d) => {
                let (map, key, flags) = lookup(
                    ctx,
                    d,
                    &p.key("lookup"),
                    &children,
                    &owner_names(&owners),
                    &map_index,
                )?;
                StepSpec::Lookup {
                    name: next_name(),
                    map,
                    key,
                    flags,
                }
            }
            Step::LookupAndDelete(d) => {
                let q = p.key("lookup_and_delete");
                let (map, key, flags) =
                    lookup(ctx, d, &q, &children, &owner_names(&owners), &map_index)?;
                StepSpec::LookupAndDelete {
                    name: next_name(),
                    map,
                    key,
                    flags,
                }
            }
            Step::Delete(d) => {
                let q = p.key("delete");
                StepSpec::Delete {
                    name: next_name(),
                    map: map_index(&d.map, q.key("map"))?,
                    key: ctx.typed(&d.task, &q.key("task"), |v| {
                        KeyArg::parse(v, &children, &owner_names(&owners))
                    })?,
                }
            }
            Step::NextKey(d) => {
                let q = p.key("next_key");
                StepSpec::NextKey {
                    name: next_name(),
                    map: map_index(&d.map, q.key("map"))?,
                    key: ctx.typed(&d.task, &q.key("task"), |v| match v {
                        Value::Null => Ok(None),
                        v => KeyArg::parse(v, &children, &owner_names(&owners)).map(Some),
                    })?,
                }
            }
            Step::Spawn(c) => {
                check_ident(c, &p.key("spawn"), "child name")?;
                if name_taken(c, &children, &owners) {
                    return err(p.key("spawn"), format!("child name `{c}` is already taken"));
                }
                children.push(c.clone());
                StepSpec::Spawn {
                    name: next_name(),
                    child: c.clone(),
                }
            }
            Step::Exit(c) => StepSpec::Exit {
                name: next_name(),
                child: child(&children, c, p.key("exit"))?,
            },
            Step::Reap(c) => StepSpec::Reap {
                name: next_name(),
                child: child(&children, c, p.key("reap"))?,
            },
            Step::New(def) => {
                let q = p.key("new");
                let mut entries = def.iter();
                let (Some((kind, owner)), None) = (entries.next(), entries.next()) else {
                    return err(q, "`new` makes one owner: an object with one key, its kind (`{\"cgroup\": \"a\"}`)");
                };
                let kinds = || {
                    tables::OWNER_KINDS
                        .iter()
                        .filter(|k| k.made_by_new())
                        .map(|k| k.name.to_string())
                };
                let Some(k) = tables::owner_kind(kind).filter(|k| k.made_by_new()) else {
                    return Err((
                        q.key(kind),
                        true,
                        format!("`new` makes no `{kind}`{}", known(kinds())),
                    ));
                };
                let q = q.key(kind);
                check_ident(owner, &q, "owner name")?;
                if name_taken(owner, &children, &owners) {
                    return err(q, format!("name `{owner}` is already taken"));
                }
                owners.push((owner.clone(), k));
                StepSpec::New {
                    name: next_name(),
                    owner: owner.clone(),
                    kind: k,
                }
            }
            Step::Free(o) => {
                let q = p.key("free");
                if !owners.iter().any(|(n, _)| n == o) {
                    return err(
                        q,
                        format!("no owner `{o}` was made by a `new` step before this one"),
                    );
                }
                StepSpec::Free {
                    name: next_name(),
                    owner: o.clone(),
                }
            }
            Step::Enter(d) => {
                let q = p.key("enter");
                let child = child(&children, &d.child, q.key("child"))?;
                if !owners
                    .iter()
                    .any(|(n, k)| *n == d.cgroup && *k == &tables::CGROUP_OWNER)
                {
                    return err(
                        q.key("cgroup"),
                        format!(
                            "no cgroup `{}` was made by a `new` step before this one",
                            d.cgroup
                        ),
                    );
                }
                StepSpec::Enter {
                    name: next_name(),
                    child,
                    cgroup: d.cgroup.clone(),
                }
            }
        };
        steps.push(spec);
    }
    super::trigger::share_threads(&mut steps);

    let result_names: BTreeSet<String> = cf
        .maps
        .keys()
        .flat_map(|m| [m.clone(), format!("{m}.preset"), format!("{m}.value_size")])
        .chain(steps.iter().flat_map(step_names))
        .collect();
    let mut rules = Vec::new();
    for (i, e) in cf.expect.iter().enumerate() {
        for (result, pattern) in &e.then {
            let is_result = |s: &str| result_names.contains(s);
            if let Some(c) = super::compare::rule(result, pattern, &is_result) {
                if let Err(m) = c {
                    return Err((
                        root.key("expect").index(i).key("then").key(result),
                        false,
                        m,
                    ));
                }
                continue;
            }
            if !result_names.contains(result) {
                return Err((
                    root.key("expect").index(i).key("then").key(result),
                    true,
                    format!(
                        "`{result}` names no result{}",
                        known(result_names.iter().cloned())
                    ),
                ));
            }
        }
        if matches(&e.when, ctx.bindings) {
            rules.extend(e.then.iter().map(|(result, pattern)| Rule {
                result: result.clone(),
                pattern: pattern.clone(),
                because: e.because.clone(),
                group: i,
                kernel: kernels.get(i).cloned().flatten(),
            }));
        }
    }

    if let Some(o) = &cf.program.object {
        if crate::progs::object(o).is_none() {
            let built: Vec<String> = crate::progs::OBJECTS
                .iter()
                .map(|(n, _)| n.to_string())
                .collect();
            return err(
                root.key("program").key("object"),
                format!(
                    "no program `{o}` in progs/ (built: {})",
                    if built.is_empty() {
                        "none: clang was missing".into()
                    } else {
                        built.join(", ")
                    }
                ),
            );
        }
    }
    Ok(Instance {
        id,
        case: case.to_string(),
        bindings,
        prog_type,
        object: cf.program.object.clone(),
        maps,
        steps,
        rules,
    })
}

pub(super) fn parse_prog_type(v: &Value) -> Result<&'static ProgType, String> {
    let name = v
        .as_str()
        .ok_or_else(|| format!("expected a name, found {}", kind_of(v)))?;
    tables::prog_type(name).ok_or_else(|| {
        format!(
            "unknown program type `{name}`{}",
            known(tables::PROG_TYPES.iter().map(|p| p.name.to_string()))
        )
    })
}

/// The map, key and flags of a `lookup` or `lookup_and_delete`.
fn lookup(
    ctx: &Ctx<'_>,
    d: &LookupDef,
    q: &FieldPath,
    children: &[String],
    owners: &[String],
    map_index: &dyn Fn(&str, FieldPath) -> Result<usize, ResolveError>,
) -> Result<(usize, KeyArg, u64), ResolveError> {
    Ok((
        map_index(&d.map, q.key("map"))?,
        ctx.typed(&d.task, &q.key("task"), |v| {
            KeyArg::parse(v, children, owners)
        })?,
        opt(ctx, &d.flags, &q.key("flags"), 0, parse_lookup_flags)?,
    ))
}

/// Whether `name` is a child's or an owner's already, or a name keys and arguments give a
/// meaning of their own.
fn name_taken(name: &str, children: &[String], owners: &[(String, &tables::OwnerKind)]) -> bool {
    const RESERVED: &[&str] = &[
        "current",
        "self",
        "null",
        "scalar",
        "not_pidfd",
        "closed_fd",
    ];
    children.iter().any(|c| c == name)
        || owners.iter().any(|(n, _)| n == name)
        || RESERVED.contains(&name)
}

fn child(children: &[String], c: &str, path: FieldPath) -> Result<String, ResolveError> {
    if children.iter().any(|x| x == c) {
        Ok(c.to_string())
    } else {
        err(path, format!("no child `{c}` was spawned before this step"))
    }
}

pub(super) fn opt<T>(
    ctx: &Ctx<'_>,
    v: &Option<Value>,
    path: &FieldPath,
    default: T,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, ResolveError> {
    match v {
        None => Ok(default),
        Some(v) => ctx.typed(v, path, parse),
    }
}

pub(super) fn bool_leaf(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", kind_of(v)))
}
