//! The case files and the command line, without a kernel: the committed schema is current,
//! every shipped case is valid, and bad input is reported with its location, exit status 2,
//! before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bpfcase(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfcase"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("bpfcase starts")
}

#[test]
fn committed_schema_is_current() {
    let committed =
        std::fs::read_to_string(workspace().join("cases/case.schema.json")).unwrap_or_default();
    assert!(
        committed == bpfcase::case::schema(),
        "cases/case.schema.json is stale: regenerate it with `bpfcase schema > cases/case.schema.json`"
    );
}

#[test]
fn every_shipped_case_is_valid_and_ids_are_unique() {
    let files = bpfcase::case::discover(&[workspace().join("cases")]).expect("cases/ is readable");
    assert!(
        files.len() >= 10,
        "expected the shipped task storage cases, found {files:?}"
    );
    let mut ids = std::collections::BTreeSet::new();
    for f in files {
        let c = bpfcase::case::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.instances.is_empty(), "{} has no instances", f.display());
        for i in &c.instances {
            assert!(ids.insert(i.id.clone()), "duplicate id {}", i.id);
        }
    }
}

#[test]
fn list_and_filter_select_instances_by_id() {
    let out = bpfcase(&[
        "list",
        "cases",
        "--filter",
        "get_flags/flags=0x2/*/task=null/*",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        ids.lines().collect::<Vec<_>>(),
        vec![
            "get_flags/flags=0x2/value=null/task=null/storage=absent",
            "get_flags/flags=0x2/value=null/task=null/storage=0x5555aaaa5555aaaa",
            "get_flags/flags=0x2/value=0x1122334455667788/task=null/storage=absent",
            "get_flags/flags=0x2/value=0x1122334455667788/task=null/storage=0x5555aaaa5555aaaa",
        ]
    );
}

/// Writes `text` as a case file and runs `bpfcase run` on it: it must fail with status 2 and
/// print `file:line:col: path: message`.
fn bad(name: &str, text: &str) -> String {
    // Removed when the test ends.
    let tmp = tempfile::Builder::new()
        .prefix("bpfcase-bad-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, text).unwrap();
    let out = bpfcase(&["run", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{name}: nothing may run, got {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err.replace(&format!("{}/", dir.display()), "")
}

const GOOD_MAPS: &str = r#""maps": { "st": { "type": "task_storage", "value_size": 8 } }"#;

#[test]
fn malformed_json_is_located() {
    let err = bad("malformed", "{\n  \"about\": \"x\",\n  \"steps\": [ }\n");
    assert_eq!(
        err.trim(),
        "bpfcase: malformed.json:3:14: steps[0]: expected a value (an object, list, string, number, true, false or null), found `}`"
    );
}

#[test]
fn unknown_field_is_located_with_its_path() {
    let text = format!(
        "{{ \"about\": \"x\", {GOOD_MAPS},\n  \"steps\": [ {{ \"prog\": [ {{ \"get\": {{ \"map\": \"st\", \"task\": \"current\", \"flags\": 0, \"colour\": 1 }} }} ] }} ] }}"
    );
    let err = bad("unknown_field", &text);
    assert!(err.starts_with("bpfcase: unknown_field.json:2:"), "{err}");
    assert!(
        err.contains("steps[0].prog[0].get.colour: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn unknown_step_is_located() {
    let text =
        format!("{{ \"about\": \"x\", {GOOD_MAPS},\n  \"steps\": [ {{ \"jump\": {{}} }} ] }}");
    let err = bad("unknown_step", &text);
    assert!(err.starts_with("bpfcase: unknown_step.json:2:"), "{err}");
    assert!(err.contains("unknown step `jump`"), "{err}");
}

#[test]
fn a_reference_to_no_dimension_is_located() {
    let text = format!(
        "{{ \"about\": \"x\", {GOOD_MAPS}, \"matrix\": {{ \"flags\": [0] }},\n  \"steps\": [ {{ \"prog\": [ {{ \"get\": {{ \"map\": \"st\", \"task\": \"$tsk\", \"flags\": \"$flags\" }} }} ] }} ] }}"
    );
    let err = bad("bad_var", &text);
    assert_eq!(
        err.trim(),
        "bpfcase: bad_var.json:2:58: steps[0].prog[0].get.task: `$tsk` is not a matrix dimension (known: $flags)"
    );
}

#[test]
fn a_matrix_value_that_does_not_fit_is_located() {
    let text = format!(
        "{{ \"about\": \"x\", {GOOD_MAPS}, \"matrix\": {{ \"flags\": [0, \"1<<64\"] }},\n  \"steps\": [ {{ \"prog\": [ {{ \"get\": {{ \"map\": \"st\", \"task\": \"current\", \"flags\": \"$flags\" }} }} ] }} ] }}"
    );
    let err = bad("bad_value", &text);
    assert!(err.starts_with("bpfcase: bad_value.json:2:"), "{err}");
    assert!(
        err.contains("steps[0].prog[0].get.flags: matrix value \"1<<64\" of `$flags` does not fit"),
        "{err}"
    );
}

#[test]
fn an_unused_dimension_is_an_error() {
    let text = format!(
        "{{ \"about\": \"x\", {GOOD_MAPS},\n  \"matrix\": {{ \"unused\": [1, 2] }},\n  \"steps\": [ {{ \"lookup\": {{ \"map\": \"st\", \"task\": \"self\" }} }} ] }}"
    );
    let err = bad("unused", &text);
    assert_eq!(err.trim(), "bpfcase: unused.json:2:15: matrix.unused: dimension `unused` is not used by any map or step");
}

#[test]
fn one_bad_file_stops_the_whole_run() {
    // Removed when the test ends.
    let tmp = tempfile::Builder::new()
        .prefix("bpfcase-mixed-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    std::fs::copy(
        workspace().join("cases/task_storage/user_keys.json"),
        dir.join("a.json"),
    )
    .unwrap();
    std::fs::write(dir.join("b.json"), "{ \"about\": 1 }").unwrap();
    let out = bpfcase(&["run", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "a.json must not run when b.json is invalid"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("b.json:1:12: about: invalid type"));
}

/// Bad input is an error, never a panic: every shipped case and every file of the bad-input
/// corpus cut short at many points, and with bytes replaced by JSON punctuation, digits, `$`
/// and bytes that are not UTF-8, parses to Ok or Err.
#[test]
fn mangled_cases_never_panic() {
    let paths = [
        workspace().join("cases"),
        workspace().join("runner/tests/bad-cases"),
    ];
    let files = bpfcase::case::discover(&paths).expect("the cases are readable");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}[]:,\"\\$0129-.ex \n\xff\xc3";
    let mut parsed = 0;
    for f in files {
        let bytes = std::fs::read(&f).expect("readable");
        for cut in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
            let _ = bpfcase::case::parse_bytes(&f, &bytes[..cut]);
            parsed += 1;
        }
        for _ in 0..200 {
            let mut m = bytes.clone();
            for _ in 0..1 + next() % 4 {
                if m.is_empty() {
                    break;
                }
                let at = (next() % m.len() as u64) as usize;
                m[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            let _ = bpfcase::case::parse_bytes(&f, &m);
            parsed += 1;
        }
    }
    assert!(parsed > 10000, "only {parsed} inputs were tried");
}

/// Runs bpfcase; its exit status and stderr.
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = bpfcase(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn a_bad_argument_is_named_with_its_value_once() {
    assert_eq!(
        fails(&["fetch", "debian:6"]),
        (
            Some(2),
            "bpfcase: kernel `debian:6`: the series must be <major>.<minor> digits, e.g. debian:6.1 or debian:7.3".into()
        )
    );
    let (code, err) = fails(&["vm", "--kernel", "debian:6", "cases"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("bpfcase: --kernel `debian:6`: the series"),
        "{err}"
    );
    assert_eq!(
        fails(&["list", "--filter", "[a", "cases"]),
        (
            Some(2),
            "bpfcase: --filter `[a`: not a glob: invalid range pattern at character 1; `*` matches any text (`/` too), `?` one character, `[[]` a `[`".into()
        )
    );
    assert_eq!(
        fails(&["show", "no_such_case/*", "cases"]),
        (
            Some(2),
            "bpfcase: instance id `no_such_case/*`: matches no instance; `bpfcase list` prints the ids".into()
        )
    );
    let (code, err) = fails(&["list", "no-such-folder"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(2),
            "bpfcase: no-such-folder: no such file or directory"
        )
    );
}

#[test]
fn a_file_that_is_no_kernel_is_named_once() {
    // Removed when the test ends.
    let tmp = tempfile::Builder::new()
        .prefix("bpfcase-nokernel-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let file = dir.join("not-a-kernel");
    std::fs::write(&file, vec![b'x'; 4096]).unwrap();
    let path = file.to_str().unwrap();
    let (code, err) = fails(&["fetch", path]);
    // Fetching goes on with the other kernels: a kernel that cannot be had is a failed run.
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.matches(path).count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "bpfcase: kernel `{path}`: not a bootable x86 kernel image: "
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            "give a bzImage or vmlinuz file, debian:<series> (e.g. debian:6.1), host or default"
        ),
        "{err}"
    );
}

#[test]
fn types_say_how_each_type_runs_in_words() {
    let out = bpfcase(&["types"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attach to tracepoint syscalls/sys_enter_getpid, trigger: getpid()"),
        "{text}"
    );
    assert!(!text.contains("AttachTrigger("), "{text}");
}

/// A map value size near u32::MAX: the compiler sizes the stack without wrapping around (which
/// used to allocate a 4 GB buffer and abort) and says how much it needs. What the kernel then
/// says about the map needs root and does not matter here.
#[test]
fn show_refuses_a_value_buffer_larger_than_the_stack() {
    // Removed when the test ends.
    let tmp = tempfile::Builder::new()
        .prefix("bpfcase-vs-")
        .tempdir()
        .unwrap();
    for vs in ["0xfffffff9", "0xfffffffc", "0xffffffff"] {
        let file = tmp.path().join("vs.json");
        let text = format!(
            r#"{{ "about": "a", "maps": {{ "st": {{ "type": "task_storage", "value_size": "{vs}" }} }},
                "steps": [ {{ "prog": [ {{ "get": {{ "map": "st", "task": "current", "value": 1, "flags": 1 }} }} ] }} ] }}"#
        );
        std::fs::write(&file, text).unwrap();
        let out = bpfcase(&["show", "vs", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.code().is_some(),
            "{vs}: killed by a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(
                "  not compiled: the stack buffers need 4294967304 bytes; the BPF stack has 512\n"
            ),
            "{vs}: {stdout}"
        );
    }
}
