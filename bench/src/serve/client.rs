//! One streamed request to an OpenAI-compatible server, timed on the client side: TTFT is the
//! time to the first chunk that carries a choice, each later such chunk adds an inter-token
//! latency (ITL), and the end-to-end latency ends at the last of them (the usage-only chunk
//! after it carries no token).

use std::time::Instant;

use serde_json::{json, Map, Value};

/// What to send.
#[derive(Debug, Clone)]
pub struct RequestInput {
    pub prompt: String,
    pub prompt_len: usize,
    pub output_len: usize,
    /// The `model` field of the request.
    pub model: String,
    /// Full URL of the endpoint (`.../completions` or `.../chat/completions`).
    pub api_url: String,
    /// `/v1/chat/completions` (messages) rather than `/v1/completions` (prompt).
    pub chat: bool,
    /// `/v1/embeddings`: one non-streamed request whose latency is the whole measurement.
    pub embeddings: bool,
    pub logprobs: Option<u32>,
    pub ignore_eos: bool,
    /// Merged into the body last (sampling parameters, `--extra-body`).
    pub extra_body: Map<String, Value>,
    pub extra_headers: Vec<(String, String)>,
    pub request_id: Option<String>,
}

/// What one request measured. Times are in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestOutput {
    pub generated_text: String,
    pub success: bool,
    pub latency: f64,
    /// `usage.completion_tokens` of the stream; 0 when the server sent no usage.
    pub output_tokens: usize,
    pub ttft: f64,
    pub itl: Vec<f64>,
    pub prompt_len: usize,
    pub error: String,
    /// When the request was sent, in seconds after the benchmark's origin.
    pub start_time: f64,
}

/// The JSON body of `input`.
pub fn payload(input: &RequestInput) -> Value {
    if input.embeddings {
        let mut body = json!({"model": input.model, "input": input.prompt});
        if let Some(map) = body.as_object_mut() {
            for (k, v) in &input.extra_body {
                map.insert(k.clone(), v.clone());
            }
        }
        return body;
    }
    let mut body = if input.chat {
        // Plain string content: every OpenAI-compatible server takes it for a text-only turn.
        json!({
            "model": input.model,
            "messages": [{"role": "user", "content": input.prompt}],
            "max_completion_tokens": input.output_len,
        })
    } else {
        json!({
            "model": input.model,
            "prompt": input.prompt,
            "repetition_penalty": 1.0,
            "max_tokens": input.output_len,
            "logprobs": input.logprobs,
        })
    };
    if let Some(map) = body.as_object_mut() {
        map.insert("stream".into(), json!(true));
        // Ask for the token count: counting by re-tokenizing the text is only a fallback.
        map.insert("stream_options".into(), json!({"include_usage": true}));
        if input.ignore_eos {
            map.insert("ignore_eos".into(), json!(true));
        }
        for (k, v) in &input.extra_body {
            map.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Splits a byte stream into server-sent events. Bytes are kept until an event is complete, so a
/// character split across network chunks is never cut.
#[derive(Default)]
pub struct SseBuffer {
    pending: Vec<u8>,
}

impl SseBuffer {
    /// Adds `bytes`; returns the events they completed, trimmed, blank ones dropped.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_separator(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end + sep).take(end).collect();
            let text = String::from_utf8_lossy(&event).trim().to_string();
            if !text.is_empty() {
                events.push(text);
            }
        }
        // A last event without its blank line is complete once its data parses: some servers end
        // the stream (or a chunk) that way.
        if let Ok(text) = std::str::from_utf8(&self.pending) {
            let t = text.trim();
            if let Some(data) = t.strip_prefix("data:") {
                let data = data.trim();
                if data == "[DONE]"
                    || (!data.is_empty() && serde_json::from_str::<Value>(data).is_ok())
                {
                    events.push(t.to_string());
                    self.pending.clear();
                }
            }
        }
        events
    }
}

/// The first blank line: (offset, length of the separator), for `\n\n` and `\r\n\r\n`.
fn find_separator(b: &[u8]) -> Option<(usize, usize)> {
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(if a.0 <= c.0 { a } else { c }),
        (a, c) => a.or(c),
    }
}

