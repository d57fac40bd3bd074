//! Compiles the BPF C programs in `progs/` with clang (`-target bpf`) into OUT_DIR, against the
//! headers of the libbpf that libbpf-sys vendors. Without clang the runner still builds; cases
//! that name a C program then report that it was not built.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let progs = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../progs");
    let include = std::env::var("DEP_BPF_INCLUDE").expect("libbpf-sys exports its include dir");
    println!("cargo:rerun-if-changed={}", progs.display());
    let clang = std::env::var("BPFCASE_CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=BPFCASE_CLANG");
    // `-target bpf` drops the multiarch include dir where <asm/types.h> lives.
    let multiarch = Command::new(&clang)
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "x86_64-linux-gnu".into());
    let mut built = Vec::new();
    // progs/NAME.bpf.c is object NAME; progs/selftests/NAME.bpf.c is `selftests/NAME`.
    let mut entries: Vec<(PathBuf, String)> = Vec::new();
    for (dir, prefix) in [(progs.clone(), ""), (progs.join("selftests"), "selftests/")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if let Some(stem) = name.strip_suffix(".bpf.c") {
                entries.push((f.clone(), format!("{prefix}{stem}")));
            } else if name.ends_with(".h") {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
    }
    entries.sort();
    std::fs::create_dir_all(out.join("selftests")).expect("OUT_DIR is writable");
    for (src, stem) in &entries {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = stem.clone();
        let obj = out.join(format!("{stem}.bpf.o"));
        let status = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-Wall",
                "-Werror",
                "-target",
                "bpf",
                "-D__TARGET_ARCH_x86",
            ])
            .arg(format!("-I{include}"))
            .arg(format!("-I{}", src.parent().unwrap_or(&progs).display()))
            .arg(format!("-idirafter/usr/include/{multiarch}"))
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => built.push(stem),
            Ok(s) => panic!("clang failed on {} ({s})", src.display()),
            Err(e) => {
                println!("cargo:warning=BPF C programs not built: cannot run {clang}: {e} (scripts/setup installs clang)");
            }
        }
    }
    // progs.rs: (name, object bytes) for every program that was built.
    let mut table = String::from("/// BPF objects compiled from `progs/*.bpf.c` by build.rs: (name, ELF bytes).\npub const OBJECTS: &[(&str, &[u8])] = &[\n");
    for stem in &built {
        table.push_str(&format!(
            "    ({stem:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{stem}.bpf.o\"))),\n"
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("progs.rs"), table).expect("OUT_DIR is writable");
}
