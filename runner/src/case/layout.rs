//! Typed map values: a value described as a C struct of fields (integers, integer arrays,
//! `bpf_spin_lock`, kernel pointers `__kptr` and user pointers `__uptr`), laid out as a C
//! compiler lays out a struct, and user-space values given per field. Pure: the layout is what
//! the map's BTF is built from (`bpf::btf`), what the compiler addresses fields with, and what
//! a user-space lookup is decoded with.

use serde_json::Value;

use super::value::{kind_of, parse_u64, Pattern};

/// An integer type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntType {
    /// 1, 2, 4 or 8.
    pub bytes: u32,
    pub signed: bool,
}

impl IntType {
    /// The C name the BTF gives it (`unsigned int`, `long long`, …).
    pub fn c_name(self) -> &'static str {
        match (self.bytes, self.signed) {
            (1, false) => "unsigned char",
            (1, true) => "signed char",
            (2, false) => "unsigned short",
            (2, true) => "short",
            (4, false) => "unsigned int",
            (4, true) => "int",
            (8, false) => "unsigned long long",
            _ => "long long",
        }
    }

    fn parse(s: &str) -> Option<IntType> {
        let (signed, bits) = match s.as_bytes().first()? {
            b'u' => (false, &s[1..]),
            b's' | b'i' => (true, &s[1..]),
            _ => return None,
        };
        let bytes = match bits {
            "8" => 1,
            "16" => 2,
            "32" => 4,
            "64" => 8,
            _ => return None,
        };
        Some(IntType { bytes, signed })
    }
}

/// What a field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// An integer (`u32`, `s64`, …).
    Int(IntType),
    /// An array of integers (`u8[16]`).
    Array { elem: IntType, len: u32 },
    /// `struct bpf_spin_lock` (4 bytes).
    SpinLock,
    /// A pointer to a kernel struct, tagged for the verifier (`struct task_struct __kptr *`):
    /// `tag` is the BTF type tag (`kptr`, `kptr_untrusted`, `kptr_ref`, `percpu_kptr`), `target`
    /// the struct, which the kernel resolves by name against its own BTF.
    Kptr { tag: String, target: String },
    /// A pointer to user memory (`struct … __uptr *`, task storage only), to a struct of
    /// `size` bytes (`unsigned char data[size]`; no member when 0).
    Uptr { size: u32 },
}

/// The BTF type tags of kernel pointers a field may carry.
pub const KPTR_TAGS: &[&str] = &["kptr", "kptr_untrusted", "kptr_ref", "percpu_kptr"];

impl FieldKind {
    /// Parses a field type: `u8` … `u64`, `s8` … `s64` (or `i8` …), `T[N]`, `bpf_spin_lock`,
    /// `kptr STRUCT` (or another tag of `KPTR_TAGS`), `uptr u8[N]`.
    pub fn parse(s: &str) -> Result<FieldKind, String> {
        let s = s.trim();
        if s == "bpf_spin_lock" {
            return Ok(FieldKind::SpinLock);
        }
        if let Some((tag, rest)) = s.split_once(char::is_whitespace) {
            let rest = rest.trim();
            if tag == "uptr" {
                return match FieldKind::parse(rest)? {
                    FieldKind::Int(t) => Ok(FieldKind::Uptr { size: t.bytes }),
                    // `uptr u8[0]`: an empty struct (the kernel refuses it).
                    FieldKind::Array { elem, len } => Ok(FieldKind::Uptr {
                        size: elem.bytes * len,
                    }),
                    _ => Err(format!(
                        "`{s}`: a uptr points to integers (`uptr u8[8]`), which bpfcase wraps in a struct"
                    )),
                };
            }
            if KPTR_TAGS.contains(&tag) {
                let ident =
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                return if ident {
                    Ok(FieldKind::Kptr {
                        tag: tag.to_string(),
                        target: rest.to_string(),
                    })
                } else {
                    Err(format!(
                        "`{s}`: `{tag}` takes a kernel struct name (`{tag} task_struct`)"
                    ))
                };
            }
        }
        if let Some((elem, len)) = s.strip_suffix(']').and_then(|t| t.split_once('[')) {
            let elem = IntType::parse(elem.trim())
                .ok_or_else(|| format!("`{s}`: an array holds integers (`u8[16]`)"))?;
            let len = parse_u64(&Value::String(len.trim().to_string()))
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| n.checked_mul(elem.bytes).is_some())
                .ok_or_else(|| format!("`{s}`: the length is not a number that fits"))?;
            return Ok(FieldKind::Array { elem, len });
        }
        IntType::parse(s).map(FieldKind::Int).ok_or_else(|| {
            format!(
                "unknown field type `{s}`: expected u8, u16, u32, u64, s8 … s64, an array `u8[N]`, bpf_spin_lock, `kptr STRUCT` or `uptr u8[N]`"
            )
        })
    }

    /// (size, alignment) in bytes, as on x86-64.
    pub fn size_align(&self) -> (u64, u64) {
        match self {
            FieldKind::Int(t) => (t.bytes as u64, t.bytes as u64),
            FieldKind::Array { elem, len } => (elem.bytes as u64 * *len as u64, elem.bytes as u64),
            FieldKind::SpinLock => (4, 4),
            FieldKind::Kptr { .. } | FieldKind::Uptr { .. } => (8, 8),
        }
    }

    /// A short word for the kind (`int`, `array`, `spin_lock`, `kptr`, `uptr`).
    pub fn word(&self) -> &'static str {
        match self {
            FieldKind::Int(_) => "int",
            FieldKind::Array { .. } => "array",
            FieldKind::SpinLock => "spin_lock",
            FieldKind::Kptr { .. } => "kptr",
            FieldKind::Uptr { .. } => "uptr",
        }
    }
}