/// The data of one event: `data: X` lines joined; `None` for comments and data-less events.
fn event_data(event: &str) -> Option<String> {
    let lines: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// What a parsed stream has seen so far.
pub struct StreamState {
    sent: Instant,
    last: Instant,
    first: bool,
    pub out: RequestOutput,
}

impl StreamState {
    pub fn new(sent: Instant, start_time: f64, prompt_len: usize) -> StreamState {
        StreamState {
            sent,
            last: sent,
            first: false,
            out: RequestOutput {
                prompt_len,
                start_time,
                ..Default::default()
            },
        }
    }

    /// Takes the events that arrived at `now`.
    pub fn on_events(&mut self, events: &[String], now: Instant, chat: bool) -> Result<(), String> {
        for event in events {
            let Some(data) = event_data(event) else {
                continue;
            };
            if data.trim() == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| format!("bad stream chunk {data:?}: {e}"))?;
            let choice = v
                .get("choices")
                .and_then(Value::as_array)
                .and_then(|c| c.first());
            if let Some(choice) = choice {
                if self.first {
                    self.out.itl.push((now - self.last).as_secs_f64());
                } else {
                    self.first = true;
                    self.out.ttft = (now - self.sent).as_secs_f64();
                }
                self.last = now;
                let text = if chat {
                    choice.pointer("/delta/content")
                } else {
                    choice.get("text")
                };
                if let Some(t) = text.and_then(Value::as_str) {
                    self.out.generated_text.push_str(t);
                }
            }
            // Usage usually comes in a chunk of its own (no choices); some servers put it in the
            // last token chunk instead. Either way it is the count to trust.
            if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
                if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                    self.out.output_tokens = n as usize;
                }
                if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                    self.out.prompt_len = n as usize;
                }
            }
        }
        Ok(())
    }

    /// The measurement once the stream ended.
    pub fn finish(mut self) -> RequestOutput {
        self.out.latency = (self.last - self.sent).as_secs_f64();
        if self.first {
            self.out.success = true;
        } else {
            self.out.error = "Never received a valid chunk to calculate TTFT. This response will be marked as failed!".into();
        }
        self.out
    }
}

/// Sends `input` and measures it. Failures come back as an unsuccessful output, never an error:
/// they are counted, not fatal.
pub async fn send(
    client: &reqwest::Client,
    input: &RequestInput,
    origin: Instant,
) -> RequestOutput {
    let mut req = client.post(&input.api_url).json(&payload(input));
    if let Some(key) = std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        req = req.bearer_auth(key);
    }
    for (k, v) in &input.extra_headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(id) = &input.request_id {
        req = req.header("x-request-id", id.as_str());
    }
    let sent = Instant::now();
    let mut state = StreamState::new(sent, (sent - origin).as_secs_f64(), input.prompt_len);
    let failed = |state: StreamState, error: String| RequestOutput {
        success: false,
        error,
        ..state.out
    };
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return failed(state, format!("request failed: {e}")),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let reason = status.canonical_reason().unwrap_or("error");
        return failed(
            state,
            format!(
                "{} {reason}: {}",
                status.as_u16(),
                body.chars().take(300).collect::<String>()
            ),
        );
    }
    if input.embeddings {
        return embedding_output(resp, state, sent).await;
    }
    let mut sse = SseBuffer::default();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                let now = Instant::now();
                let events = sse.push(&bytes);
                if let Err(e) = state.on_events(&events, now, input.chat) {
                    return failed(state, e);
                }
            }
            Ok(None) => break,
            Err(e) => return failed(state, format!("reading the stream: {e}")),
        }
    }
    state.finish()
}

