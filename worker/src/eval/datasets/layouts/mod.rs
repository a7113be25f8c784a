//! One reader per benchmark layout. Each `read` lists the dataset's folders into the
//! dataset's collector and returns the hint that error messages give about
//! what `path` must be.

pub mod casia;
pub mod columbia;
pub mod dso1;
pub mod generic;
pub mod in_the_wild;
pub mod korus;
