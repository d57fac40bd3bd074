//! Nothing outlives bpfcase: the processes it starts (QEMU, apt, dpkg, tar) and the work
//! directories it creates.
//!
//! - A child started through [`spawn`] or [`output`] runs in its own process group (so a
//!   terminal's Ctrl-C reaches bpfcase alone, which then stops the child's whole group) with
//!   `PR_SET_PDEATHSIG` = SIGKILL (so it dies with bpfcase even when bpfcase is killed with
//!   SIGKILL). The kernel sends that signal when the *thread* that spawned the child ends: callers
//!   spawn from a thread that waits for the child, which every caller here does.
//! - A directory made with [`work_dir`] is a `tempfile::TempDir`, removed on drop.
//! - Both are registered while they live. [`handle_signals`] starts a thread that, on SIGINT,
//!   SIGTERM or SIGHUP, kills every registered process group, removes every registered directory
//!   and exits with 128 + the signal number.
//!
//! Owns: the registry and the signal thread. Must not: know what the children are.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

/// What is alive right now: process groups (their leader's pid) and directories, by a token.
#[derive(Default)]
struct Live {
    groups: BTreeMap<u64, i32>,
    dirs: BTreeMap<u64, PathBuf>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    groups: BTreeMap::new(),
    dirs: BTreeMap::new(),
});
static NEXT: AtomicU64 = AtomicU64::new(0);

fn live() -> MutexGuard<'static, Live> {
    // A panic while holding the lock leaves the maps consistent (single inserts and removes).
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child's entry in the registry, removed on drop.
struct Registration {
    token: u64,
    pgid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        live().groups.remove(&self.token);
    }
}

/// A running child, registered until it has exited; dropping it unreaped kills its group.
pub struct Running {
    child: Child,
    reg: Option<Registration>,
}

impl Running {
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child's whole process group (SIGKILL) and reaps the child.
    pub fn kill(&mut self) {
        if let Some(reg) = self.reg.take() {
            kill_group(reg.pgid);
        }
        let _ = self.child.wait();
    }

    /// `Child::wait`; the child is unregistered once it has exited.
    pub fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        let st = self.child.wait()?;
        self.reg = None;
        Ok(st)
    }

    /// `Child::try_wait`; the child is unregistered once it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        let st = self.child.try_wait()?;
        if st.is_some() {
            self.reg = None;
        }
        Ok(st)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reg.is_some() {
            self.kill();
        }
    }
}

/// Starts `cmd` in its own process group, to be killed when bpfcase dies, and registers it.
fn start(cmd: &mut Command) -> io::Result<(Child, Registration)> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only sigemptyset,
    // sigprocmask, prctl, getppid and _exit, which are async-signal-safe; it writes only its own
    // stack.
    unsafe {
        cmd.pre_exec(move || {
            // The signals `handle_signals` blocks are blocked in this thread too, and a blocked
            // mask survives exec: the child gets an empty one.
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            if libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nothing would kill this child.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    // Registered under the lock, so the signal thread either sees this child or has already
    // stopped everything (it holds the lock until the process exits).
    let mut l = live();
    let child = cmd.spawn()?;
    let pgid = child.id() as i32;
    l.groups.insert(token, pgid);
    drop(l);
    Ok((child, Registration { token, pgid }))
}

/// Starts `cmd` as a registered child (see the module documentation).
pub fn spawn(cmd: &mut Command) -> io::Result<Running> {
    let (child, reg) = start(cmd)?;
    Ok(Running {
        child,
        reg: Some(reg),
    })
}

/// `Command::output` for a registered child: stdout and stderr are captured. Unlike
/// `Command::output`, stdin is inherited unless `cmd` sets it (callers set it to null).
pub fn output(cmd: &mut Command) -> io::Result<Output> {
    use std::process::Stdio;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (child, reg) = start(cmd)?;
    let out = child.wait_with_output();
    if out.is_err() {
        kill_group(reg.pgid);
    }
    out
}

/// A registered temporary directory, removed on drop.
pub struct WorkDir {
    dir: tempfile::TempDir,
    token: u64,
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        live().dirs.remove(&self.token);
        // The TempDir removes the directory after this.
    }
}

/// A new directory `<parent>/<prefix>XXXXXX` (parent: the system temp dir, `$TMPDIR`).
pub fn work_dir(prefix: &str, parent: Option<&Path>) -> io::Result<WorkDir> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut l = live();
    let dir = match parent {
        Some(p) => b.tempdir_in(p)?,
        None => b.tempdir()?,
    };
    l.dirs.insert(token, dir.path().to_path_buf());
    drop(l);
    Ok(WorkDir { dir, token })
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill has no memory preconditions; a negative pid names the process group,
        // which exists while its leader is unreaped (it is registered until reaped).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// The signals that stop bpfcase with a clean-up.
const STOP: [nix::sys::signal::Signal; 3] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
];

