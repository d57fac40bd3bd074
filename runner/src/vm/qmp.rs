//! A QMP client, just enough to save and restore a guest: connect to QEMU's `-qmp` socket,
//! negotiate, run commands one at a time (events are skipped), and hand QEMU a file
//! descriptor (`getfd`, the descriptor passed with `SCM_RIGHTS`).
//!
//! Owns: the QMP conversation. Must not: decide what to run (that is `warm`), or block
//! without a bound: every wait has a deadline.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one command may take to answer.
const ANSWER: Duration = Duration::from_secs(30);

pub struct Qmp {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    /// Connects to `path` (retrying until `deadline` while QEMU has not opened it yet) and
    /// leaves capabilities negotiation mode.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Qmp, String> {
        loop {
            if let Some(q) = Qmp::try_connect(path)? {
                return Ok(q);
            }
            if Instant::now() >= deadline {
                return Err(format!("QMP: {} did not open in time", path.display()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`Qmp::connect`] once: None while QEMU has not opened the socket yet.
    pub fn try_connect(path: &Path) -> Result<Option<Qmp>, String> {
        let stream = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e) if retry(&e) => return Ok(None),
            Err(e) => return Err(format!("connecting to QMP at {}: {e}", path.display())),
        };
        let err = |e: io::Error| format!("QMP: {e}");
        stream.set_read_timeout(Some(ANSWER)).map_err(err)?;
        let reader = BufReader::new(stream.try_clone().map_err(err)?);
        let mut q = Qmp { stream, reader };
        let greeting = q.line()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("QMP: not a QMP greeting: {greeting}"));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(Some(q))
    }

    /// Runs `command` and returns its `return` value, or QEMU's error description.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let msg = command_line(command, arguments);
        self.stream
            .write_all(msg.as_bytes())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        self.answer(command)
    }

    /// Gives QEMU a file descriptor under `name` (for `fd:<name>` migration URIs).
    pub fn send_fd(&mut self, fd: BorrowedFd<'_>, name: &str) -> Result<(), String> {
        let msg = command_line("getfd", json!({ "fdname": name }));
        send_with_fd(&self.stream, msg.as_bytes(), fd)
            .map_err(|e| format!("QMP getfd: passing the descriptor: {e}"))?;
        self.answer("getfd").map(|_| ())
    }

    fn answer(&mut self, command: &str) -> Result<Value, String> {
        loop {
            let v = self.line()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("?");
                return Err(format!("QMP {command}: {desc}"));
            }
            // An event ({"event": …}): not the answer.
        }
    }

    fn line(&mut self) -> Result<Value, String> {
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(0) => Err("QMP: QEMU closed the connection".into()),
            Ok(_) => serde_json::from_str(&l).map_err(|e| format!("QMP: {e} in {l:?}")),
            Err(e) => Err(format!("QMP: {e}")),
        }
    }
}

/// Whether a failed connect may succeed later: the socket is not there or not listening yet.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// One command as QMP takes it: a JSON object on a line.
fn command_line(command: &str, arguments: Value) -> String {
    let mut v = json!({ "execute": command });
    if arguments.as_object().is_some_and(|a| !a.is_empty()) {
        v["arguments"] = arguments;
    }
    format!("{v}\n")
}

/// Writes `data` with `fd` attached as `SCM_RIGHTS` ancillary data (on the first byte's
/// message; the rest, if the kernel takes less at once, follows plainly).
fn send_with_fd(sock: &UnixStream, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // u64 words: a control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    assert!(
        space <= std::mem::size_of_val(&control),
        "the control buffer fits one fd"
    );
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough for one header with
    // one int (checked above), so CMSG_FIRSTHDR is non-null and the writes stay inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), raw);
    }
    // SAFETY: msg and everything it points to (iov, data, control) live across the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    (&*sock).write_all(&data[n as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn commands_are_json_lines() {
        assert_eq!(
            command_line("qmp_capabilities", json!({})),
            "{\"execute\":\"qmp_capabilities\"}\n"
        );
        assert_eq!(
            command_line("migrate", json!({"uri": "fd:x"})),
            "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:x\"}}\n"
        );
    }

    /// A stand-in QEMU on a socket pair: greeting, an event before an answer, an error, and a
    /// descriptor that arrives.
    #[test]
    fn a_conversation_with_a_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut l = String::new();
            s.write_all(b"{\"QMP\": {\"version\": {}}}\n").unwrap();
            r.read_line(&mut l).unwrap();
            assert!(l.contains("qmp_capabilities"));
            s.write_all(b"{\"return\": {}}\n").unwrap();
            l.clear();
            r.read_line(&mut l).unwrap();
            assert!(l.contains("query-status"));
            s.write_all(b"{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"running\"}}\n")
                .unwrap();
            l.clear();
            r.read_line(&mut l).unwrap();
            s.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n")
                .unwrap();
            // The getfd line carries a descriptor: receive it and read through it.
            let mut buf = [0u8; 256];
            let mut control = [0u64; 8];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: test code: a zeroed msghdr pointing at live local buffers.
            let fd = unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control) as _;
                assert!(libc::recvmsg(s.as_raw_fd(), &mut msg, 0) > 0);
                let c = libc::CMSG_FIRSTHDR(&msg);
                assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
                std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>())
            };
            // SAFETY: the descriptor was just received and is owned by nothing else.
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            assert_eq!(text, "through the fd");
            assert!(String::from_utf8_lossy(&buf).contains("getfd"));
            s.write_all(b"{\"return\": {}}\n").unwrap();
        });
        let mut q = Qmp::connect(&path, Instant::now() + Duration::from_secs(5)).unwrap();
        let st = q.execute("query-status", json!({})).unwrap();
        assert_eq!(st["status"], "running");
        assert_eq!(q.execute("cont", json!({})).unwrap_err(), "QMP cont: no");
        let file = dir.path().join("f");
        std::fs::write(&file, "through the fd").unwrap();
        let f = std::fs::File::open(&file).unwrap();
        q.send_fd(f.as_fd(), "snap").unwrap();
        server.join().unwrap();
        assert!(Qmp::try_connect(&dir.path().join("absent"))
            .unwrap()
            .is_none());
        let gone = Qmp::connect(&dir.path().join("absent"), Instant::now());
        assert!(gone.err().unwrap().contains("did not open in time"));
    }
}
