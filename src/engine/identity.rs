//! Who an operator is. The kernel says so — the peer uid of a pairing connection
//! (SO_PEERCRED), or this process's uid for an in-process cockpit — never the client: the
//! label a client chooses (`join --as carol`) is only a display name. The journal, the report
//! and the two-person rule use the identity.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    /// The uid's login name per the password database, else `uid N`.
    pub user: String,
}

impl Identity {
    /// The identity of `uid`, named from the password database.
    pub fn of_uid(uid: u32) -> Identity {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        Identity { uid, user }
    }

    /// Whoever runs this process.
    pub fn current() -> Identity {
        Identity::of_uid(nix::unistd::getuid().as_raw())
    }

    /// How the operator shows in the session: the label when it is the user's own name (or
    /// `user@somewhere`), else the label followed by the real user, so nobody can pass for
    /// someone else even on screen.
    pub fn display(&self, label: &str) -> String {
        let label = label.trim();
        if label.is_empty() || label == self.user {
            return self.user.clone();
        }
        if label
            .strip_prefix(self.user.as_str())
            .is_some_and(|rest| rest.starts_with('@'))
        {
            return label.to_string();
        }
        format!("{label} ({})", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_never_hides_the_real_user() {
        let alice = Identity {
            uid: 1000,
            user: "alice".into(),
        };
        assert_eq!(alice.display(""), "alice");
        assert_eq!(alice.display("alice"), "alice");
        assert_eq!(alice.display("alice@laptop"), "alice@laptop");
        assert_eq!(alice.display("carol"), "carol (alice)");
        assert_eq!(alice.display("bob@laptop"), "bob@laptop (alice)");
        assert_eq!(alice.display("aliceX"), "aliceX (alice)");
    }

    #[test]
    fn root_is_named_from_the_password_database() {
        assert_eq!(Identity::of_uid(0).user, "root");
        assert_eq!(Identity::of_uid(4_000_000_000).user, "uid 4000000000");
    }
}
