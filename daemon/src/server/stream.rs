//! Server-Sent Events plumbing shared by the streaming endpoints.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::mpsc;

/// A channel receiver as the stream `Sse` consumes. When the client disconnects, axum drops
/// this stream, the producer's next send fails, and the producer drops (aborts) its requests.
pub fn receiver_stream(
    rx: mpsc::UnboundedReceiver<Result<Event, Infallible>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

pub fn sse_response<S>(sse: Sse<S>) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    sse.keep_alive(KeepAlive::default()).into_response()
}
