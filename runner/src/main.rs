fn main() {
    println!("{}", unsafe { libbpf_sys::libbpf_major_version() });
}
