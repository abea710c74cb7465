//! One module per subcommand; `cli` parses, these do the work.

pub mod check;
pub mod cockpit;
pub mod plan;
pub mod run;
