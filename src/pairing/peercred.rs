//! Who is on the other end of a socket, and whether they may join.
//!
//! The socket's file mode already keeps strangers out; the peer-credential check is the second
//! lock and the one that gives a clear `refused` line. The kernel reports the peer's uid and
//! primary gid (SO_PEERCRED, via tokio's `peer_cred`). Group membership is decided on the peer
//! user's group list from the group database (`getgrouplist` for the uid's user, primary gid
//! included) — not on the peer process's live supplementary groups, which SO_PEERCRED does not
//! carry. A user added to the group after logging in is therefore allowed at once.

use std::ffi::{CStr, CString};

use super::PairingError;

/// Why a peer was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

/// The peer may join if it is the session's owner, or a member of the allowed group.
pub fn authorize(
    peer_uid: u32,
    peer_gid: u32,
    owner_uid: u32,
    allowed_gid: Option<u32>,
) -> Result<(), NotAllowed> {
    authorize_groups(peer_uid, &[peer_gid], owner_uid, allowed_gid)
}

/// As `authorize`, with every group the peer belongs to (primary gid included).
pub fn authorize_groups(
    peer_uid: u32,
    peer_groups: &[u32],
    owner_uid: u32,
    allowed_gid: Option<u32>,
) -> Result<(), NotAllowed> {
    if peer_uid == owner_uid {
        return Ok(());
    }
    match allowed_gid {
        Some(g) if peer_groups.contains(&g) => Ok(()),
        Some(g) => Err(NotAllowed(format!(
            "uid {peer_uid} is neither the session's owner (uid {owner_uid}) nor in its allowed \
             group (gid {g})"
        ))),
        None => Err(NotAllowed(format!(
            "uid {peer_uid} is not the session's owner (uid {owner_uid}); the session allows no \
             group (start it with --allow-group)"
        ))),
    }
}

/// The groups a user belongs to per the group database, `primary` included.
pub fn groups_of(uid: u32, primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    if let Some(name) = user_name(uid) {
        groups.extend(group_list(&name, primary));
    }
    groups.sort_unstable();
    groups.dedup();
    groups
}

#[cfg(target_os = "linux")]
fn group_list(user: &str, primary: u32) -> Vec<u32> {
    let Ok(cuser) = CString::new(user) else {
        return Vec::new();
    };
    let mut n: libc::c_int = 32;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; n.max(1) as usize];
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `count` entries; `cuser` is NUL-terminated and lives
        // across the call.
        let rc =
            unsafe { libc::getgrouplist(cuser.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        // -1: too small; `count` now says how many there are.
        if count <= n || count > 65536 {
            return Vec::new();
        }
        n = count;
    }
}

#[cfg(not(target_os = "linux"))]
fn group_list(_user: &str, _primary: u32) -> Vec<u32> {
    Vec::new()
}

/// Grow a buffer for the `_r` lookups until it fits (ERANGE), up to a sane bound.
fn with_buffer<T>(
    mut call: impl FnMut(&mut [libc::c_char]) -> Result<T, libc::c_int>,
) -> Option<T> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        match call(&mut buf) {
            Ok(v) => return Some(v),
            Err(libc::ERANGE) if buf.len() < (1 << 20) => {
                let len = buf.len() * 2;
                buf.resize(len, 0);
            }
            Err(_) => return None,
        }
    }
}

/// A group's gid by name (a number is taken as a gid as it is).
pub fn group_gid(name: &str) -> Result<u32, PairingError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let missing = || PairingError::NoSuchGroup(name.to_string());
    let cname = CString::new(name).map_err(|_| missing())?;
    with_buffer(|buf| {
        // SAFETY: all-zero is a valid `group` (null pointers, zero gid); it is only read after
        // getgrnam_r filled it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf.len()` is its true length.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match (rc, result.is_null()) {
            (0, false) => Ok(Some(grp.gr_gid)),
            (0, true) => Ok(None),
            (e, _) => Err(e),
        }
    })
    .flatten()
    .ok_or_else(missing)
}

/// A user's login name, if the password database knows the uid.
pub fn user_name(uid: u32) -> Option<String> {
    with_buffer(|buf| {
        // SAFETY: as for `group`: a zeroed `passwd` is only read after getpwuid_r filled it.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf.len()` is its true length.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        match (rc, result.is_null()) {
            (0, false) if !pw.pw_name.is_null() => {
                // SAFETY: getpwuid_r points pw_name into `buf`, NUL-terminated, alive here.
                let name = unsafe { CStr::from_ptr(pw.pw_name) };
                Ok(Some(name.to_string_lossy().into_owned()))
            }
            (0, _) => Ok(None),
            (e, _) => Err(e),
        }
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_allowed_and_a_stranger_is_refused() {
        assert!(authorize(1000, 1000, 1000, None).is_ok());
        let e = authorize(1001, 1001, 1000, None).unwrap_err();
        assert!(
            e.0.contains("uid 1001") && e.0.contains("--allow-group"),
            "{e}"
        );
        // A stranger sharing the owner's primary group gets nothing without --allow-group.
        assert!(authorize(1001, 1000, 1000, None).is_err());
    }

    #[test]
    fn members_of_the_allowed_group_are_allowed() {
        assert!(authorize(1001, 50, 1000, Some(50)).is_ok());
        let e = authorize(1001, 51, 1000, Some(50)).unwrap_err();
        assert!(e.0.contains("gid 50"), "{e}");
        assert!(authorize_groups(1001, &[51, 50], 1000, Some(50)).is_ok());
        assert!(authorize_groups(1001, &[], 1000, Some(50)).is_err());
    }

    #[test]
    fn the_current_users_groups_include_the_primary_gid() {
        // SAFETY: getgid has no preconditions.
        let gid = unsafe { libc::getgid() };
        let uid = super::super::runtime_dir::current_uid();
        assert!(groups_of(uid, gid).contains(&gid));
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(group_gid("4242").unwrap(), 4242);
        // gid 0 is named "root" on every Linux system.
        assert_eq!(group_gid("root").unwrap(), 0);
        assert!(matches!(
            group_gid("no-such-group-flightdeck"),
            Err(PairingError::NoSuchGroup(_))
        ));
    }
}
