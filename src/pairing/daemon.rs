//! The detached session server: the same binary re-executed in its own session (no controlling
//! terminal, stdio to /dev/null), so closing the terminal or losing the SSH connection does not
//! end the upgrade. The caller then joins it like any other operator.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::registry::SessionFile;
use super::runtime_dir::{self, Access};
use super::PairingError;

/// How long a server may take to start serving.
const START_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// Re-execute this binary with `args` (which must include `--name <name>`, and
/// `--allow-group <group>` if the session is shared) as a detached server; return once it
/// serves the session, or with its exit status if it died first.
pub fn spawn_detached(args: Vec<OsString>) -> Result<(), PairingError> {
    let name = flag_value(&args, "--name")
        .ok_or_else(|| PairingError::Spawn("spawn_detached needs `--name <name>`".into()))?;
    let name = name.to_string_lossy().into_owned();
    runtime_dir::validate_name(&name)?;
    let access = match flag_value(&args, "--allow-group") {
        Some(g) => Access::Group(super::peercred::group_gid(&g.to_string_lossy())?),
        None => Access::Private,
    };
    let info = runtime_dir::info_path(&runtime_dir::dir_for(access), &name);
    let exe = std::env::current_exe()
        .map_err(|e| PairingError::Spawn(format!("cannot find this program's path: {e}")))?;
    spawn_program(&exe, &args, &info, START_DEADLINE).map(|_| ())
}

/// The value after `flag` (`--flag value` or `--flag=value`).
fn flag_value(args: &[OsString], flag: &str) -> Option<OsString> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        let s = a.to_string_lossy();
        if let Some(v) = s.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.into());
        }
    }
    None
}

/// Start `program` detached and wait until it wrote `info` (the session file, written once the
/// socket is up) naming its own pid. Returns the child's pid.
pub fn spawn_program(
    program: &Path,
    args: &[OsString],
    info: &Path,
    deadline: Duration,
) -> Result<u32, PairingError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of ours, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| PairingError::Spawn(format!("cannot start {}: {e}", show(program))))?;
    let pid = child.id();
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(PairingError::Spawn(format!(
                    "the session server exited before serving ({status}); see its log"
                )))
            }
            Ok(None) => {}
            Err(e) => return Err(PairingError::Spawn(format!("cannot watch the server: {e}"))),
        }
        if serves(info, pid) {
            // Reap it when it ends, so it does not linger as a zombie of this process.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(pid);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PairingError::Spawn(format!(
                "the session server did not start serving within {}s; stopped it",
                deadline.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn serves(info: &Path, pid: u32) -> bool {
    std::fs::read_to_string(info)
        .ok()
        .and_then(|t| serde_json::from_str::<SessionFile>(&t).ok())
        .is_some_and(|f| f.pid == pid)
}

fn show(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_found_in_both_spellings() {
        let args: Vec<OsString> = [
            "run",
            "p.toml",
            "--name",
            "blue-otter-1",
            "--allow-group=ops",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(flag_value(&args, "--name"), Some("blue-otter-1".into()));
        assert_eq!(flag_value(&args, "--allow-group"), Some("ops".into()));
        assert_eq!(flag_value(&args, "--journal"), None);
    }

    #[test]
    fn a_child_that_exits_early_is_reported_with_its_status() {
        let t = tempfile::tempdir().unwrap();
        let e = spawn_program(
            Path::new("/bin/sh"),
            &["-c".into(), "exit 3".into()],
            &t.path().join("x.json"),
            Duration::from_secs(30),
        )
        .unwrap_err();
        assert!(e.to_string().contains("exit status: 3"), "{e}");
    }

    #[test]
    fn returns_once_the_child_serves_and_the_child_is_detached() {
        let t = tempfile::tempdir().unwrap();
        let info = t.path().join("s.json");
        let script = format!(
            r#"printf '{{"name":"s","procedure":"p","journal":"/j","started":"now","pid":%d,"owner_uid":0,"protocol":1}}' $$ > '{}.tmp' && mv '{0}.tmp' '{0}'; exec sleep 30"#,
            info.display()
        );
        let pid = spawn_program(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &info,
            Duration::from_secs(30),
        )
        .unwrap();
        // Its own session: the session id is its pid.
        let sid = unsafe { libc::getsid(pid as libc::pid_t) };
        assert_eq!(sid, pid as libc::pid_t);
        // SAFETY: `pid` is the child this test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}
