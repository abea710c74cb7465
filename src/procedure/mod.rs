//! Procedures: the file format, its validation and its expansion into a plan.

pub mod catalog;
pub mod diag;
pub mod load;
pub mod model;
pub mod spans;
pub mod strings;
pub mod template;
pub mod validate;
pub mod version;
pub mod when;