/// One field of a typed value, at its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub kind: FieldKind,
}

/// A typed value: its fields in order, with offsets, and its size (padded to its alignment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub fields: Vec<Field>,
    pub size: u32,
}

/// An error in a value given per field: (field key, whether the key rather than its value is
/// meant, message).
pub type EncodeError = (String, bool, String);

/// A layout error: the index of the field it concerns (None: the value as a whole), whether its
/// `name` rather than its `type` is meant, and the message.
pub type LayoutError = (Option<usize>, bool, String);

impl Layout {
    /// Lays out `(name, kind)` fields as a C struct: each at the next offset aligned to its
    /// alignment, the size rounded up to the largest alignment.
    pub fn new(fields: Vec<(String, FieldKind)>) -> Result<Layout, LayoutError> {
        if fields.is_empty() {
            return Err((None, false, "a typed value needs at least one field".into()));
        }
        let mut out: Vec<Field> = Vec::with_capacity(fields.len());
        let (mut off, mut max_align) = (0u64, 1u64);
        for (i, (name, kind)) in fields.into_iter().enumerate() {
            let ident = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err((
                    Some(i),
                    true,
                    format!("field name `{name}` is not a C identifier (letters, digits, `_`)"),
                ));
            }
            if out.iter().any(|f| f.name == name) {
                return Err((Some(i), true, format!("field `{name}` is named twice")));
            }
            let (size, align) = kind.size_align();
            let (what, once) = match kind {
                FieldKind::SpinLock => ("bpf_spin_lock", true),
                _ => ("", false),
            };
            if once && out.iter().any(|f| f.kind == kind) {
                return Err((
                    Some(i),
                    false,
                    format!("a value holds at most one {what} (the kernel refuses a second)"),
                ));
            }
            off = off.div_ceil(align) * align;
            max_align = max_align.max(align);
            let size32 = u32::try_from(size).ok();
            let off32 = u32::try_from(off + size).ok().map(|_| off as u32);
            let (Some(size), Some(offset)) = (size32, off32) else {
                return Err((
                    Some(i),
                    false,
                    "the value would exceed 32 bits of size".into(),
                ));
            };
            out.push(Field {
                name,
                offset,
                size,
                kind,
            });
            off += size as u64;
        }
        let size = off.div_ceil(max_align) * max_align;
        let size = u32::try_from(size)
            .map_err(|_| (None, false, "the value would exceed 32 bits of size".into()))?;
        Ok(Layout { fields: out, size })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether the map's BTF needs type tags (kernels before 5.17 have none).
    pub fn has_type_tags(&self) -> bool {
        self.fields
            .iter()
            .any(|f| matches!(f.kind, FieldKind::Kptr { .. } | FieldKind::Uptr { .. }))
    }

