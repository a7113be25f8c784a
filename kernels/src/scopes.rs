//! Scopes of callbacks from C++: the C++ side (a synchronised batch norm, a gradient hook)
//! holds only a number, and the Rust callback looks up that scope's entry (the handler
//! armed for the moment, an error kept for the caller) by it. Used by `sync_bn` and
//! `grad_hooks`, each with a static `Scopes` of its own entry type.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Numbered entries of type `E`.
pub(crate) struct Scopes<E> {
    next: AtomicU64,
    entries: Mutex<Option<HashMap<u64, E>>>,
}

impl<E> Scopes<E> {
    /// No scopes yet (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Scopes {
            next: AtomicU64::new(1),
            entries: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, E>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new scope holding `entry`; its number.
    pub(crate) fn open(&self, entry: E) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .get_or_insert_with(HashMap::new)
            .insert(id, entry);
        id
    }

    /// Removes scope `id`.
    pub(crate) fn close(&self, id: u64) {
        if let Some(m) = self.lock().as_mut() {
            m.remove(&id);
        }
    }

    /// `f` of scope `id`'s entry, `None` when there is no such scope. The lock is held
    /// while `f` runs: `f` only reads or writes the entry.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut E) -> R) -> Option<R> {
        self.lock().as_mut().and_then(|m| m.get_mut(&id)).map(f)
    }
}
