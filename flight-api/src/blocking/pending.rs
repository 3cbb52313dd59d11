//! Results that arrive later: [`AckHandle`] (a written batch becoming durable) and
//! [`LookupHandle`] (the answer to submitted keys). Each can be waited on, polled without
//! blocking, or given a callback, so an embedder can complete its own futures (a Java
//! `CompletableFuture`) without parking a thread per result.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::FutureExt;

use super::runtime::ClientRuntime;
use crate::client::{panic_message, AckFuture, LookupFuture};
use crate::contract::PutAck;
use crate::error::{duplicate_error, Error, Result};

/// A result that is either still coming (`future`) or known (`done`, kept so that polling it
/// again answers the same).
#[derive(Debug)]
struct Pending<F, T> {
    future: Option<F>,
    done: Option<Result<T>>,
    runtime: Arc<ClientRuntime>,
}

impl<F, T> Pending<F, T>
where
    F: Future<Output = Result<T>> + Unpin + Send + 'static,
    T: Clone + Send + 'static,
{
    fn new(future: F, runtime: Arc<ClientRuntime>) -> Self {
        Pending { future: Some(future), done: None, runtime }
    }

    fn wait(mut self) -> Result<T> {
        if let Some(done) = self.done.take() {
            return done;
        }
        let future = self.future.take().expect("a pending result has its future until done");
        self.runtime.wait(future)
    }

    fn try_wait(&mut self) -> Option<Result<T>> {
        if self.done.is_none() {
            let future = self.future.as_mut().expect("a pending result has its future until done");
            // `unconstrained`: tokio's cooperative budget could report a finished result as
            // Pending when polled from inside a busy task of another runtime.
            let polled = tokio::task::unconstrained(future).now_or_never()?;
            self.future = None;
            self.done = Some(polled);
        }
        match self.done.as_ref()? {
            Ok(value) => Some(Ok(value.clone())),
            Err(e) => Some(Err(duplicate_error(e))),
        }
    }

    fn on_complete<C>(mut self, callback: C)
    where
        C: FnOnce(Result<T>) + Send + 'static,
    {
        if let Some(done) = self.done.take() {
            return Completion::new(callback).complete(done);
        }
        let future = self.future.take().expect("a pending result has its future until done");
        let completion = Completion::new(callback);
        // The task holds the callback, not the runtime: if the runtime shuts down first, the
        // task is dropped and the completion's Drop reports that instead of never calling.
        drop(self.runtime.handle().spawn(async move { completion.complete(future.await) }));
    }
}

/// Calls its callback exactly once: with the result, or with [`Error::Closed`] when dropped
/// before one came (the runtime shut down). A panicking callback is logged, never unwound
/// into the runtime (or into a JNI frame).
struct Completion<T, C: FnOnce(Result<T>)> {
    callback: Option<C>,
    _result: std::marker::PhantomData<fn(T)>,
}

impl<T, C: FnOnce(Result<T>)> Completion<T, C> {
    fn new(callback: C) -> Self {
        Completion { callback: Some(callback), _result: std::marker::PhantomData }
    }

    fn complete(mut self, result: Result<T>) {
        if let Some(callback) = self.callback.take() {
            call_guarded(callback, result);
        }
    }
}

impl<T, C: FnOnce(Result<T>)> Drop for Completion<T, C> {
    fn drop(&mut self) {
        if let Some(callback) = self.callback.take() {
            call_guarded(callback, Err(Error::Closed("the client's runtime shut down before the result arrived".into())));
        }
    }
}

fn call_guarded<T, C: FnOnce(Result<T>)>(callback: C, result: Result<T>) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| callback(result))) {
        tracing::error!(panic = %panic_message(panic), "an on_complete callback panicked");
    }
}

/// The acknowledgement of one batch written with `write_unconfirmed`: resolves once the
/// batch is durable on the node (or failed). Dropping it does not cancel the write.
#[derive(Debug)]
pub struct AckHandle {
    pending: Pending<AckFuture, PutAck>,
}

impl AckHandle {
    pub(crate) fn new(future: AckFuture, runtime: Arc<ClientRuntime>) -> Self {
        AckHandle { pending: Pending::new(future, runtime) }
    }

    /// Blocks until the ack (or the failure) arrives.
    pub fn wait(self) -> Result<PutAck> {
        self.pending.wait()
    }

    /// The ack if it has arrived, without blocking; `None` while it is still coming. Once
    /// known, every later call returns the same result.
    pub fn try_wait(&mut self) -> Option<Result<PutAck>> {
        self.pending.try_wait()
    }

    /// Calls `callback` exactly once with the result: at once on this thread if it is already
    /// known, else on a `strom-client-N` thread when it arrives (with [`Error::Closed`] if the
    /// client's runtime shuts down first). The callback must be quick and must not block: it
    /// runs on one of the few threads that drive every call of the client.
    pub fn on_complete<C>(self, callback: C)
    where
        C: FnOnce(Result<PutAck>) + Send + 'static,
    {
        self.pending.on_complete(callback)
    }
}

/// The answer to one key batch submitted with [`super::Lookuper::submit`]: `_key_index` first,
/// then the returned columns. Answers of one lookuper resolve in submission order.
#[derive(Debug)]
pub struct LookupHandle {
    pending: Pending<LookupFuture, RecordBatch>,
}

impl LookupHandle {
    pub(crate) fn new(future: LookupFuture, runtime: Arc<ClientRuntime>) -> Self {
        LookupHandle { pending: Pending::new(future, runtime) }
    }

    /// Blocks until the answer (or the failure) arrives.
    pub fn wait(self) -> Result<RecordBatch> {
        self.pending.wait()
    }

    /// The answer if it has arrived, without blocking; `None` while it is still coming.
    pub fn try_wait(&mut self) -> Option<Result<RecordBatch>> {
        self.pending.try_wait()
    }

    /// Calls `callback` exactly once with the answer; see [`AckHandle::on_complete`].
    pub fn on_complete<C>(self, callback: C)
    where
        C: FnOnce(Result<RecordBatch>) + Send + 'static,
    {
        self.pending.on_complete(callback)
    }
}
