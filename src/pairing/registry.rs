//! Finding sessions: each server writes `<name>.json` next to its socket; listing reads those,
//! checks each socket still answers, and (for `flightdeck sessions`) asks each live one for its
//! status over a short connection that does not attach.
//!
//! Plain blocking I/O with timeouts, so a listing works with or without a tokio runtime.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::{encode, ClientMsg, ServerMsg, Status, StatusRequest, MAX_SERVER_LINE};
use super::runtime_dir::{self, current_uid, Access};
use super::PairingError;

/// How long a listing waits on one session's status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a server writes next to its socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionFile {
    pub name: String,
    pub procedure: String,
    #[serde(default)]
    pub target: String,
    pub journal: PathBuf,
    /// RFC 3339, UTC.
    pub started: String,
    pub pid: u32,
    pub owner_uid: u32,
    #[serde(default)]
    pub allow_group: Option<String>,
    pub protocol: u32,
    /// The no-argument demo: its lab lives in this server, and a cockpit that joins it may
    /// end it (`q`, then `e`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

/// One session as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub name: String,
    pub procedure: String,
    pub target: String,
    pub journal: PathBuf,
    pub started: String,
    pub pid: u32,
    /// The operator who started it (login name, else the uid).
    pub owner: String,
    /// Their uid: the file's owner, which is also the uid the file names. Who actually serves
    /// the socket is checked when connecting (`client::connect_session`).
    pub owner_uid: u32,
    pub socket: PathBuf,
    /// The socket answers.
    pub alive: bool,
    /// The no-argument demo (see `SessionFile::demo`).
    pub demo: bool,
}

/// Sessions this user can see: their own private ones, then shared ones.
pub fn list() -> Vec<SessionInfo> {
    // A detached server whose runtime dir vanished at logout serves from the fallback.
    let mut dirs = vec![
        runtime_dir::dir_for(Access::Private),
        runtime_dir::fallback_dir(),
    ];
    dirs.extend(runtime_dir::shared_dirs());
    dirs.dedup();
    dirs.iter().flat_map(|d| list_in(d)).collect()
}

/// Sessions in one directory, by name. A dead session of ours whose server process is gone is
/// cleaned up (its files removed) and left out; other dead ones are listed with `alive: false`.
pub fn list_in(dir: &Path) -> Vec<SessionInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<SessionInfo> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_session(dir, &p))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn read_session(dir: &Path, json: &Path) -> Option<SessionInfo> {
    let text = std::fs::read_to_string(json).ok()?;
    let file: SessionFile = serde_json::from_str(&text).ok()?;
    if runtime_dir::validate_name(&file.name).is_err() {
        return None;
    }
    // A session file must belong to whom it names as owner, or anyone who can write to a shared
    // directory could pose as a colleague's session.
    let json_uid = std::fs::symlink_metadata(json).ok()?.uid();
    if json_uid != file.owner_uid {
        return None;
    }
    let socket = runtime_dir::socket_path(dir, &file.name);
    let alive = UnixStream::connect(&socket).is_ok();
    let ours = json_uid == current_uid();
    if !alive && ours && !process_alive(file.pid) {
        let _ = std::fs::remove_file(json);
        let _ = std::fs::remove_file(&socket);
        return None;
    }
    let owner =
        super::peercred::user_name(file.owner_uid).unwrap_or_else(|| file.owner_uid.to_string());
    Some(SessionInfo {
        name: file.name,
        procedure: file.procedure,
        target: file.target,
        journal: file.journal,
        started: file.started,
        pid: file.pid,
        owner,
        owner_uid: file.owner_uid,
        socket,
        alive,
        demo: file.demo,
    })
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // No signal: only whether the process exists (EPERM: it does, another user's).
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Pick the session to join: the named one, else the only live one of this user's own.
pub fn resolve(name: Option<&str>) -> Result<SessionInfo, PairingError> {
    pick(list(), name, current_uid())
}

/// As `resolve`, among `all`, for the user `me`. Without a name only `me`'s own sessions are
/// candidates: anyone who can write a shared directory can make a session appear in a listing,
/// so another user's session is joined only when named (it is listed with its owner so the
/// operator can choose). A name that is both one of ours and another user's means ours.
pub(crate) fn pick(
    all: Vec<SessionInfo>,
    name: Option<&str>,
    me: u32,
) -> Result<SessionInfo, PairingError> {
    let mut live: Vec<SessionInfo> = all.into_iter().filter(|s| s.alive).collect();
    match name {
        Some(n) => {
            live.retain(|s| s.name == n);
            if live.iter().any(|s| s.owner_uid == me) {
                live.retain(|s| s.owner_uid == me);
            }
            match live.len() {
                0 => Err(PairingError::NoSuchSession(n.to_string())),
                1 => Ok(live.remove(0)),
                // The same name in two other owners' directories: say whose.
                _ => Err(PairingError::Ambiguous(
                    live.into_iter()
                        .map(|s| format!("{} (owner {})", s.name, s.owner))
                        .collect(),
                )),
            }
        }
        None => {
            let (mut mine, others): (Vec<SessionInfo>, Vec<SessionInfo>) =
                live.into_iter().partition(|s| s.owner_uid == me);
            match mine.len() {
                1 => Ok(mine.remove(0)),
                0 if others.is_empty() => Err(PairingError::NoSession),
                0 => Err(PairingError::OnlyOthers(
                    others
                        .into_iter()
                        .map(|s| format!("{} (owner {})", s.name, s.owner))
                        .collect(),
                )),
                _ => Err(PairingError::Ambiguous(
                    mine.into_iter().map(|s| s.name).collect(),
                )),
            }
        }
    }
}

/// Ask a session for its status without attaching to it.
pub fn status(socket: &Path) -> Result<Status, PairingError> {
    let io = PairingError::io(socket);
    let mut stream = UnixStream::connect(socket).map_err(PairingError::io(socket))?;
    stream
        .set_read_timeout(Some(STATUS_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(STATUS_TIMEOUT)))
        .and_then(|()| {
            stream.write_all(encode(&ClientMsg::Status(StatusRequest::default())).as_bytes())
        })
        .map_err(io)?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(stream, MAX_SERVER_LINE as u64))
        .read_line(&mut line)
        .map_err(PairingError::io(socket))?;
    match serde_json::from_str::<ServerMsg>(line.trim_end()) {
        Ok(ServerMsg::Status(s)) => Ok(s),
        Ok(ServerMsg::Refused(r)) => Err(PairingError::Refused(r.reason)),
        Ok(other) => Err(PairingError::Protocol(format!(
            "expected a status, got {}",
            super::client::kind(&other)
        ))),
        Err(e) => Err(PairingError::Protocol(format!("unreadable status: {e}"))),
    }
}

