//! The trait node types implement, and adapters for closures and blocking bodies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::{NodeContext, Outputs};
use crate::error::NodeError;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a node type does when a node of it runs.
///
/// The body gets its config, inputs, progress reporting, cancellation and resource grant
/// through the [`NodeContext`], and returns its outputs by port. Bodies that compute for a
/// long time must not block the async workers: use [`NodeContext::run_blocking`], or
/// register the body with [`Registry::register_blocking`](crate::Registry::register_blocking).
///
/// ```
/// use medfusion_exec::{JsonValue, NodeContext, NodeError, NodeExecutor, Outputs};
///
/// struct Answer;
///
/// impl NodeExecutor for Answer {
///     async fn execute(&self, ctx: NodeContext) -> Result<Outputs, NodeError> {
///         ctx.progress(Some(1.0), "thought about it");
///         Ok(Outputs::new().with("out", JsonValue::new(42.into())))
///     }
/// }
/// ```
pub trait NodeExecutor: Send + Sync + 'static {
    /// Run one attempt of a node.
    fn execute(&self, ctx: NodeContext) -> impl Future<Output = Result<Outputs, NodeError>> + Send;
}

/// The object-safe form of [`NodeExecutor`] the registry stores.
pub(crate) trait DynExecutor: Send + Sync {
    fn execute_boxed(&self, ctx: NodeContext) -> BoxFuture<'_, Result<Outputs, NodeError>>;
}

impl<T: NodeExecutor> DynExecutor for T {
    fn execute_boxed(&self, ctx: NodeContext) -> BoxFuture<'_, Result<Outputs, NodeError>> {
        Box::pin(self.execute(ctx))
    }
}

/// An executor made of an async closure.
pub struct FnExecutor<F>(pub F);

impl<F, Fut> NodeExecutor for FnExecutor<F>
where
    F: Fn(NodeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outputs, NodeError>> + Send,
{
    fn execute(&self, ctx: NodeContext) -> impl Future<Output = Result<Outputs, NodeError>> + Send {
        (self.0)(ctx)
    }
}

/// An executor whose body blocks (CPU-heavy work, file I/O): it runs on the blocking
/// thread pool, never on an async worker.
pub struct BlockingExecutor<F>(pub Arc<F>);

impl<F> NodeExecutor for BlockingExecutor<F>
where
    F: Fn(&NodeContext) -> Result<Outputs, NodeError> + Send + Sync + 'static,
{
    async fn execute(&self, ctx: NodeContext) -> Result<Outputs, NodeError> {
        let body = Arc::clone(&self.0);
        let inner = ctx.clone();
        ctx.run_blocking(move || body(&inner)).await
    }
}
