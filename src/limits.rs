//! Process limits flightdeck needs at scale. A session keeps a connection per probed node and
//! per attached operator: 1,000 nodes need more descriptors than the usual soft limit of 1,024,
//! so at start the soft open-files limit is raised to the hard limit (what an unprivileged
//! process may do; `setrlimit(2)`).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// What happened to the open-files limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFiles {
    /// The soft limit already was the hard limit.
    Unchanged(u64),
    Raised {
        from: u64,
        to: u64,
    },
    /// The limit could not be read or raised: why, in a sentence.
    Failed(String),
}

/// Raise the soft open-files limit to the hard limit.
pub fn raise_open_files() -> OpenFiles {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => return OpenFiles::Failed(format!("cannot read the open-files limit: {e}")),
    };
    if soft >= hard {
        return OpenFiles::Unchanged(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => OpenFiles::Raised {
            from: soft,
            to: hard,
        },
        Err(e) => OpenFiles::Failed(format!(
            "cannot raise the open-files limit from {soft} to {hard}: {e}; a large cluster may \
             run out of descriptors (raise it with `ulimit -n` before starting flightdeck)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        match raise_open_files() {
            OpenFiles::Raised { to, .. } | OpenFiles::Unchanged(to) => {
                let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit reads");
                assert_eq!((soft, hard), (to, to));
            }
            OpenFiles::Failed(why) => panic!("{why}"),
        }
    }
}
