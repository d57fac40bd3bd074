//! C programs of `progs/`: a `prog` step that names one runs it (see `object`), and a case that
//! names its twin runs the compiled steps with it instead.
//!
//! The twin: when a case names a program from `progs/`
//! (`"program": {"type": "syscall", "object": "task_storage"}`), each one-operation `prog`
//! step runs `progs/task_storage.bpf.c`, configured through its `.rodata`, instead of the
//! compiled program. It writes the compiler's result layout, so observation is unchanged.

use crate::case::value::{FlagsArg, Pattern, TaskArg, ValueArg};
use crate::case::{Legacy, OpSpec};
use crate::compile::ProgramSpec;
use crate::tables::ProgType;

mod object;

/// The program's name inside the object.
pub const PROGRAM: &str = "run";

const OP_GET: u32 = 0;
const OP_DELETE: u32 = 1;
const OP_CURRENT_TASK: u32 = 2;

/// The `struct config` of progs/task_storage.bpf.c (32 bytes, little-endian), and the index
/// of the task storage map the operation uses, if any. Err: what the C program cannot do.
pub fn config(
    pt: &ProgType,
    ops: &[OpSpec],
    value_sizes: &[u32],
    spec: &ProgramSpec,
) -> Result<(Vec<u8>, Option<usize>), String> {
    const LIMITS: &str = "progs/task_storage.bpf.c runs syscall programs of one get (8-byte value, \
                          task current or NULL, value NULL or a number), one delete or one current_task";
    let [op] = ops else { return Err(LIMITS.into()) };
    if pt.name != "syscall" {
        return Err(LIMITS.into());
    }
    let task_null = |t: &TaskArg| match t {
        TaskArg::Current => Ok(0u32),
        TaskArg::Null => Ok(1),
        _ => Err(LIMITS.to_string()),
    };
    let (kind, task, has_value, runtime, value, flags, map) = match op.legacy() {
        Some(Legacy::Get {
            map,
            task,
            value,
            flags,
        }) => {
            if value_sizes.get(map) != Some(&8) {
                return Err(LIMITS.into());
            }
            let (has_value, value) = match value {
                ValueArg::Null => (0u32, 0u64),
                ValueArg::Init(Pattern::Number(n)) => (1, n),
                _ => return Err(LIMITS.into()),
            };
            let (runtime, flags) = match flags {
                FlagsArg::Const(f) => (0u32, f),
                // The program reads the u64 after the get's slot, where the compiler puts it.
                FlagsArg::Runtime(_) if spec.params_offset == 32 => (1, 0),
                FlagsArg::Runtime(_) => return Err(LIMITS.into()),
            };
            (
                OP_GET,
                task_null(task)?,
                has_value,
                runtime,
                value,
                flags,
                Some(map),
            )
        }
        Some(Legacy::Delete { map, task }) => (OP_DELETE, task_null(task)?, 0, 0, 0, 0, Some(map)),
        Some(Legacy::CurrentTask) => (OP_CURRENT_TASK, 0, 0, 0, 0, 0, None),
        None => return Err(LIMITS.into()),
    };
    let mut c = Vec::with_capacity(32);
    for w in [kind, task, has_value, runtime] {
        c.extend_from_slice(&w.to_le_bytes());
    }
    c.extend_from_slice(&value.to_le_bytes());
    c.extend_from_slice(&flags.to_le_bytes());
    Ok((c, map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use crate::tables::prog_type;

    fn get(task: TaskArg, value: ValueArg, flags: FlagsArg) -> OpSpec {
        OpSpec::get("get".into(), 0, task, value, flags)
    }

    #[test]
    fn config_bytes_follow_the_c_struct() {
        let pt = prog_type("syscall").unwrap();
        let op = get(
            TaskArg::Null,
            ValueArg::Init(Pattern::Number(0x1122)),
            FlagsArg::Const(3),
        );
        let spec = compile(pt, std::slice::from_ref(&op), &[8]).unwrap();
        let (c, map) = config(pt, &[op], &[8], &spec).unwrap();
        assert_eq!(map, Some(0));
        assert_eq!(c.len(), 32);
        assert_eq!(&c[..16], &[0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(c[16..24].try_into().unwrap()), 0x1122);
        assert_eq!(u64::from_le_bytes(c[24..32].try_into().unwrap()), 3);
        let op = get(TaskArg::Current, ValueArg::Null, FlagsArg::Runtime(1));
        let spec = compile(pt, std::slice::from_ref(&op), &[8]).unwrap();
        assert_eq!(config(pt, &[op], &[8], &spec).unwrap().0[12], 1);
    }

    #[test]
    fn what_the_c_program_cannot_do_is_refused() {
        let pt = prog_type("syscall").unwrap();
        let small = get(TaskArg::Current, ValueArg::Small, FlagsArg::Const(0));
        let spec = compile(pt, std::slice::from_ref(&small), &[8]).unwrap();
        assert!(config(pt, &[small], &[8], &spec).is_err());
        let op = get(TaskArg::Current, ValueArg::Null, FlagsArg::Const(0));
        let spec = compile(pt, std::slice::from_ref(&op), &[16]).unwrap();
        assert!(
            config(pt, &[op], &[16], &spec).is_err(),
            "only 8-byte values"
        );
        let raw_tp = prog_type("raw_tp").unwrap();
        let op = OpSpec::current_task("t".into());
        let spec = compile(raw_tp, std::slice::from_ref(&op), &[]).unwrap();
        assert!(config(raw_tp, &[op], &[], &spec).is_err());
    }
}
