//! Procedures: the file format, its validation and its expansion into a plan.
//!
//! `load` reads a file (toml's one syntax/type error, else every semantic problem from
//! `validate`, each positioned through `spans`). Templates (`template`), `when` expressions
//! (`when`) and versions (`version`, `catalog`) are what `crate::plan::expand` uses to unroll it.
//! A procedure declares a default in `[vars]` for every variable it uses that is not built in, so
//! it checks on its own; a target's `vars` override those defaults.

pub mod catalog;
pub mod diag;
pub mod expect;
pub mod load;
pub mod model;
pub mod secret_argv;
pub mod shell;
pub mod spans;
pub mod strings;
pub mod template;
pub mod timing;
pub mod validate;
pub mod version;
pub mod when;
pub mod wrappers;
