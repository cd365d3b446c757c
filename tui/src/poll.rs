//! The background network work, on tokio: polling the server's read-only endpoints and
//! streaming chat answers. Everything comes back to the UI thread as [`Update`]s; a server that
//! is down only ever produces error values.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::app::{Poll, Update};
use crate::client::{Endpoint, SseSplitter};

const TIMEOUT: Duration = Duration::from_secs(3);

pub fn spawn_poller(
    rt: &Runtime,
    ep: Endpoint,
    interval: Duration,
    clock: Instant,
    tx: Sender<Update>,
) {
    rt.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let poll = poll_once(&ep, clock).await;
            if tx.send(Update::Poll(poll)).is_err() {
                return;
            }
        }
    });
}

async fn poll_once(ep: &Endpoint, clock: Instant) -> Poll {
    let metrics = match ep.get("/metrics", TIMEOUT).await {
        Ok((200, body)) => Ok(body),
        Ok((code, _)) => Err(format!("/metrics answered HTTP {code}")),
        Err(e) => Err(format!("{e:#}")),
    };
    let t = clock.elapsed().as_secs_f64();
    let health = ep
        .get("/health", TIMEOUT)
        .await
        .map(|(code, _)| code)
        .map_err(|e| format!("{e:#}"));
    let (version, models) = if health.is_ok() {
        let version = match ep.get("/version", TIMEOUT).await {
            Ok((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["version"].as_str().map(String::from)),
            _ => None,
        };
        let models = match ep.get(&ep.api("/models"), TIMEOUT).await {
            Ok((200, body)) => serde_json::from_str::<Value>(&body).ok().map(|v| {
                v["data"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|m| {
                                Some((m["id"].as_str()?.to_string(), m["max_model_len"].as_u64()))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }),
            _ => None,
        };
        (version, models)
    } else {
        (None, None)
    };
    Poll {
        t,
        metrics,
        health,
        version,
        models,
    }
}

/// Streams one chat answer; abort the handle to stop it (the connection closes, which makes
/// the server abort the request).
pub fn spawn_chat(
    rt: &Runtime,
    ep: Endpoint,
    id: u64,
    body: String,
    clock: Instant,
    tx: Sender<Update>,
) -> JoinHandle<()> {
    rt.spawn(async move {
        let update = match stream_chat(&ep, id, &body, clock, &tx).await {
            Ok(completion_tokens) => Update::ChatDone {
                id,
                completion_tokens,
                t: clock.elapsed().as_secs_f64(),
            },
            Err(error) => Update::ChatError { id, error },
        };
        let _ = tx.send(update);
    })
}

async fn stream_chat(
    ep: &Endpoint,
    id: u64,
    body: &str,
    clock: Instant,
    tx: &Sender<Update>,
) -> Result<Option<u64>, String> {
    let path = ep.api("/chat/completions");
    let mut resp = ep.post(&path, body).await.map_err(|e| format!("{e:#}"))?;
    if resp.status != 200 {
        let text = resp.read_all().await.unwrap_or_default();
        return Err(error_message(resp.status, &text));
    }
    let mut sse = SseSplitter::default();
    let mut tokens = None;
    while let Some(piece) = resp
        .next_piece()
        .await
        .map_err(|e| format!("stream broken: {e:#}"))?
    {
        for data in sse.feed(&piece) {
            if data == "[DONE]" {
                return Ok(tokens);
            }
            let v: Value =
                serde_json::from_str(&data).map_err(|e| format!("bad stream event: {e}"))?;
            if v.get("error").is_some() {
                return Err(error_message(200, &data));
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = Some(n);
            }
            let delta = &v["choices"][0]["delta"];
            if let Some(text) = delta["reasoning_content"]
                .as_str()
                .filter(|t| !t.is_empty())
            {
                let _ = tx.send(Update::ChatReasoning {
                    id,
                    text: text.to_string(),
                });
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let _ = tx.send(Update::ChatToolCall {
                    id,
                    index: call["index"].as_u64().unwrap_or(0) as usize,
                    name: call["function"]["name"].as_str().map(String::from),
                    arguments: call["function"]["arguments"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            if let Some(text) = v["choices"][0]["delta"]["content"]
                .as_str()
                .filter(|t| !t.is_empty())
            {
                let t = clock.elapsed().as_secs_f64();
                if tx
                    .send(Update::ChatDelta {
                        id,
                        text: text.to_string(),
                        t,
                    })
                    .is_err()
                {
                    return Ok(tokens);
                }
            }
        }
    }
    Ok(tokens)
}

/// The server's own error text (OpenAI style `{"error": {"message": ...}}`) where there is one.
fn error_message(status: u16, body: &str) -> String {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or(v["message"].as_str())
            .map(String::from)
    });
    match msg {
        Some(m) => format!("HTTP {status}: {m}"),
        None => format!(
            "HTTP {status}: {}",
            body.trim().chars().take(200).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_text_from_openai_json() {
        let body = r#"{"error":{"message":"model x not found","type":"NotFoundError","code":404}}"#;
        assert_eq!(
            super::error_message(404, body),
            "HTTP 404: model x not found"
        );
        assert_eq!(super::error_message(500, "boom"), "HTTP 500: boom");
    }
}
