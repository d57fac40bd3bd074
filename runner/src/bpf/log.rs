//! libbpf's own log lines go to `tracing` (target `libbpf`, at libbpf's level) instead of
//! libbpf's default of printing warnings to stderr: every libbpf failure already comes back to
//! the runner as an errno, so its lines are diagnostics, shown only when asked for.
//!
//! Owns: the print callback, and the stderr subscriber the command line installs (`init`).

use std::ffi::{c_char, c_int};
use std::sync::Once;

use libbpf_sys as sys;
use tracing::Level;

/// The environment variable that sets the log filter in full (`tracing_subscriber`'s
/// `EnvFilter` syntax: `debug`, `libbpf=debug`, `bpfcase=trace,libbpf=info` …).
pub const LOG_ENV: &str = "BPFCASE_LOG";

/// The longest libbpf message kept; longer ones (a verifier log quoted whole) are cut.
const MAX_MESSAGE: usize = 16 * 1024;

unsafe extern "C" {
    // The C library's; libbpf-sys declares only `vdprintf`. x86_64's `va_list` decays to a
    // pointer to its one `__va_list_tag`, which is what libbpf hands the callback.
    fn vsnprintf(
        s: *mut c_char,
        n: usize,
        fmt: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int;
}

/// Sends libbpf's log to `tracing` from now on, for the whole process. Idempotent.
pub fn route_libbpf() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `print` has the signature libbpf expects and lives for the whole program.
        unsafe { sys::libbpf_set_print(Some(print)) };
    });
}

/// The callback: formats the message (only if some subscriber wants it) and emits one event.
unsafe extern "C" fn print(
    level: sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut sys::__va_list_tag,
) -> c_int {
    let wanted = match level {
        sys::LIBBPF_WARN => tracing::enabled!(target: "libbpf", Level::WARN),
        sys::LIBBPF_INFO => tracing::enabled!(target: "libbpf", Level::INFO),
        _ => tracing::enabled!(target: "libbpf", Level::DEBUG),
    };
    if !wanted || fmt.is_null() {
        return 0;
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    // SAFETY: libbpf passes a printf format and its matching va_list, used once here; the
    // buffer has room for `len` bytes and vsnprintf NUL-terminates within it.
    let n = unsafe { vsnprintf(buf.as_mut_ptr().cast(), buf.len(), fmt, ap) };
    if n < 0 {
        return n;
    }
    let text = super::log_text(&buf);
    // The event's target already says where it comes from.
    let mut msg = text
        .strip_prefix("libbpf: ")
        .unwrap_or(&text)
        .trim_end()
        .to_string();
    if n as usize >= buf.len() {
        msg.push_str(" … (cut)");
    }
    match level {
        sys::LIBBPF_WARN => tracing::warn!(target: "libbpf", "{msg}"),
        sys::LIBBPF_INFO => tracing::info!(target: "libbpf", "{msg}"),
        _ => tracing::debug!(target: "libbpf", "{msg}"),
    }
    n
}

/// The filter for a count of `-v` flags: nothing from libbpf by default, everything at debug
/// level with `-v`, at trace level with `-vv`.
pub fn default_filter(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn,libbpf=off",
        1 => "debug",
        _ => "trace",
    }
}

/// For the command line: the runner's log (and libbpf's) on stderr, filtered by `BPFCASE_LOG`
/// when it is set, else by the `-v` count.
pub fn init(verbosity: u8) {
    route_libbpf();
    let from_env = std::env::var(LOG_ENV).ok().filter(|s| !s.trim().is_empty());
    let filter = match from_env
        .as_deref()
        .map(tracing_subscriber::EnvFilter::try_new)
    {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("bpfcase: {LOG_ENV}: {e}; using the default filter");
            tracing_subscriber::EnvFilter::new(default_filter(verbosity))
        }
        None => tracing_subscriber::EnvFilter::new(default_filter(verbosity)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
