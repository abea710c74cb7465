//! One module per subcommand; `cli` parses, these do the work.

pub mod check;
pub mod cockpit;
pub mod import;
pub mod join;
pub mod journals;
pub mod plan;
pub mod replay;
pub mod run;
