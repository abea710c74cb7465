//! Procedures: the file format, its validation and its expansion into a plan.

pub mod model;
