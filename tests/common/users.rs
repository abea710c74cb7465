//! A second real Unix user for the socket tests that need two identities (the two-person
//! rule, takeover, per-uid limits). Becoming another user needs root: as root (CI runs the
//! tests as root) the user is created once with `useradd`; otherwise the test skips with a
//! message, except under `CI=true`, where skipping would hide a broken rule, so it fails.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct OtherUser {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

const NAME: &str = "flightdeck-peer";

/// The second user, or None (having said why) where the machine cannot provide one.
pub fn other_user() -> Option<OtherUser> {
    static USER: OnceLock<Result<OtherUser, String>> = OnceLock::new();
    match USER.get_or_init(make) {
        Ok(u) => Some(u.clone()),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true needs a second Unix user for this test: {why}"
            );
            eprintln!("skipped: no second Unix user ({why}); the rule is unit-tested in-process");
            None
        }
    }
}

fn lookup() -> Option<OtherUser> {
    let u = nix::unistd::User::from_name(NAME).ok().flatten()?;
    Some(OtherUser {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        name: u.name,
    })
}

fn make() -> Result<OtherUser, String> {
    if !nix::unistd::getuid().is_root() {
        return Err("not running as root, cannot become another user".into());
    }
    if let Some(u) = lookup() {
        return Ok(u);
    }
    // Another test binary may be creating it at the same moment: whoever loses finds it.
    let out = std::process::Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--shell"])
        .arg("/usr/sbin/nologin")
        .arg(NAME)
        .output()
        .map_err(|e| format!("cannot run useradd: {e}"))?;
    lookup().ok_or_else(|| {
        format!(
            "useradd {NAME} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// A stream connected to `socket` by a child process running as `user`: the server's peer
/// credentials (taken at connect time) are the other user's, and this process speaks on the
/// stream. Err(errno) if the child could not connect.
pub fn connect_as(user: &OtherUser, socket: &Path) -> Result<std::os::unix::net::UnixStream, i32> {
    // Everything the child needs is prepared before fork: after it, only raw system calls.
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below, NUL-terminated.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket creation; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (uid, gid) = (user.uid, user.gid);
    // SAFETY: the child only makes async-signal-safe calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain system calls on valid, pre-built arguments.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(*libc::__errno_location());
            }
            if libc::connect(
                fd,
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            ) != 0
            {
                libc::_exit(*libc::__errno_location());
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 => Ok(std::os::unix::net::UnixStream::from(owned)),
        e => Err(e),
    }
}
