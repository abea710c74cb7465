//! One module per subcommand; `cli` parses, these do the work.

pub mod check;
pub mod cockpit;
pub mod import;
pub mod join;
pub mod journals;
pub mod plan;
pub mod replay;
pub mod run;

/// The operator's name: the OS user (from the password database; `$USER` can lie or be unset).
/// Here, not in one subcommand, so that `run`, `join` and `cockpit` (which `run` hands its
/// session to) all read it without importing each other in a circle.
pub fn operator_name() -> String {
    crate::pairing::peercred::user_name(crate::pairing::runtime_dir::current_uid())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into())
}
