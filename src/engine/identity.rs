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
    /// `user@host`, a host name's characters only), else the label followed by the real user,
    /// so nobody can pass for someone else even on screen: bob's `bob@x (alice)` would read as
    /// the label `bob@x` of alice, so it shows as `bob@x (alice) (bob)` — and a joining
    /// client's label with a parenthesis is refused before that (`check_label`).
    pub fn display(&self, label: &str) -> String {
        let label = label.trim();
        if label.is_empty() || label == self.user {
            return self.user.clone();
        }
        let own_host = label
            .strip_prefix(self.user.as_str())
            .and_then(|rest| rest.strip_prefix('@'))
            .is_some_and(|host| {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            });
        if own_host {
            return label.to_string();
        }
        format!("{label} ({})", self.user)
    }
}

/// Refuse a label that could pass for the `label (user)` form, or paint the screen: it shows
/// in every operator's cockpit and is recorded with each join.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.contains(['(', ')']) {
        return Err(format!(
            "the label {label:?} has a parenthesis: an operator shows as `label (user)`, so a \
             label may not contain `(` or `)`"
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(format!(
            "the label {label:?} has a control character; use printable text"
        ));
    }
    Ok(())
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
        // Before, anything after `alice@` was shown as typed, so alice could pass for bob.
        assert_eq!(alice.display("alice@x (bob)"), "alice@x (bob) (alice)");
        assert_eq!(alice.display("alice@x bob"), "alice@x bob (alice)");
        assert_eq!(alice.display("alice@"), "alice@ (alice)");
        assert_eq!(
            alice.display("alice@db-1.example_2"),
            "alice@db-1.example_2"
        );
    }

    #[test]
    fn labels_that_could_pass_for_the_user_form_are_refused() {
        assert!(check_label("alice@laptop").is_ok());
        assert!(check_label("Carol Smith").is_ok());
        let e = check_label("bob@x (alice)").unwrap_err();
        assert!(e.contains("parenthesis"), "{e}");
        assert!(check_label("a)").is_err());
        assert!(check_label("a\u{1b}[2J").unwrap_err().contains("control"));
    }

    #[test]
    fn root_is_named_from_the_password_database() {
        assert_eq!(Identity::of_uid(0).user, "root");
        assert_eq!(Identity::of_uid(4_000_000_000).user, "uid 4000000000");
    }
}
