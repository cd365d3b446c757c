//! Server-Sent Events plumbing shared by the streaming endpoints.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::generate::ChoiceResult;

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

/// A stream whose choices did not all finish lost its engine (a crash or shutdown): the client
/// gets vLLM's mid-stream error event (`data: {"error": ...}`) and `[DONE]`, not an answer that
/// looks complete. Returns whether that happened.
pub fn ended_without_finish(
    results: &[ChoiceResult],
    tx: &mpsc::UnboundedSender<Result<Event, Infallible>>,
) -> bool {
    if results.iter().all(|r| r.finish_reason.is_some()) {
        return false;
    }
    let err = ApiError::from(engine::llm_engine::EngineError::EngineDead);
    let body = serde_json::to_string(&err.body()).unwrap_or_default();
    let _ = tx.send(Ok(Event::default().data(body)));
    let _ = tx.send(Ok(Event::default().data("[DONE]")));
    true
}
