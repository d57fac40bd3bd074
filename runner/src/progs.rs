//! The BPF C programs of `progs/`, compiled by clang at build time (see build.rs) and embedded.

include!(concat!(env!("OUT_DIR"), "/progs.rs"));

/// The object compiled from `progs/<name>.bpf.c`, if it was built.
pub fn object(name: &str) -> Option<&'static [u8]> {
    OBJECTS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
