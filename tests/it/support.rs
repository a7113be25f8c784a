//! Helpers shared by the integration tests: where the repository, the shared camera
//! photos and the project's Python environment are.

#![allow(dead_code)]

pub use testkit::{cameras_dir, repo_root, venv_python};

/// Holds libtorch's process-wide random generator for the caller: tests that build models
/// (initialisation draws from it) or seed it take this first, so that a test relying on a
/// seeded initialisation is not disturbed by another test thread drawing at the same time.
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fields of a CSV line (double-quoted fields may hold commas and doubled quotes).
pub fn csv_line(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}