/// The `flightdeck sessions` table.
pub fn render_table(rows: &[(SessionInfo, Result<Status, String>)]) -> String {
    let me = current_uid().to_string();
    let me = super::peercred::user_name(current_uid()).unwrap_or(me);
    let mut table = vec![[
        "NAME".to_string(),
        "PROCEDURE".into(),
        "STEP".into(),
        "OPERATORS".into(),
        "STARTED".into(),
        "OWNER".into(),
    ]];
    for (info, status) in rows {
        let (step, operators) = match (info.alive, status) {
            (false, _) => ("dead".to_string(), "-".to_string()),
            (true, Err(e)) => (format!("? ({e})"), "?".into()),
            (true, Ok(s)) => {
                let step = match s.current_step {
                    Some(c) => format!("{c}/{}", s.steps_total),
                    None => format!("{}/{} {}", s.steps_done, s.steps_total, s.mode),
                };
                let ops: Vec<String> = s
                    .operators
                    .iter()
                    .map(|o| {
                        if o.driver {
                            format!("{}*", o.name)
                        } else {
                            o.name.clone()
                        }
                    })
                    .collect();
                let ops = if ops.is_empty() {
                    "none".to_string()
                } else {
                    ops.join(", ")
                };
                (step, ops)
            }
        };
        let owner = if info.owner == me {
            "you".to_string()
        } else {
            info.owner.clone()
        };
        table.push([
            info.name.clone(),
            info.procedure.clone(),
            step,
            operators,
            info.started.clone(),
            owner,
        ]);
    }
    crate::text_table::columns(&table)
}

