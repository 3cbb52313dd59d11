//! Opaque `jlong` handles for the Rust objects Java holds: connections, writers, scanners and
//! lookupers.
//!
//! Java never sees a pointer. A handle is `kind << 56 | serial`, where `serial` counts up from
//! 1 and is never reused, so:
//! * a handle used after `close()` names nothing and fails with `IllegalStateException`
//!   instead of reading freed memory (a pointer handle would be a use-after-free);
//! * a handle of one kind passed where another is expected (a writer handle to a scanner
//!   method) is caught and reported by kind;
//! * `0` is never a valid handle, which is what Java keeps after `close()`.
//!
//! Objects live in the registry as `Arc`s. A call clones the `Arc` and releases the registry
//! lock before doing anything slow, so one slow call never blocks the others, and a `close()`
//! racing with a call on another thread only removes the entry: the running call keeps its
//! `Arc` and finishes on a live object (which then reports `Closed` on its own).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a handle refers to; the top byte of the `jlong`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleKind {
    Connection = 1,
    Writer = 2,
    Scanner = 3,
    Lookuper = 4,
}

impl HandleKind {
    const ALL: [HandleKind; 4] = [HandleKind::Connection, HandleKind::Writer, HandleKind::Scanner, HandleKind::Lookuper];

    fn from_tag(tag: u64) -> Option<HandleKind> {
        Self::ALL.into_iter().find(|kind| *kind as u64 == tag)
    }

    pub fn name(self) -> &'static str {
        match self {
            HandleKind::Connection => "connection",
            HandleKind::Writer => "writer",
            HandleKind::Scanner => "scanner",
            HandleKind::Lookuper => "lookuper",
        }
    }
}

const KIND_SHIFT: u32 = 56;
const SERIAL_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// Why a handle could not be resolved; becomes `IllegalStateException` in Java.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The handle was valid once and has been closed (or was never handed out).
    Closed { kind: HandleKind, handle: i64 },
    /// The handle is of another kind than the method expects.
    WrongKind { expected: HandleKind, handle: i64 },
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::Closed { kind, handle } => {
                write!(f, "the {} (handle {handle:#x}) is closed", kind.name())
            }
            HandleError::WrongKind { expected, handle } => {
                let actual = HandleKind::from_tag((*handle as u64) >> KIND_SHIFT).map_or("not a handle", HandleKind::name);
                write!(f, "handle {handle:#x} is a {actual}, not a {}", expected.name())
            }
        }
    }
}

impl std::error::Error for HandleError {}

/// The objects of one kind that Java holds handles to.
pub struct Registry<T> {
    kind: HandleKind,
    next_serial: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<T>>>,
}

impl<T> Registry<T> {
    pub fn new(kind: HandleKind) -> Self {
        Registry { kind, next_serial: AtomicU64::new(1), entries: Mutex::new(HashMap::new()) }
    }

    /// Stores `value` and returns the handle Java keeps for it.
    pub fn insert(&self, value: T) -> i64 {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        assert!(serial <= SERIAL_MASK, "handle serials exhausted");
        self.lock().insert(serial, Arc::new(value));
        ((self.kind as u64) << KIND_SHIFT | serial) as i64
    }

    /// The object behind `handle`, kept alive for the caller even if another thread closes
    /// the handle meanwhile.
    pub fn get(&self, handle: i64) -> Result<Arc<T>, HandleError> {
        let serial = self.serial_of(handle)?;
        self.lock().get(&serial).cloned().ok_or(HandleError::Closed { kind: self.kind, handle })
    }

    /// Removes the object behind `handle` and hands it to the caller to close; `None` when
    /// it is already gone, which makes `close()` idempotent. A handle of the wrong kind is
    /// still an error: closing the wrong object by mistake must not pass silently.
    pub fn remove(&self, handle: i64) -> Result<Option<Arc<T>>, HandleError> {
        let serial = self.serial_of(handle)?;
        Ok(self.lock().remove(&serial))
    }

