//! `coordinator` command line.

fn main() {}
