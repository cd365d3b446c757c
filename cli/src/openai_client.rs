//! A small blocking client for the OpenAI API and plain file transfer: list models, JSON
//! requests, and Server-Sent-Event streams that the caller can stop at any moment.
//!
//! The transport is reqwest with rustls, over `http://` and `https://`. Server certificates are
//! checked against the system's roots and Mozilla's; a private CA is added with
//! `SSL_CERT_FILE=ca.pem` (read by the system-roots loader).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An `http://` or `https://` URL.
#[derive(Debug, Clone)]
pub struct Url(reqwest::Url);

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let url = reqwest::Url::parse(s).map_err(|e| anyhow!("{s}: not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("{s}: not an http:// or https:// URL");
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("{s}: no host");
        }
        Ok(Url(url))
    }

    /// This URL with `suffix` appended to its path (`/v1` + `/models`).
    pub fn join(&self, suffix: &str) -> Url {
        let mut url = self.0.clone();
        let path = format!("{}{}", url.path().trim_end_matches('/'), suffix);
        url.set_path(&path);
        Url(url)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

fn blocking_client() -> Result<&'static reqwest::blocking::Client> {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    // No overall timeout: a long generation is not a hung server.
    let c = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(None)
        .build()
        .context("setting up the HTTP client")?;
    Ok(CLIENT.get_or_init(|| c))
}

/// One line for a transport error, with its causes (a TLS failure says why) and, for
/// certificate problems, how to trust a private CA.
fn describe(url: &Url, e: &reqwest::Error) -> anyhow::Error {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = s.source();
    }
    let detail = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    let hint = if detail.contains("certificate") {
        " (for a private CA, set SSL_CERT_FILE=ca.pem)"
    } else {
        ""
    };
    if e.is_connect() || e.is_timeout() {
        anyhow!("cannot connect to {url}: {detail}{hint}")
    } else {
        anyhow!("{url}: {detail}{hint}")
    }
}

/// The message of an OpenAI-shaped error body, else the body itself.
pub fn error_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.trim().chars().take(300).collect());
    format!("server answered {status}: {msg}")
}

/// One request; the status and the whole answer body.
pub fn request(
    url: &Url,
    method: &str,
    api_key: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow!("bad HTTP method {method:?}"))?;
    let mut req = blocking_client()?.request(method.clone(), url.0.clone());
    if let Some(k) = api_key {
        req = req.bearer_auth(k);
    }
    if method != reqwest::Method::GET {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
    }
    let resp = req.send().map_err(|e| describe(url, &e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().map_err(|e| describe(url, &e))?;
    Ok((status, bytes.to_vec()))
}

/// A JSON request that must succeed (2xx); its JSON answer.
pub fn json(url: &Url, method: &str, api_key: Option<&str>, body: Option<&Value>) -> Result<Value> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let (status, answer) = request(url, method, api_key, &bytes)?;
    if !(200..300).contains(&status) {
        bail!("{}", error_message(status, &answer));
    }
    serde_json::from_slice(&answer).with_context(|| format!("{url}: answer is not JSON"))
}

/// The id of the first model the server lists.
pub fn first_model(base: &Url, api_key: Option<&str>) -> Result<String> {
    let v = json(&base.join("/models"), "GET", api_key, None)?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server lists no models"))
}

pub enum Event {
    Data(Value),
    Done,
}

/// An SSE answer being read on a background thread, so that the caller can give up on it.
pub struct EventStream {
    rx: Receiver<Result<Event, String>>,
    /// Dropping it (with the stream) ends the reader at once, which closes the connection.
    _cancel: tokio::sync::oneshot::Sender<()>,
}

/// Splits the buffered bytes into complete lines and turns `data:` lines into events; false
/// when the receiver is gone.
fn drain_events(
    pending: &mut Vec<u8>,
    status: u16,
    tx: &mpsc::Sender<Result<Event, String>>,
) -> bool {
    while let Some(i) = pending.iter().position(|&c| c == b'\n') {
        let line: Vec<u8> = pending.drain(..=i).collect();
        let line = String::from_utf8_lossy(&line);
        let Some(data) = line.trim_end().strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        let event = if data == "[DONE]" {
            Ok(Event::Done)
        } else {
            match serde_json::from_str::<Value>(data) {
                Ok(v) if v.get("error").is_some() => Err(error_message(status, data.as_bytes())),
                Ok(v) => Ok(Event::Data(v)),
                Err(e) => Err(format!("bad event from the server: {e}")),
            }
        };
        if tx.send(event).is_err() {
            return false;
        }
    }
    true
}

