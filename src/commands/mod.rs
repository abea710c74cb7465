//! One module per subcommand: each turns parsed arguments into work and an exit code.

pub mod check;
pub mod plan;
