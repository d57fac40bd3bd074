//! `bpfcase`: run JSON cases against the running kernel or kernels booted in QEMU, list them,
//! show what one compiles to. The command line is `cli`; the commands that drive guests are
//! `vm_cmd` and `bench`, `show` prints one instance.

use std::process::ExitCode;

mod bench;
mod cli;
mod show;
mod vm_cmd;

fn main() -> ExitCode {
    // Output piped into `head` ends the process quietly, as for any Unix tool, instead of
    // panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if bpfcase::vm::guest::is_init() {
        bpfcase::vm::guest::main();
    }
    cli::main()
}