    /// How many objects are open (for tests and leak checks).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn serial_of(&self, handle: i64) -> Result<u64, HandleError> {
        let raw = handle as u64;
        if raw >> KIND_SHIFT != self.kind as u64 {
            // 0 (a handle Java zeroed on close) lands here too: it is of no kind.
            if raw == 0 {
                return Err(HandleError::Closed { kind: self.kind, handle });
            }
            return Err(HandleError::WrongKind { expected: self.kind, handle });
        }
        Ok(raw & SERIAL_MASK)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<T>>> {
        // A panic while holding this lock cannot leave the map half-updated (every critical
        // section is one HashMap call), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_inserted_value_when_resolved_should_return_it_until_removed() {
        let registry = Registry::new(HandleKind::Writer);
        let handle = registry.insert("w1".to_string());
        assert_eq!(*registry.get(handle).unwrap(), "w1");
        assert_eq!(registry.len(), 1);
        let removed = registry.remove(handle).unwrap().expect("present");
        assert_eq!(*removed, "w1");
        assert!(registry.is_empty());
        assert_eq!(registry.get(handle).unwrap_err(), HandleError::Closed { kind: HandleKind::Writer, handle });
        assert!(registry.remove(handle).unwrap().is_none(), "closing twice is a no-op");
    }

    #[test]
    fn given_two_inserts_when_compared_should_never_reuse_a_handle() {
        let registry = Registry::new(HandleKind::Scanner);
        let first = registry.insert(1);
        registry.remove(first).unwrap();
        let second = registry.insert(2);
        assert_ne!(first, second, "a closed handle must never name a newer object");
        assert!(registry.get(first).is_err());
        assert_eq!(*registry.get(second).unwrap(), 2);
    }

    #[test]
    fn given_handle_of_other_kind_when_resolved_should_name_both_kinds() {
        let writers = Registry::new(HandleKind::Writer);
        let scanners: Registry<u8> = Registry::new(HandleKind::Scanner);
        let writer = writers.insert(());
        let err = scanners.get(writer).unwrap_err();
        assert_eq!(err, HandleError::WrongKind { expected: HandleKind::Scanner, handle: writer });
        assert!(err.to_string().contains("is a writer, not a scanner"), "{err}");
        assert!(scanners.remove(writer).is_err(), "closing through the wrong kind is refused");
        assert!(writers.get(writer).is_ok(), "and leaves the writer open");
    }

    #[test]
    fn given_zero_or_garbage_handle_when_resolved_should_fail_without_panicking() {
        let registry: Registry<u8> = Registry::new(HandleKind::Connection);
        assert!(matches!(registry.get(0), Err(HandleError::Closed { .. })));
        assert!(matches!(registry.get(-1), Err(HandleError::WrongKind { .. })));
        let garbage = ((HandleKind::Connection as u64) << KIND_SHIFT | 12345) as i64;
        assert!(matches!(registry.get(garbage), Err(HandleError::Closed { .. })));
        assert!(registry.get(-1).unwrap_err().to_string().contains("not a handle"));
    }

    #[test]
    fn given_value_in_use_when_closed_concurrently_should_stay_alive_for_the_user() {
        let registry = Registry::new(HandleKind::Lookuper);
        let handle = registry.insert(vec![1, 2, 3]);
        let in_use = registry.get(handle).unwrap();
        let closed = registry.remove(handle).unwrap().unwrap();
        drop(closed);
        assert_eq!(*in_use, vec![1, 2, 3], "the running call still sees a live object");
        assert_eq!(Arc::strong_count(&in_use), 1);
    }

    #[test]
    fn given_many_threads_when_inserting_should_hand_out_distinct_handles() {
        let registry = Arc::new(Registry::new(HandleKind::Writer));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let registry = registry.clone();
                std::thread::spawn(move || (0..250).map(|i| registry.insert(i)).collect::<Vec<_>>())
            })
            .collect();
        let mut handles: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        handles.sort_unstable();
        handles.dedup();
        assert_eq!(handles.len(), 1000);
        assert_eq!(registry.len(), 1000);
    }
}