    /// `name@offset:size kind` for each field, for `bpfcase show`.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|f| format!("{}@{}:{} {}", f.name, f.offset, f.size, f.kind.word()))
            .collect();
        format!("{} bytes: {}", self.size, fields.join(", "))
    }

    /// The bytes of a value given per field (`{"cnt": 1, "buf": "fill:0xaa"}`); fields not
    /// named are zero. An error names the field key it concerns, and whether the key itself
    /// (an unknown field) rather than its value is wrong.
    pub fn encode(
        &self,
        given: &serde_json::Map<String, Value>,
        mut leaf: impl FnMut(&str, &Value) -> Result<Value, (String, String)>,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0u8; self.size as usize];
        for (k, v) in given {
            let Some(f) = self.field(k) else {
                let known: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
                return Err((
                    k.clone(),
                    true,
                    format!("no field `{k}` in the value (fields: {})", known.join(", ")),
                ));
            };
            let v = leaf(k, v).map_err(|(k, m)| (k, false, m))?;
            let bytes = f.encode(&v).map_err(|e| (k.clone(), false, e))?;
            let at = f.offset as usize;
            out[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(out)
    }

    /// A looked-up value, per field (spin locks left out: user space never sees their state).
    pub fn decode(&self, bytes: &[u8]) -> Vec<(String, FieldValue)> {
        self.fields
            .iter()
            .filter_map(|f| {
                let at = f.offset as usize;
                let b = bytes.get(at..at + f.size as usize)?;
                let word = |b: &[u8]| {
                    let mut w = [0u8; 8];
                    w[..b.len()].copy_from_slice(b);
                    u64::from_le_bytes(w)
                };
                let v = match &f.kind {
                    FieldKind::SpinLock => return None,
                    FieldKind::Int(t) if t.signed => {
                        let shift = 64 - 8 * t.bytes;
                        FieldValue::Int(((word(b) << shift) as i64) >> shift)
                    }
                    FieldKind::Int(_) => FieldValue::Uint(word(b)),
                    FieldKind::Array { .. } => FieldValue::Bytes(b.to_vec()),
                    FieldKind::Kptr { .. } | FieldKind::Uptr { .. } => {
                        FieldValue::Ptr(word(b) != 0)
                    }
                };
                Some((f.name.clone(), v))
            })
            .collect()
    }
}

impl Field {
    /// The bytes of this field for a value given in a case.
    fn encode(&self, v: &Value) -> Result<Vec<u8>, String> {
        match &self.kind {
            FieldKind::Int(t) => {
                let n = parse_u64(v)?;
                let bits = 8 * t.bytes;
                let fits = bits == 64
                    || if t.signed {
                        (-(1i64 << (bits - 1))..1i64 << (bits - 1)).contains(&(n as i64))
                    } else {
                        n < 1 << bits
                    };
                if !fits {
                    return Err(format!("{v} does not fit in {} bytes", t.bytes));
                }
                Ok(n.to_le_bytes()[..t.bytes as usize].to_vec())
            }
            FieldKind::Array { .. } => Pattern::parse(v).map(|p| p.bytes(self.size as usize)),
            FieldKind::SpinLock => match parse_u64(v) {
                Ok(0) => Ok(vec![0; 4]),
                _ => {
                    Err("a bpf_spin_lock can only be given as 0 (user space never sets it)".into())
                }
            },
            FieldKind::Kptr { .. } | FieldKind::Uptr { .. } => match v {
                Value::Null => Ok(vec![0; 8]),
                other => Err(format!(
                    "a {} field can only be given as null here, found {}",
                    self.kind.word(),
                    kind_of(other)
                )),
            },
        }
    }
}

