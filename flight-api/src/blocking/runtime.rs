//! The tokio runtime the blocking facade owns, and the one place that decides how a blocking
//! call waits for a future, depending on the calling thread:
//!
//! * a plain thread (no runtime): `Handle::block_on`, the future runs on the caller's thread
//!   with the facade's runtime driving IO and timers; the fewest thread hops.
//! * a worker of the facade's own runtime (e.g. inside an `on_complete` callback):
//!   `block_in_place` hands the worker's other tasks to another thread first, so a callback
//!   that makes a blocking call cannot starve the very tasks it waits for.
//! * any other runtime's thread: `block_on` would panic there, so the future runs as a task
//!   of the facade's runtime and the caller waits on a channel. This blocks that thread (a
//!   worker of the caller's runtime) until the call is done, which is the documented price.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::client::panic_message;
use crate::error::{Error, Result};

/// How long dropping the facade (on a plain thread) waits for its worker threads to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// Set on the worker threads of every facade runtime.
    static ON_CLIENT_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// The facade's multi-thread runtime. Shared (in an `Arc`) by the client, its clones and every
/// handle it opened, so it stops only when the last of them is dropped. Tasks running on it
/// never hold that `Arc`: the runtime is never asked to shut itself down from inside.
pub(crate) struct ClientRuntime {
    /// `None` only while being dropped.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for ClientRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRuntime").finish_non_exhaustive()
    }
}

impl ClientRuntime {
    /// Starts `worker_threads` (at least 1) threads named `strom-client-N`.
    pub(crate) fn start(worker_threads: usize) -> Result<ClientRuntime> {
        static THREADS: AtomicUsize = AtomicUsize::new(0);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name_fn(|| format!("strom-client-{}", THREADS.fetch_add(1, Ordering::Relaxed)))
            .on_thread_start(|| ON_CLIENT_RUNTIME.with(|flag| flag.set(true)))
            .enable_all()
            .build()
            .map_err(|e| Error::TaskFailed(format!("cannot start the client's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(ClientRuntime { runtime: Some(runtime), handle })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to completion on this runtime and returns its output, from any thread
    /// (see the module documentation). A panic inside becomes [`Error::TaskFailed`] instead
    /// of unwinding into the caller, which may be a JNI frame.
    pub(crate) fn call<F, T>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let guarded = AssertUnwindSafe(future).catch_unwind();
        let outcome = match caller() {
            Caller::PlainThread => self.handle.block_on(guarded),
            Caller::ClientWorker => tokio::task::block_in_place(|| self.handle.block_on(guarded)),
            Caller::OtherRuntime => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                self.handle.spawn(async move {
                    let _ = sender.send(guarded.await);
                });
                match receiver.recv() {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(Error::Closed("the client's runtime shut down before the call finished".into())),
                }
            }
        };
        outcome.unwrap_or_else(|panic| Err(Error::TaskFailed(panic_message(panic))))
    }

    /// Waits for a future that only waits on channels filled by this runtime's tasks (a
    /// receiver, an ack): it needs no runtime context, so it is polled right on the calling
    /// thread, whatever that thread is.
    pub(crate) fn wait<F: Future>(&self, future: F) -> F::Output {
        // `unconstrained`: inside another runtime's task, tokio's cooperative budget would
        // make a channel poll return Pending forever once exhausted, since this thread never
        // yields back to that scheduler while it blocks.
        let future = tokio::task::unconstrained(future);
        match caller() {
            Caller::ClientWorker => tokio::task::block_in_place(|| futures::executor::block_on(future)),
            Caller::PlainThread | Caller::OtherRuntime => futures::executor::block_on(future),
        }
    }
}

/// What kind of thread a blocking call comes from.
enum Caller {
    PlainThread,
    /// A worker of a facade runtime (always multi-thread, so `block_in_place` is allowed).
    ClientWorker,
    /// A thread inside some other runtime (or a current-thread runtime started on one of our
    /// workers, where `block_in_place` would panic).
    OtherRuntime,
}

fn caller() -> Caller {
    match Handle::try_current() {
        Err(_) => Caller::PlainThread,
        Ok(handle) if ON_CLIENT_RUNTIME.with(Cell::get) && handle.runtime_flavor() == RuntimeFlavor::MultiThread => Caller::ClientWorker,
        Ok(_) => Caller::OtherRuntime,
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        if Handle::try_current().is_ok() {
            // Waiting for the workers is a blocking call, which tokio refuses (panics) inside
            // an async context, e.g. when the last handle is dropped inside a task of another
            // runtime: let the workers stop on their own instead.
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}
