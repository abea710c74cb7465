//! Where session sockets live, and the checks that keep them private.
//!
//! A private session lives in `$XDG_RUNTIME_DIR/flightdeck` (else `/tmp/flightdeck-<uid>`), a
//! directory of mode 0700 owned by the operator; its socket is 0600. A session shared with a
//! group (`--allow-group`) cannot live there — `$XDG_RUNTIME_DIR` itself is 0700 — so it goes to
//! `/tmp/flightdeck-<uid>-g<gid>`: owned by the operator, group `gid`, mode 0750, socket 0660.
//! A directory owned by someone else, or more open than that, is refused rather than repaired:
//! someone may have planted it. `FLIGHTDECK_RUNTIME_DIR` overrides both locations (tests).

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PairingError;

/// Overrides the runtime directory (private and shared sessions alike).
pub const ENV_OVERRIDE: &str = "FLIGHTDECK_RUNTIME_DIR";
/// Prefix of shared directories under /tmp, for discovery by joiners.
pub const SHARED_PREFIX: &str = "flightdeck-";

/// Who may reach the sessions in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the owner.
    Private,
    /// The owner and members of this group.
    Group(u32),
}

impl Access {
    pub fn dir_mode(self) -> u32 {
        match self {
            Access::Private => 0o700,
            Access::Group(_) => 0o750,
        }
    }

    pub fn socket_mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Group(_) => 0o660,
        }
    }

    pub fn info_mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Group(_) => 0o640,
        }
    }
}

/// This process's real uid.
pub fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// The directory sessions with this access live in (not created, not checked).
pub fn dir_for(access: Access) -> PathBuf {
    if let Some(d) = std::env::var_os(ENV_OVERRIDE).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let uid = current_uid();
    match access {
        // A stale variable (after `su`, or once logind removed the directory) is ignored.
        Access::Private => match std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute() && d.is_dir())
        {
            Some(xdg) => xdg.join("flightdeck"),
            None => fallback_dir(),
        },
        Access::Group(gid) => std::env::temp_dir().join(format!("{SHARED_PREFIX}{uid}-g{gid}")),
    }
}

/// Where a private session goes when `$XDG_RUNTIME_DIR` is not there (or was removed at
/// logout): `/tmp/flightdeck-<uid>`, or the override.
pub fn fallback_dir() -> PathBuf {
    match std::env::var_os(ENV_OVERRIDE).filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("{SHARED_PREFIX}{}", current_uid())),
    }
}

/// Create `dir` if missing, then check it is fit for `access`; returns it.
pub fn ensure(dir: &Path, access: Access) -> Result<PathBuf, PairingError> {
    match DirBuilder::new().mode(access.dir_mode()).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(PairingError::io(dir)(e)),
    }
    check(dir, access, current_uid())?;
    if let Access::Group(gid) = access {
        // A fresh directory gets our primary group and the umask's mode: set both.
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(PairingError::io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(access.dir_mode()))
            .map_err(PairingError::io(dir))?;
    }
    Ok(dir.to_path_buf())
}

/// Refuse a directory that is a symlink, not ours, or more open than `access` needs.
pub fn check(dir: &Path, access: Access, uid: u32) -> Result<(), PairingError> {
    let unsafe_dir = |reason: String| PairingError::UnsafeDir {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::symlink_metadata(dir).map_err(PairingError::io(dir))?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir(
            "not a directory (a symlink?); refusing to use it".into(),
        ));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "owned by uid {}, not by you (uid {uid}); refusing to use it",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    let extra = mode & !access.dir_mode();
    // For a shared directory, group bits belong to whichever group the owner set; `ensure`
    // sets the right one. A private directory must not be reachable by anyone else.
    if extra != 0 {
        return Err(unsafe_dir(format!(
            "mode {mode:04o} is wider than {:04o}; refusing to use it (fix with chmod {:o})",
            access.dir_mode(),
            access.dir_mode()
        )));
    }
    Ok(())
}

/// Session names become file names: keep them short and plain.
pub fn validate_name(name: &str) -> Result<(), PairingError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PairingError::BadName(name.to_string()))
    }
}

pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

pub fn info_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Shared session directories under the temp dir that this user can read (other operators'
/// `--allow-group` sessions). Checked loosely: a session file there is listed only when owned
/// by the uid it names, `join` picks none of another user's without a name, and it checks the
/// socket's server against the file by its peer credentials (`client::connect_session`).
pub fn shared_dirs() -> Vec<PathBuf> {
    if std::env::var_os(ENV_OVERRIDE).is_some_and(|d| !d.is_empty()) {
        return Vec::new();
    }
    let tmp = std::env::temp_dir();
    let Ok(entries) = fs::read_dir(&tmp) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(SHARED_PREFIX) && name.contains("-g")
        })
        .filter(|e| {
            fs::symlink_metadata(e.path())
                .is_ok_and(|m| m.file_type().is_dir() && m.permissions().mode() & 0o002 == 0)
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_private_dir_is_0700_and_accepted() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("rt");
        ensure(&d, Access::Private).unwrap();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Idempotent.
        ensure(&d, Access::Private).unwrap();
    }

    #[test]
    fn wider_dirs_and_symlinks_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("rt");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let e = ensure(&d, Access::Private).unwrap_err();
        assert!(e.to_string().contains("wider"), "{e}");
        let link = t.path().join("link");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = ensure(&link, Access::Private).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn a_dir_owned_by_another_uid_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = check(t.path(), Access::Private, current_uid().wrapping_add(1)).unwrap_err();
        assert!(e.to_string().contains("not by you"), "{e}");
    }

    #[test]
    fn names_are_plain() {
        for good in ["blue-otter-42", "a", "x_y"] {
            validate_name(good).unwrap();
        }
        for bad in ["", "../etc", "a/b", "-x", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