/// Print every visible session as a table (`*` marks the driver).
pub fn print_sessions() {
    let sessions = list();
    if sessions.is_empty() {
        println!("no sessions are running");
        return;
    }
    let rows: Vec<(SessionInfo, Result<Status, String>)> = sessions
        .into_iter()
        .map(|s| {
            let st = if s.alive {
                status(&s.socket).map_err(|e| e.to_string())
            } else {
                Err("dead".into())
            };
            (s, st)
        })
        .collect();
    print!("{}", render_table(&rows));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::protocol::StatusOperator;

    fn info(name: &str, alive: bool) -> SessionInfo {
        owned(name, alive, ME)
    }

    const ME: u32 = 1000;

    fn owned(name: &str, alive: bool, owner_uid: u32) -> SessionInfo {
        SessionInfo {
            name: name.into(),
            procedure: "rolling-upgrade".into(),
            target: "lab".into(),
            journal: PathBuf::from("/j"),
            started: "2026-01-01T10:00:00Z".into(),
            pid: 1,
            owner: format!("user{owner_uid}"),
            owner_uid,
            socket: PathBuf::from(format!("/x/{name}.sock")),
            alive,
            demo: false,
        }
    }

    #[test]
    fn picking_a_session() {
        let all = vec![info("a", true), info("b", false)];
        assert_eq!(pick(all.clone(), None, ME).unwrap().name, "a");
        assert_eq!(pick(all.clone(), Some("a"), ME).unwrap().name, "a");
        assert!(matches!(
            pick(all.clone(), Some("b"), ME),
            Err(PairingError::NoSuchSession(_))
        ));
        assert!(matches!(
            pick(vec![], None, ME),
            Err(PairingError::NoSession)
        ));
        let e = pick(vec![info("a", true), info("c", true)], None, ME).unwrap_err();
        assert_eq!(
            e.to_string(),
            "several sessions are running; name one: a, c"
        );
    }

    #[test]
    fn another_users_session_is_joined_only_by_name() {
        // The only live session is someone else's (anyone can put a session file in their own
        // shared directory): without a name it is listed, never picked.
        let theirs = owned("bait", true, ME + 1);
        let e = pick(vec![theirs.clone()], None, ME).unwrap_err();
        assert!(matches!(e, PairingError::OnlyOthers(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "no session of yours is running; to join another user's, name it: bait (owner user1001)"
        );
        // Ours next to theirs: ours, without a name.
        let both = vec![theirs.clone(), info("mine", true)];
        assert_eq!(pick(both.clone(), None, ME).unwrap().name, "mine");
        // Named, theirs is joined (pairing between two users).
        assert_eq!(pick(both, Some("bait"), ME).unwrap().owner_uid, ME + 1);
        // The same name in ours and theirs means ours; in two others', it is ambiguous.
        let twins = vec![theirs.clone(), info("bait", true)];
        assert_eq!(pick(twins, Some("bait"), ME).unwrap().owner_uid, ME);
        let e = pick(vec![theirs, owned("bait", true, ME + 2)], Some("bait"), ME).unwrap_err();
        assert!(
            matches!(e, PairingError::Ambiguous(ref n) if n.len() == 2),
            "{e}"
        );
    }

    #[test]
    fn the_table_shows_step_operators_and_dead_sessions() {
        let st = Status {
            session: "a".into(),
            procedure: "rolling-upgrade".into(),
            target: "lab".into(),
            steps_done: 2,
            steps_total: 7,
            current_step: Some(3),
            mode: "forward".into(),
            operators: vec![
                StatusOperator {
                    id: 1,
                    name: "alice".into(),
                    driver: true,
                },
                StatusOperator {
                    id: 2,
                    name: "bob".into(),
                    driver: false,
                },
            ],
        };
        let t = render_table(&[
            (info("blue-otter-1", true), Ok(st)),
            (info("red-fox-2", false), Err("dead".into())),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("3/7") && lines[1].contains("alice*, bob"));
        assert!(lines[2].contains("dead"));
    }

    #[test]
    fn stale_files_of_a_dead_process_are_cleaned_up() {
        let t = tempfile::tempdir().unwrap();
        let file = SessionFile {
            name: "gone".into(),
            procedure: "p".into(),
            target: "t".into(),
            journal: PathBuf::from("/j"),
            started: "2026-01-01T10:00:00Z".into(),
            // Beyond the kernel's pid_max: never a live process.
            pid: 0x7fff_fff0,
            owner_uid: current_uid(),
            allow_group: None,
            protocol: 1,
            demo: false,
        };
        let json = runtime_dir::info_path(t.path(), "gone");
        std::fs::write(&json, serde_json::to_string(&file).unwrap()).unwrap();
        assert!(list_in(t.path()).is_empty());
        assert!(!json.exists());
        // One whose process lives (ours) but whose socket is missing shows as dead.
        let alive_pid = SessionFile {
            name: "stuck".into(),
            pid: std::process::id(),
            ..file
        };
        let json = runtime_dir::info_path(t.path(), "stuck");
        std::fs::write(&json, serde_json::to_string(&alive_pid).unwrap()).unwrap();
        let l = list_in(t.path());
        assert_eq!(l.len(), 1);
        assert!(!l[0].alive);
        // A file claiming someone else as owner, written by us: not listed.
        let forged = SessionFile {
            name: "forged".into(),
            owner_uid: current_uid().wrapping_add(1),
            ..alive_pid
        };
        let json = runtime_dir::info_path(t.path(), "forged");
        std::fs::write(&json, serde_json::to_string(&forged).unwrap()).unwrap();
        assert_eq!(list_in(t.path()).len(), 1);
    }
}
