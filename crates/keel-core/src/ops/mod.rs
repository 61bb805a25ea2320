//! The operations on a collection, one file each.

mod create;
mod delete;
mod expand;
pub(crate) mod get;
mod list;
mod update;
