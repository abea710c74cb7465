//! Who is on the other end of a socket, and whether they may join.
//!
//! The socket's file mode already keeps strangers out; the peer-credential check is the second
//! lock and the one that gives a clear `refused` line. The kernel reports the peer's uid and
//! primary gid (SO_PEERCRED, via tokio's `peer_cred`). Group membership is decided on the peer
//! user's group list from the group database (`getgrouplist` for the uid's user, primary gid
//! included) — not on the peer process's live supplementary groups, which SO_PEERCRED does not
//! carry. A user added to the group after logging in is therefore allowed at once.

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
    use nix::unistd::{getgrouplist, Gid};
    let Ok(cuser) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    getgrouplist(&cuser, Gid::from_raw(primary))
        .map(|gs| gs.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

#[cfg(not(target_os = "linux"))]
fn group_list(_user: &str, _primary: u32) -> Vec<u32> {
    Vec::new()
}

/// A group's gid by name (a number is taken as a gid as it is).
pub fn group_gid(name: &str) -> Result<u32, PairingError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(PairingError::NoSuchGroup(name.to_string())),
    }
}

/// A user's login name, if the password database knows the uid.
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
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
        let gid = nix::unistd::getgid().as_raw();
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
