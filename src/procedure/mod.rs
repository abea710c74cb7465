//! Procedures: the file format, its validation and its expansion into a plan.

pub mod diag;
pub mod model;
pub mod spans;
pub mod template;
pub mod version;
pub mod when;
