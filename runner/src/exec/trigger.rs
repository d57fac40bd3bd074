//! What the runner does so that the kernel runs an attached program: an action of its own
//! thread, of a fresh child (exec, exit), of a spawned child, or of threads doing one action
//! again and again. Which task acts decides the program's filter (see `run.rs`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::child::{Action, Child};
use super::Stop;
use crate::bpf::Errno;
use crate::case::trigger::{Bound, ThreadsSpec};
use crate::tables::Trigger;

/// Who does a trigger's action.
pub(super) enum Doer<'a> {
    /// The runner's own thread.
    Runner,
    /// A child forked for this trigger (exec, exit), parked until told.
    Fresh(Child),
    /// A child a `spawn` step started.
    Named(&'a mut Child),
    /// The runner's own thread, on an owner a `new` step made.
    Owner(&'a mut super::owners::Owner),
}

impl Doer<'_> {
    /// Does `t` once. A child that cannot (it exited) is the errno.
    pub(super) fn fire(&mut self, t: Trigger) -> Result<(), Errno> {
        let child = match self {
            Doer::Runner => return act(t, 0),
            Doer::Owner(o) => return o.act(t),
            Doer::Fresh(c) => c,
            Doer::Named(c) => c,
        };
        if t == Trigger::Exit {
            return child.exit();
        }
        let mut _dir = None;
        let (action, path) = match t {
            Trigger::Getpid => (Action::Getpid, Vec::new()),
            Trigger::OpenFile => (Action::Open, Vec::new()),
            Trigger::Socket => (Action::Socket, Vec::new()),
            Trigger::Unlink => {
                let (dir, path) = victim(0)?;
                _dir = Some(dir);
                (Action::Unlink, path)
            }
            Trigger::Exec => (Action::Exec, exe()?),
            Trigger::Spin | Trigger::Exit | Trigger::Getsockopt => return Err(Errno(libc::EINVAL)),
        };
        child.act(action, &path)
    }
}

/// This thread as `bpf_get_current_pid_tgid` sees it: tgid << 32 | tid.
pub(super) fn runner_thread() -> u64 {
    let tid = nix::unistd::gettid().as_raw() as u32 as u64;
    (u64::from(runner_process()) << 32) | tid
}

/// The runner's process id, asked once: a getpid(2) of the runner's own between attaching and
/// observing would count as a trigger of programs on getpid.
pub(super) fn runner_process() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// The runner's own binary, for a child to exec.
fn exe() -> Result<Vec<u8>, Errno> {
    let p = std::env::current_exe().map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
    Ok(p.as_os_str().as_bytes().to_vec())
}

/// A file in a private temporary directory, for an unlink to remove: the directory (removed
/// when dropped) and the file's path. `n` tells the threads' files apart.
fn victim(n: usize) -> Result<(tempfile::TempDir, Vec<u8>), Errno> {
    let dir = tempfile::tempdir().map_err(io_errno)?;
    let path = dir.path().join(format!("victim{n}"));
    std::fs::File::create(&path).map_err(io_errno)?;
    let bytes = path.as_os_str().as_bytes().to_vec();
    Ok((dir, bytes))
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Does an action of the calling thread once; `n` tells threads' files apart.
fn act(t: Trigger, n: usize) -> Result<(), Errno> {
    match t {
        Trigger::Getpid => {
            // SAFETY: getpid has no preconditions; the raw syscall avoids libc caching.
            unsafe { libc::syscall(libc::SYS_getpid) };
        }
        Trigger::OpenFile => {
            let _ = std::fs::File::open("/dev/null");
        }
        Trigger::Socket => {
            // SAFETY: socket(2) with constant arguments; the fd is closed at once.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
            if fd < 0 {
                return Err(Errno(
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                ));
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        Trigger::Unlink => {
            let (_dir, path) = victim(n)?;
            unlink(&path)?;
        }
        Trigger::Getsockopt => {
            let s = super::owners::socket(libc::SOCK_DGRAM)?;
            super::owners::getsockopt_type(std::os::fd::AsRawFd::as_raw_fd(&s))?;
        }
        // Not the runner's to do: `Doer::fire` gives them to a child.
        Trigger::Exec | Trigger::Exit | Trigger::Spin => return Err(Errno(libc::EINVAL)),
    }
    Ok(())
}

fn unlink(path: &[u8]) -> Result<(), Errno> {
    let c = CString::new(path).map_err(|_| Errno(libc::EINVAL))?;
    std::fs::remove_file(Path::new(std::ffi::OsStr::from_bytes(c.as_bytes()))).map_err(io_errno)
}

/// Runs `spec.count` threads that each do `spec.action` for the bound, started together, and
/// waits for them. A thread that cannot be pinned to its CPU makes the step unsupported.
///
/// Counted in iterations, the threads take turns (a lock around each action): a thread
/// preempted inside the program would otherwise make the others' runs recursion misses, as
/// often as the scheduler decides (measured on 7.3: 0 or 75 of 100). Bounded by time, they
/// overlap freely, and only whether the program ran is reported.
pub(super) fn threads(spec: &ThreadsSpec) -> Result<(), Stop> {
    let start = Barrier::new(spec.count as usize);
    let turns = std::sync::Mutex::new(());
    let outcome: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.count as usize)
            .map(|n| {
                let (start, turns) = (&start, &turns);
                s.spawn(move || {
                    let pinned = spec.cpu.map_or(Ok(()), pin);
                    start.wait();
                    pinned?;
                    let deadline = match spec.bound {
                        Bound::Millis(ms) => Some(Instant::now() + Duration::from_millis(ms)),
                        Bound::Iterations(_) => None,
                    };
                    let mut i = 0u64;
                    loop {
                        match (spec.bound, deadline) {
                            (Bound::Iterations(k), _) if i >= k => break,
                            (_, Some(d)) if Instant::now() >= d => break,
                            _ => {}
                        }
                        let turn = match spec.bound {
                            // A poisoned lock only means another thread panicked: its join says so.
                            Bound::Iterations(_) => {
                                Some(turns.lock().unwrap_or_else(|e| e.into_inner()))
                            }
                            Bound::Millis(_) => None,
                        };
                        act(spec.action, n)
                            .map_err(|e| format!("{}: {}", spec.action, e.name()))?;
                        drop(turn);
                        i += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    match outcome.into_iter().find_map(Result::err) {
        None => Ok(()),
        Some(e) if e.starts_with("cpu") => Err(Stop::Unsupported(e)),
        Some(e) => Err(Stop::Error(format!("a trigger thread failed: {e}"))),
    }
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: u32) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu as usize)
        .map_err(|e| format!("cpu {cpu}: {}", Errno(e as i32).name()))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("cpu {cpu}: {}", Errno(e as i32).name()))
}
