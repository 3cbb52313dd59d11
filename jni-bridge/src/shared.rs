//! One client per endpoint per JVM (per copy of this library), shared by every connection
//! handle Java opens to that endpoint.
//!
//! The blocking facade owns a tokio runtime and an HTTP/2 connection; a Flink TaskManager
//! opens many connections (a source reader, a sink writer and a lookup function per slot).
//! Sharing one facade per endpoint keeps that at one runtime (two `strom-client-N` threads)
//! and one multiplexed HTTP/2 connection, however many handles Java holds. The facade is
//! dropped, and its runtime stopped, when the last handle to the endpoint is closed.

use std::collections::HashMap;
use std::sync::Mutex;

/// Reference-counted clients by endpoint.
pub struct SharedClients<C> {
    entries: Mutex<HashMap<String, (C, usize)>>,
}

impl<C: Clone> SharedClients<C> {
    pub fn new() -> Self {
        SharedClients { entries: Mutex::new(HashMap::new()) }
    }

    /// The client of `endpoint`, connecting with `connect` if there is none yet. Every
    /// successful call must be matched by one [`SharedClients::release`].
    ///
    /// Connecting happens under the lock: connects are rare, and two threads racing to the
    /// same endpoint must end up with one client, not two.
    pub fn acquire<E>(&self, endpoint: &str, connect: impl FnOnce() -> Result<C, E>) -> Result<C, E> {
        let mut entries = self.lock();
        if let Some((client, users)) = entries.get_mut(endpoint) {
            *users += 1;
            return Ok(client.clone());
        }
        let client = connect()?;
        entries.insert(endpoint.to_string(), (client.clone(), 1));
        Ok(client)
    }

    /// One user of `endpoint` is gone; the last one drops the shared client (returned, so
    /// the caller decides on which thread the runtime shuts down: never under the lock).
    pub fn release(&self, endpoint: &str) -> Option<C> {
        let mut entries = self.lock();
        let (_, users) = entries.get_mut(endpoint)?;
        *users -= 1;
        if *users == 0 {
            return entries.remove(endpoint).map(|(client, _)| client);
        }
        None
    }

    /// Endpoints with a live client.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (C, usize)>> {
        // Each critical section is a couple of map operations that cannot panic halfway.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: Clone> Default for SharedClients<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn given_two_acquires_of_one_endpoint_when_released_should_connect_once_and_drop_after_the_last() {
        let shared = SharedClients::new();
        let connects = AtomicUsize::new(0);
        let connect = || -> Result<Arc<&str>, ()> {
            connects.fetch_add(1, Ordering::Relaxed);
            Ok(Arc::new("client"))
        };
        let first = shared.acquire("grpc://a:1", connect).unwrap();
        let second = shared.acquire("grpc://a:1", connect).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one client per endpoint");
        assert_eq!(connects.load(Ordering::Relaxed), 1);
        assert!(shared.release("grpc://a:1").is_none(), "still used by the second");
        assert_eq!(shared.len(), 1);
        assert!(shared.release("grpc://a:1").is_some(), "the last user drops it");
        assert!(shared.is_empty());
        assert!(shared.release("grpc://a:1").is_none(), "an extra release is harmless");
    }

    #[test]
    fn given_failed_connect_when_acquired_should_store_nothing() {
        let shared: SharedClients<u8> = SharedClients::new();
        assert_eq!(shared.acquire("grpc://down:1", || Err("refused")), Err("refused"));
        assert!(shared.is_empty());
        assert_eq!(shared.acquire::<()>("grpc://down:1", || Ok(7)), Ok(7), "a later connect may succeed");
    }

    #[test]
    fn given_other_endpoints_when_acquired_should_get_their_own_clients() {
        let shared = SharedClients::new();
        assert_eq!(shared.acquire::<()>("grpc://a:1", || Ok(1)), Ok(1));
        assert_eq!(shared.acquire::<()>("grpc://b:2", || Ok(2)), Ok(2));
        assert_eq!(shared.len(), 2);
    }
}