/// An embeddings answer: success when it carries `data`; TTFT and latency are both the time to
/// the whole answer (nothing streams), the prompt length is the server's `usage.prompt_tokens`.
async fn embedding_output(
    resp: reqwest::Response,
    mut state: StreamState,
    sent: Instant,
) -> RequestOutput {
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => {
            state.out.error = format!("reading the answer: {e}");
            return state.out;
        }
    };
    let elapsed = sent.elapsed().as_secs_f64();
    let mut out = state.out;
    if body.get("data").and_then(Value::as_array).is_none() {
        out.error = format!(
            "no `data` in the answer: {}",
            body.to_string().chars().take(300).collect::<String>()
        );
        return out;
    }
    if let Some(n) = body.pointer("/usage/prompt_tokens").and_then(Value::as_u64) {
        out.prompt_len = n as usize;
    }
    out.success = true;
    out.latency = elapsed;
    out.ttft = elapsed;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_split_across_chunks() {
        let mut b = SseBuffer::default();
        assert!(b.push(b"data: {\"a\":").is_empty());
        assert_eq!(
            b.push(b"1}\n\ndata: {\"b\":2}\n\n: ping\n\nda"),
            ["data: {\"a\":1}", "data: {\"b\":2}", ": ping"]
        );
        assert_eq!(b.push(b"ta: [DONE]"), ["data: [DONE]"]);
        // A character split between chunks survives.
        let text = "data: {\"t\":\"é\"}\r\n\r\n".as_bytes();
        assert!(b.push(&text[..13]).is_empty());
        assert_eq!(b.push(&text[13..]), ["data: {\"t\":\"é\"}"]);
    }

    #[test]
    fn timings_and_usage_from_events() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = StreamState::new(t0, 1.5, 10);
        let chunk =
            |text: &str| format!("data: {}", json!({"choices": [{"index": 0, "text": text}]}));
        s.on_events(&[chunk("Hel")], at(200), false).unwrap();
        s.on_events(&[chunk("lo"), chunk(" there")], at(250), false)
            .unwrap();
        s.on_events(&[chunk("!")], at(300), false).unwrap();
        let usage = format!(
            "data: {}",
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}})
        );
        s.on_events(
            &[usage, ": keep-alive".into(), "data: [DONE]".into()],
            at(320),
            false,
        )
        .unwrap();
        let out = s.finish();
        assert!(out.success);
        assert_eq!(out.generated_text, "Hello there!");
        assert!((out.ttft - 0.2).abs() < 1e-9);
        assert_eq!(out.itl.len(), 3);
        assert!(
            (out.itl[0] - 0.05).abs() < 1e-9
                && out.itl[1].abs() < 1e-9
                && (out.itl[2] - 0.05).abs() < 1e-9
        );
        assert!(
            (out.latency - 0.3).abs() < 1e-9,
            "ends at the last token, not the usage chunk"
        );
        assert_eq!(
            (out.output_tokens, out.prompt_len, out.start_time),
            (4, 12, 1.5)
        );
        let empty = StreamState::new(t0, 0.0, 1).finish();
        assert!(!empty.success && empty.error.contains("TTFT"));
    }

    #[test]
    fn bodies_follow_the_endpoint() {
        let mut input = RequestInput {
            prompt: "hi".into(),
            prompt_len: 1,
            output_len: 5,
            model: "m".into(),
            api_url: "http://127.0.0.1:1/v1/completions".into(),
            chat: false,
            embeddings: false,
            logprobs: None,
            ignore_eos: true,
            extra_body: Map::new(),
            extra_headers: vec![],
            request_id: None,
        };
        input.extra_body.insert("temperature".into(), json!(0.0));
        let p = payload(&input);
        assert_eq!(p["prompt"], "hi");
        assert_eq!(p["max_tokens"], 5);
        assert_eq!(p["stream"], true);
        assert_eq!(p["stream_options"]["include_usage"], true);
        assert_eq!(p["ignore_eos"], true);
        assert_eq!(p["temperature"], 0.0);
        input.chat = true;
        let p = payload(&input);
        assert_eq!(p["messages"][0]["content"], "hi");
        assert_eq!(p["max_completion_tokens"], 5);
        input.embeddings = true;
        let p = payload(&input);
        assert_eq!(p["input"], "hi");
        assert_eq!(p["temperature"], 0.0);
        assert!(p.get("stream").is_none() && p.get("max_tokens").is_none());
    }
}
