//! The request's id and path, available to anything that runs inside the request
//! (so an error built deep in a handler still carries them).

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Run `f` with `ctx` as the current request.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// The current request, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}
