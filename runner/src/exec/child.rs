//! Child processes a case can point at: forked, parked on a pipe, told to exit, reaped. Each
//! child's pidfd is opened at spawn time so that it keeps naming the child after it exits.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::bpf::{self, Errno};

#[derive(Debug, PartialEq, Eq)]
enum State {
    Alive,
    Exited,
    Reaped,
}

pub struct Child {
    pub name: String,
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Closing it lets the child exit.
    release: Option<OwnedFd>,
    state: State,
}

impl Child {
    /// Forks a child that waits until `exit` is called (or the runner goes away).
    pub fn spawn(name: &str) -> Result<Child, Errno> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(last());
        }
        // SAFETY: pipe2 succeeded; both fds are new and ours.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only calls async-signal-safe functions (close, read, _exit) before
        // it exits, so forking from a multi-threaded process is sound.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(last());
        }
        if pid == 0 {
            // SAFETY: child side; raw fds inherited from the parent. Only the read end stays
            // open (as fd 3): O_CLOEXEC acts at exec only, and an inherited write end of another
            // child's pipe would keep that child from ever seeing EOF, an inherited map,
            // program or link fd would keep the kernel object alive.
            unsafe {
                let r = if libc::dup2(r.as_raw_fd(), 3) == 3 {
                    3
                } else {
                    r.as_raw_fd()
                };
                if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
                    for fd in 4..65536 {
                        if fd != r {
                            libc::close(fd);
                        }
                    }
                }
                let mut b = 0u8;
                loop {
                    let n = libc::read(r, (&mut b as *mut u8).cast(), 1);
                    if n >= 0 || *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                libc::_exit(0);
            }
        }
        drop(r);
        let pidfd = match bpf::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: kill and reap the child we just forked.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(e);
            }
        };
        Ok(Child {
            name: name.to_string(),
            pid,
            pidfd,
            release: Some(w),
            state: State::Alive,
        })
    }

    /// Lets the child exit and waits until it is a zombie (not reaped).
    pub fn exit(&mut self) -> Result<(), Errno> {
        if self.state != State::Alive {
            return Err(Errno(libc::ESRCH));
        }
        self.release = None;
        // SAFETY: waitid with a zeroed siginfo buffer; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                self.pid as u32,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r < 0 {
            return Err(last());
        }
        self.state = State::Exited;
        Ok(())
    }

    /// Reaps an exited child.
    pub fn reap(&mut self) -> Result<(), Errno> {
        if self.state != State::Exited {
            return Err(Errno(if self.state == State::Alive {
                libc::EBUSY
            } else {
                libc::ECHILD
            }));
        }
        // SAFETY: waits for our own child.
        if unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) } < 0 {
            return Err(last());
        }
        self.state = State::Reaped;
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.state == State::Reaped {
            return;
        }
        self.release = None;
        // SAFETY: kill and reap our own child; it never outlives the instance.
        unsafe {
            if self.state == State::Alive {
                libc::kill(self.pid, libc::SIGKILL);
            }
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

fn last() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}
