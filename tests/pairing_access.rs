//! Who may join: file modes for private and group sessions, and — when the tests run as root,
//! so they can become another user in a forked child — the peer-credential check itself.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use flightdeck::engine::event::AutoConfirm;
use flightdeck::engine::session::{self, EngineConfig, EngineTask};
use flightdeck::pairing::runtime_dir::current_uid;
use flightdeck::pairing::server::{serve, ServeOptions, ServerGuard};
use flightdeck::plan::test_plans::{empty_target, plan, run, step};
use flightdeck::plan::Plan;

/// The conventional unprivileged user and group.
const NOBODY: u32 = 65534;

fn one_step_plan() -> Plan {
    plan("access-test", vec![step("a", run(&["true"]))])
}

fn engine(dir: &Path) -> EngineTask {
    session::start(EngineConfig {
        plan: one_step_plan(),
        target: empty_target(),
        auto: AutoConfirm::default(),
        operator: "tester".into(),
        journal: dir.join("j.jsonl"),
        observe: false,
        time_scale: 1.0,
    })
    .unwrap()
}

async fn served(tmp: &Path, name: &str, allow_group: Option<String>) -> (EngineTask, ServerGuard) {
    let task = engine(tmp);
    let guard = serve(
        task.handle.clone(),
        name,
        ServeOptions {
            allow_group,
            runtime_dir: Some(tmp.join("rt")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (task, guard)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn primary_gid() -> u32 {
    // SAFETY: getgid has no preconditions.
    unsafe { libc::getgid() }
}

#[tokio::test]
async fn a_group_session_is_reachable_by_the_group_only() {
    let tmp = tempfile::tempdir().unwrap();
    let gid = primary_gid();
    let (_task, guard) = served(tmp.path(), "grp", Some(gid.to_string())).await;
    let dir = tmp.path().join("rt");
    assert_eq!(mode(&dir), 0o750);
    assert_eq!(mode(&guard.socket_path()), 0o660);
    assert_eq!(mode(&guard.info_path()), 0o640);
    for p in [dir, guard.socket_path(), guard.info_path()] {
        assert_eq!(std::fs::metadata(&p).unwrap().gid(), gid, "{}", p.display());
    }
}

#[tokio::test]
async fn a_private_dir_left_too_open_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rt");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let task = engine(tmp.path());
    let r = serve(
        task.handle.clone(),
        "open",
        ServeOptions {
            runtime_dir: Some(dir.clone()),
            ..Default::default()
        },
    )
    .await;
    let e = r.err().expect("a 0770 runtime dir was used");
    assert!(e.to_string().contains("wider than 0700"), "{e}");
    assert!(!dir.join("open.sock").exists());
}

/// In a forked child running as `uid`/`gid`: connect to `socket`, send `line`, and return the
/// first line the server answers, or the errno that stopped the child.
fn exchange_as(uid: u32, gid: u32, socket: &Path, line: &[u8]) -> Result<String, i32> {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is prepared before fork: after it, only raw system calls.
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below, NUL-terminated.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the child only makes async-signal-safe calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain system calls on valid, pre-built arguments.
        unsafe {
            let die = |_: &str| libc::_exit(*libc::__errno_location());
            libc::close(rd);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                die("setuid");
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if s < 0 {
                die("socket");
            }
            if libc::connect(
                s,
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            ) != 0
            {
                die("connect");
            }
            libc::write(s, line.as_ptr().cast(), line.len());
            let mut buf = [0u8; 4096];
            let mut got = 0;
            while got < buf.len() {
                let n = libc::read(s, buf[got..].as_mut_ptr().cast(), buf.len() - got);
                if n <= 0 {
                    break;
                }
                got += n as usize;
                if buf[..got].contains(&b'\n') {
                    break;
                }
            }
            libc::write(wr, buf.as_ptr().cast(), got);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end, so reading ends when the child exits.
    unsafe { libc::close(wr) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a valid buffer from our pipe.
        let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked; closing our read end.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
        libc::close(rd);
    }
    let code = libc::WEXITSTATUS(status);
    if code != 0 {
        return Err(code);
    }
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// A hello line in this build's protocol.
fn hello_line() -> Vec<u8> {
    use flightdeck::pairing::protocol::{encode, ClientMsg, Hello};
    encode(&ClientMsg::Hello(Hello {
        samples: false,
        ..flightdeck::pairing::client::hello("nobody", None, false, 0)
    }))
    .into_bytes()
}

#[tokio::test]
async fn as_root_another_uid_is_kept_out_by_the_mode_then_by_its_credentials() {
    if current_uid() != 0 {
        eprintln!("not root: cannot become another user; the rule itself is unit-tested");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_task, guard) = served(tmp.path(), "priv", None).await;
    let socket = guard.socket_path().to_path_buf();
    // First lock: the 0700 directory and 0600 socket.
    let s = socket.clone();
    let r = tokio::task::spawn_blocking(move || exchange_as(NOBODY, NOBODY, &s, &hello_line()))
        .await
        .unwrap();
    assert_eq!(r, Err(libc::EACCES));
    // Second lock: with the modes opened up by hand, the credential check refuses.
    for (p, m) in [
        (tmp.path(), 0o711),
        (&tmp.path().join("rt"), 0o711),
        (socket.as_path(), 0o666),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let s = socket.clone();
    let line = tokio::task::spawn_blocking(move || exchange_as(NOBODY, NOBODY, &s, &hello_line()))
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("{\"refused\""), "{line}");
    assert!(line.contains("uid 65534"), "{line}");
}

#[tokio::test]
async fn as_root_a_member_of_the_allowed_group_joins() {
    if current_uid() != 0 {
        eprintln!("not root: cannot become another user; the rule itself is unit-tested");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (_task, guard) = served(tmp.path(), "shared", Some(NOBODY.to_string())).await;
    let s = guard.socket_path().to_path_buf();
    let line = tokio::task::spawn_blocking(move || exchange_as(NOBODY, NOBODY, &s, &hello_line()))
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("{\"welcome\""), "{line}");
    // Someone outside the group is refused by the socket's mode.
    let s = guard.socket_path().to_path_buf();
    let r =
        tokio::task::spawn_blocking(move || exchange_as(NOBODY - 1, NOBODY - 1, &s, &hello_line()))
            .await
            .unwrap();
    assert_eq!(r, Err(libc::EACCES));
}