/// A field of a looked-up value.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    Uint(u64),
    Int(i64),
    Bytes(Vec<u8>),
    /// A pointer field: whether it is set (the address is never recorded).
    Ptr(bool),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(fields: &[(&str, &str)]) -> Vec<(String, FieldKind)> {
        fields
            .iter()
            .map(|(n, t)| (n.to_string(), FieldKind::parse(t).unwrap()))
            .collect()
    }

    #[test]
    fn c_struct_layout() {
        let l = Layout::new(kinds(&[
            ("lock", "bpf_spin_lock"),
            ("cnt", "u32"),
            ("small", "u8"),
            ("buf", "u8[16]"),
            ("wide", "s16"),
            ("task", "kptr task_struct"),
            ("u", "uptr u8[8]"),
            ("tail", "u8"),
        ]))
        .unwrap();
        let got: Vec<(&str, u32, u32)> = l
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset, f.size))
            .collect();
        assert_eq!(
            got,
            vec![
                ("lock", 0, 4),
                ("cnt", 4, 4),
                ("small", 8, 1),
                ("buf", 9, 16),
                ("wide", 26, 2),
                ("task", 32, 8),
                ("u", 40, 8),
                ("tail", 48, 1),
            ]
        );
        assert_eq!(l.size, 56);
        assert_eq!(
            l.field("task").unwrap().kind,
            FieldKind::Kptr {
                tag: "kptr".into(),
                target: "task_struct".into()
            }
        );
        assert_eq!(l.field("u").unwrap().kind, FieldKind::Uptr { size: 8 });
        assert!(l.has_type_tags());
        // Size rounds to the largest alignment only.
        let l = Layout::new(kinds(&[("a", "u16"), ("b", "u8")])).unwrap();
        assert_eq!(l.size, 4);
        let l = Layout::new(kinds(&[("a", "u8[3]")])).unwrap();
        assert_eq!((l.size, l.has_type_tags()), (3, false));
    }

    #[test]
    fn bad_fields() {
        assert!(FieldKind::parse("u24")
            .unwrap_err()
            .contains("unknown field type `u24`"));
        assert!(FieldKind::parse("kptr").is_err());
        assert!(FieldKind::parse("kptr task-struct").is_err());
        assert!(FieldKind::parse("u8[x]").is_err());
        assert!(FieldKind::parse("uptr bpf_spin_lock").is_err());
        assert_eq!(
            FieldKind::parse("uptr u8[0]"),
            Ok(FieldKind::Uptr { size: 0 })
        );
        assert_eq!(
            FieldKind::parse("uptr u32[2]"),
            Ok(FieldKind::Uptr { size: 8 })
        );
        assert_eq!(
            FieldKind::parse("kptr_untrusted task_struct"),
            Ok(FieldKind::Kptr {
                tag: "kptr_untrusted".into(),
                target: "task_struct".into()
            })
        );
        assert_eq!(
            Layout::new(kinds(&[("a", "u8"), ("a", "u16")])).unwrap_err(),
            (Some(1), true, "field `a` is named twice".into())
        );
        let two_locks = Layout::new(kinds(&[("a", "bpf_spin_lock"), ("b", "bpf_spin_lock")]));
        assert_eq!(two_locks.unwrap_err().0, Some(1));
        assert_eq!(Layout::new(kinds(&[("1a", "u8")])).unwrap_err().0, Some(0));
        assert_eq!(Layout::new(vec![]).unwrap_err().0, None);
        assert!(FieldKind::parse("u64[0x20000000]").is_err());
        let big = Layout::new(kinds(&[("a", "u8[0xffffffff]"), ("b", "u8")]));
        assert_eq!(big.unwrap_err().0, Some(1));
    }

    #[test]
    fn values_per_field() {
        let l = Layout::new(kinds(&[
            ("lock", "bpf_spin_lock"),
            ("cnt", "u32"),
            ("neg", "s16"),
            ("buf", "u8[3]"),
            ("task", "kptr task_struct"),
        ]))
        .unwrap();
        let given = json!({"cnt": 7, "neg": -2, "buf": "fill:0xaa", "task": null});
        let pass = |_: &str, v: &Value| Ok(v.clone());
        let b = l.encode(given.as_object().unwrap(), pass).unwrap();
        assert_eq!(
            b,
            [
                0, 0, 0, 0, 7, 0, 0, 0, 0xfe, 0xff, 0xaa, 0xaa, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0
            ]
        );
        assert_eq!(
            l.decode(&b),
            vec![
                ("cnt".into(), FieldValue::Uint(7)),
                ("neg".into(), FieldValue::Int(-2)),
                ("buf".into(), FieldValue::Bytes(vec![0xaa; 3])),
                ("task".into(), FieldValue::Ptr(false)),
            ]
        );
        let err = |v: Value| l.encode(v.as_object().unwrap(), pass).unwrap_err();
        assert_eq!(err(json!({"cnt": "1<<32"})).0, "cnt");
        assert!(err(json!({"neg": 40000}))
            .2
            .contains("does not fit in 2 bytes"));
        let nope = err(json!({"nope": 1}));
        assert!(nope.1 && nope.2.contains("fields: lock, cnt, neg, buf, task"));
        assert!(err(json!({"lock": 1})).2.contains("bpf_spin_lock"));
        assert!(err(json!({"task": 1})).2.contains("only be given as null"));
        assert_eq!(
            l.encode(json!({"neg": -32768}).as_object().unwrap(), pass)
                .unwrap()[8..10],
            [0, 0x80]
        );
    }
}
