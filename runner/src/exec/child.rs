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
    /// Commands to the child; closing it lets the child exit.
    release: Option<OwnedFd>,
    /// The child's acknowledgement of each command.
    ack: Option<OwnedFd>,
    state: State,
}

/// A message to a child: the action's byte, then a NUL-terminated path (for unlink and exec).
const MSG: usize = 256;

/// What a child can be told to do (the first byte of a message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Getpid = b'g' as isize,
    Open = b'o' as isize,
    Socket = b's' as isize,
    /// Unlink the message's path.
    Unlink = b'u' as isize,
    /// Exec the message's path with `--version`, output to /dev/null.
    Exec = b'x' as isize,
}

impl Child {
    /// Forks a child that waits until `exit` is called (or the runner goes away), doing what
    /// `act` tells it in the meantime.
    pub fn spawn(name: &str) -> Result<Child, Errno> {
        let (r, w) = pipe()?;
        let (ack_r, ack_w) = pipe()?;
        // SAFETY: the child only calls async-signal-safe functions (fcntl, dup2, close, read,
        // write, getpid, open, socket, unlink, execve, _exit) before it exits, so forking from
        // a multi-threaded process is sound.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(last());
        }
        if pid == 0 {
            // SAFETY: child side; raw fds inherited from the parent. Only the read end of the
            // command pipe (as fd 3) and the write end of the acknowledgement pipe (fd 4) stay
            // open: O_CLOEXEC acts at exec only, and an inherited write end of another child's
            // pipe would keep that child from ever seeing EOF, an inherited map, program or
            // link fd would keep the kernel object alive.
            unsafe { child_main(r.as_raw_fd(), ack_w.as_raw_fd()) }
        }
        drop(r);
        drop(ack_w);
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
            ack: Some(ack_r),
            state: State::Alive,
        })
    }

    /// The child as `bpf_get_current_pid_tgid` sees it (it has one thread).
    pub fn pid_tgid(&self) -> u64 {
        let pid = self.pid as u32 as u64;
        (pid << 32) | pid
    }

    /// Makes the child do `action` (on `path` for unlink and exec) and waits until it did (for
    /// exec: until the program it became exited; it is then a zombie, as after `exit`).
    pub fn act(&mut self, action: Action, path: &[u8]) -> Result<(), Errno> {
        let (Some(w), Some(ack)) = (&self.release, &self.ack) else {
            return Err(Errno(libc::ESRCH));
        };
        if self.state != State::Alive || path.len() >= MSG - 1 || path.contains(&0) {
            return Err(Errno(libc::ESRCH));
        }
        let mut msg = [0u8; MSG];
        msg[0] = action as u8;
        msg[1..1 + path.len()].copy_from_slice(path);
        // SAFETY: writes our buffer to our pipe; MSG ≤ PIPE_BUF, so the write is atomic.
        if unsafe { libc::write(w.as_raw_fd(), msg.as_ptr().cast(), MSG) } != MSG as isize {
            return Err(last());
        }
        if action == Action::Exec {
            return self.wait_exited();
        }
        let mut b = 0u8;
        loop {
            // SAFETY: reads one byte into `b` from our pipe.
            let n = unsafe { libc::read(ack.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
            match n {
                1 => return Ok(()),
                0 => return Err(Errno(libc::ESRCH)),
                _ if last().0 == libc::EINTR => continue,
                _ => return Err(last()),
            }
        }
    }

    /// Lets the child exit and waits until it is a zombie (not reaped).
    pub fn exit(&mut self) -> Result<(), Errno> {
        if self.state != State::Alive {
            return Err(Errno(libc::ESRCH));
        }
        self.wait_exited()
    }

    /// Waits until the child is a zombie (not reaped).
    fn wait_exited(&mut self) -> Result<(), Errno> {
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

fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last());
    }
    // SAFETY: pipe2 succeeded; both fds are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The forked child: moves its two pipe ends to fds 3 and 4, closes everything else, then does
/// what each message says until the command pipe closes.
///
/// # Safety
/// Only in a freshly forked child: it calls async-signal-safe functions only, and never returns.
unsafe fn child_main(cmd: i32, ack: i32) -> ! {
    const NULL: &[u8] = b"/dev/null\0";
    const VERSION: &[u8] = b"--version\0";
    // SAFETY (whole body): raw syscalls on fds and buffers of this function.
    unsafe {
        // Above the fds 3 and 4 first, so that moving one cannot close the other.
        let cmd = libc::fcntl(cmd, libc::F_DUPFD, 10);
        let ack = libc::fcntl(ack, libc::F_DUPFD, 10);
        if cmd < 0 || ack < 0 || libc::dup2(cmd, 3) != 3 || libc::dup2(ack, 4) != 4 {
            libc::_exit(1);
        }
        if libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32) != 0 {
            for fd in 5..65536 {
                libc::close(fd);
            }
        }
        let mut msg = [0u8; MSG];
        loop {
            let mut got = 0usize;
            while got < MSG {
                let n = libc::read(3, msg.as_mut_ptr().add(got).cast(), MSG - got);
                if n > 0 {
                    got += n as usize;
                } else if n == 0 || *libc::__errno_location() != libc::EINTR {
                    libc::_exit(0);
                }
            }
            msg[MSG - 1] = 0;
            let path = msg.as_ptr().add(1).cast::<libc::c_char>();
            match msg[0] {
                b'g' => {
                    libc::syscall(libc::SYS_getpid);
                }
                b'o' => {
                    let fd = libc::open(NULL.as_ptr().cast(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
                b's' => {
                    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
                b'u' => {
                    libc::unlink(path);
                }
                b'x' => {
                    let null = libc::open(NULL.as_ptr().cast(), libc::O_RDWR);
                    if null >= 0 {
                        libc::dup2(null, 0);
                        libc::dup2(null, 1);
                        libc::dup2(null, 2);
                    }
                    let argv = [path, VERSION.as_ptr().cast(), std::ptr::null()];
                    let envp = [std::ptr::null::<libc::c_char>()];
                    libc::execve(path, argv.as_ptr(), envp.as_ptr());
                    libc::_exit(127);
                }
                _ => {}
            }
            let b = 1u8;
            libc::write(4, (&b as *const u8).cast(), 1);
        }
    }
}

fn last() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}