/// Runs on the reader thread: sends the request, reports the outcome of the connection on
/// `head`, then streams events until the body ends or `cancel` fires.
async fn read_events(
    url: Url,
    api_key: Option<String>,
    body: String,
    head: mpsc::Sender<Result<()>>,
    tx: mpsc::Sender<Result<Event, String>>,
    mut cancel: tokio::sync::oneshot::Receiver<()>,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = head.send(Err(anyhow!("setting up the HTTP client: {e}")));
            return;
        }
    };
    let mut req = client
        .post(url.0.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(k) = &api_key {
        req = req.bearer_auth(k);
    }
    let sent = tokio::select! {
        r = req.send() => r,
        _ = &mut cancel => return,
    };
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let _ = head.send(Err(describe(&url, &e)));
            return;
        }
    };
    let _ = head.send(Ok(()));
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let answer = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let _ = tx.send(Err(error_message(status, &answer)));
        return;
    }
    let mut pending = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c,
            _ = &mut cancel => return,
        };
        match chunk {
            Ok(Some(bytes)) => {
                pending.extend_from_slice(&bytes);
                if !drain_events(&mut pending, status, &tx) {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(format!("connection lost: {}", describe(&url, &e))));
                return;
            }
        }
    }
}

impl EventStream {
    /// POSTs `body` (with `"stream": true`) and starts reading the events.
    pub fn open(url: &Url, api_key: Option<&str>, body: &Value) -> Result<EventStream> {
        let (tx, rx) = mpsc::channel();
        let (head_tx, head_rx) = mpsc::channel();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the HTTP reader")?;
        let (url, key, body) = (url.clone(), api_key.map(str::to_string), body.to_string());
        std::thread::Builder::new()
            .name("sse-reader".into())
            .spawn(move || rt.block_on(read_events(url, key, body, head_tx, tx, cancel_rx)))
            .context("starting the HTTP reader")?;
        match head_rx.recv() {
            Ok(Ok(())) => Ok(EventStream {
                rx,
                _cancel: cancel_tx,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("the HTTP reader stopped before the answer"),
        }
    }

    /// The next event, waiting at most `tick` so that the caller can check for Ctrl-C between.
    pub fn next(&self, tick: Duration) -> Next {
        match self.rx.recv_timeout(tick) {
            Ok(Ok(e)) => Next::Event(e),
            Ok(Err(e)) => Next::Error(e),
            Err(RecvTimeoutError::Timeout) => Next::Pending,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }
}

pub enum Next {
    Event(Event),
    Error(String),
    Pending,
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://localhost:8000/v1").unwrap();
        assert_eq!(
            u.join("/models").to_string(),
            "http://localhost:8000/v1/models"
        );
        assert_eq!(
            Url::parse("https://example.org/v1/")
                .unwrap()
                .join("/models")
                .to_string(),
            "https://example.org/v1/models"
        );
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://x:notaport/").is_err());
        assert!(Url::parse("not a url").is_err());
    }

    #[test]
    fn error_bodies_give_their_message() {
        let m = error_message(
            404,
            br#"{"error": {"message": "no such model", "type": "NotFoundError"}}"#,
        );
        assert_eq!(m, "server answered 404: no such model");
    }

    #[test]
    fn events_split_on_lines() {
        let (tx, rx) = mpsc::channel();
        let mut pending = b"data: {\"a\": 1}\n\ndata: [DO".to_vec();
        assert!(drain_events(&mut pending, 200, &tx));
        assert!(matches!(rx.try_recv(), Ok(Ok(Event::Data(_)))));
        pending.extend_from_slice(b"NE]\n");
        assert!(drain_events(&mut pending, 200, &tx));
        assert!(matches!(rx.try_recv(), Ok(Ok(Event::Done))));
    }
}