/// Blocks SIGINT, SIGTERM and SIGHUP (those not ignored when bpfcase started) in the calling
/// thread, and so in every thread it starts later, and starts the thread that handles them.
/// Call it before starting other threads; later calls do nothing. Children started through
/// this module get an empty signal mask.
pub fn handle_signals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use nix::sys::signal::SigSet;
        let mut set = SigSet::empty();
        // A signal this process was started ignoring (`nohup`, a background job of a script)
        // stays ignored.
        let handled: Vec<_> = STOP.into_iter().filter(|s| !ignored(*s)).collect();
        for s in &handled {
            set.add(*s);
        }
        if handled.is_empty() || set.thread_block().is_err() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("bpfcase-signals".into())
            .spawn(move || {
                let Ok(sig) = set.wait() else { return };
                stop_everything(sig as i32);
            });
        if spawned.is_err() {
            // No handler thread: let the signals act as before.
            let _ = set.thread_unblock();
        }
    });
}

/// Whether the signal's disposition is SIG_IGN.
fn ignored(s: nix::sys::signal::Signal) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `old`, which is then initialised
    // when the call succeeds.
    let r = unsafe { libc::sigaction(s as i32, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction returned 0, so it wrote `old`.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Kills every registered child group, removes every registered directory, exits 128 + `sig`.
fn stop_everything(sig: i32) -> ! {
    // Held until the exit: no new child or directory appears meanwhile.
    let l = live();
    let groups = l.groups.len();
    for pgid in l.groups.values() {
        kill_group(*pgid);
    }
    for pgid in l.groups.values() {
        // Reap the leaders (each is a child of this process, its pid the group's id) so that
        // none is left behind even as a zombie; ECHILD when its thread already reaped it.
        // SAFETY: waitpid with a null status pointer writes nothing.
        unsafe { libc::waitpid(*pgid, std::ptr::null_mut(), 0) };
    }
    for d in l.dirs.values() {
        let _ = std::fs::remove_dir_all(d);
    }
    let name = nix::sys::signal::Signal::try_from(sig).map_or("a signal", |s| s.as_str());
    eprintln!(
        "bpfcase: stopped by {name}{}",
        if groups > 0 {
            format!("; killed {groups} child process group(s)")
        } else {
            String::new()
        }
    );
    std::process::exit(128 + sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_registered_until_waited() {
        let r = spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = r.id() as i32;
        assert!(live().groups.values().any(|g| *g == pid));
        // Its own process group, led by itself.
        // SAFETY: getpgid has no memory preconditions.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        drop(r);
        assert!(!live().groups.values().any(|g| *g == pid));
        // Killed and reaped: the pid is gone.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());

        let out =
            output(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(output(&mut Command::new("/nonexistent/bpfcase-no-such-tool")).is_err());
    }

    #[test]
    fn children_die_with_the_thread_that_started_them() {
        // The thread leaks its child on purpose (no kill on drop): only the death signal kills it.
        let pid = std::thread::spawn(|| {
            let r = spawn(Command::new("sleep").arg("30")).unwrap();
            let pid = r.id() as i32;
            std::mem::forget(r);
            pid
        })
        .join()
        .unwrap();
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid i32.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGKILL);
        live().groups.retain(|_, g| *g != pid);
    }

    #[test]
    fn children_start_with_no_blocked_signal() {
        // As in a thread started after `handle_signals`: SIGINT and SIGTERM blocked.
        let status = std::thread::spawn(|| {
            use nix::sys::signal::{SigSet, Signal};
            let mut set = SigSet::empty();
            set.add(Signal::SIGINT);
            set.add(Signal::SIGTERM);
            set.thread_block().unwrap();
            let out = output(Command::new("cat").arg("/proc/self/status")).unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .join()
        .unwrap();
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(str::trim);
        assert_eq!(blocked, Some("0000000000000000"), "{status}");
    }

    #[test]
    fn work_dirs_are_registered_and_removed() {
        let parent = tempfile::tempdir().unwrap();
        let w = work_dir("bpfcase-test-", Some(parent.path())).unwrap();
        let p = w.path().to_path_buf();
        assert!(p.is_dir());
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("bpfcase-test-"));
        assert!(live().dirs.values().any(|d| *d == p));
        drop(w);
        assert!(!p.exists());
        assert!(!live().dirs.values().any(|d| *d == p));
    }
}
