//! A small blocking HTTP/1.1 client for the OpenAI API and plain file transfer: list models,
//! JSON requests, and Server-Sent-Event streams that the caller can stop at any moment.
//! Plain `http://` only (servers started by `vllm serve` speak plain HTTP).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// `http://host[:port]/path`, split for the request line.
#[derive(Debug, Clone)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url> {
        let rest = if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.starts_with("https://") {
            bail!("{s}: https URLs are not supported yet (use http://)");
        } else {
            bail!("{s}: not an http:// URL");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h.to_string(), p.parse::<u16>().map_err(|_| anyhow!("{s}: bad port {p:?}"))?)
            }
            _ => (authority.to_string(), 80),
        };
        if host.is_empty() {
            bail!("{s}: no host");
        }
        Ok(Url { host: host.trim_start_matches('[').trim_end_matches(']').to_string(), port, path: path.to_string() })
    }

    /// This URL with `suffix` appended to its path (`/v1` + `/models`).
    pub fn join(&self, suffix: &str) -> Url {
        Url { path: format!("{}{}", self.path.trim_end_matches('/'), suffix), ..self.clone() }
    }

    fn display(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
}

fn connect(url: &Url) -> Result<TcpStream> {
    let addrs: Vec<_> = (url.host.as_str(), url.port).to_socket_addrs().with_context(|| format!("cannot resolve {}", url.host))?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    let e = last.map(|e| e.to_string()).unwrap_or_else(|| "no address".into());
    bail!("cannot connect to {}: {e}", url.display())
}

fn send(url: &Url, method: &str, api_key: Option<&str>, content_type: &str, body: &[u8]) -> Result<(TcpStream, BufReader<TcpStream>, Head)> {
    let mut stream = connect(url)?;
    let mut req = format!("{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: */*\r\n", url.path, url.host, url.port);
    if let Some(k) = api_key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).and_then(|_| stream.write_all(body)).with_context(|| format!("sending to {}", url.display()))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line).with_context(|| format!("reading the answer of {}", url.display()))?;
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| anyhow!("{}: not an HTTP answer: {:?}", url.display(), line.trim()))?;
    let mut head = Head { status, chunked: false, length: None };
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                head.chunked = true;
            } else if k == "content-length" {
                head.length = v.parse().ok();
            }
        }
    }
    Ok((stream, reader, head))
}

/// Feeds the decoded body to `sink` piece by piece; `sink` returns false to stop early.
fn read_body(reader: &mut BufReader<TcpStream>, head: &Head, mut sink: impl FnMut(&[u8]) -> bool) -> Result<()> {
    if head.chunked {
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                return Ok(());
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if !sink(&chunk[..size]) {
                return Ok(());
            }
        }
    } else if let Some(n) = head.length {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        sink(&body);
        Ok(())
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        sink(&body);
        Ok(())
    }
}

/// The message of an OpenAI-shaped error body, else the body itself.
pub fn error_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()).map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(300).collect());
    format!("server answered {status}: {msg}")
}

/// One request; the whole answer body.
pub fn request(url: &Url, method: &str, api_key: Option<&str>, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let (_stream, mut reader, head) = send(url, method, api_key, "application/json", body)?;
    let mut out = Vec::new();
    read_body(&mut reader, &head, |b| {
        out.extend_from_slice(b);
        true
    })?;
    Ok((head.status, out))
}

/// A JSON request that must succeed (2xx); its JSON answer.
pub fn json(url: &Url, method: &str, api_key: Option<&str>, body: Option<&Value>) -> Result<Value> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let (status, answer) = request(url, method, api_key, &bytes)?;
    if !(200..300).contains(&status) {
        bail!("{}", error_message(status, &answer));
    }
    serde_json::from_slice(&answer).with_context(|| format!("{}: answer is not JSON", url.display()))
}

/// The id of the first model the server lists.
pub fn first_model(base: &Url, api_key: Option<&str>) -> Result<String> {
    let v = json(&base.join("/models"), "GET", api_key, None)?;
    v["data"][0]["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the server lists no models"))
}

pub enum Event {
    Data(Value),
    Done,
}

/// An SSE answer being read on a background thread, so that the caller can give up on it.
pub struct EventStream {
    rx: Receiver<Result<Event, String>>,
    socket: TcpStream,
}

impl EventStream {
    /// POSTs `body` (with `"stream": true`) and starts reading the events.
    pub fn open(url: &Url, api_key: Option<&str>, body: &Value) -> Result<EventStream> {
        let (socket, mut reader, head) = send(url, "POST", api_key, "application/json", body.to_string().as_bytes())?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if !(200..300).contains(&head.status) {
                let mut answer = Vec::new();
                let _ = read_body(&mut reader, &head, |b| {
                    answer.extend_from_slice(b);
                    true
                });
                let _ = tx.send(Err(error_message(head.status, &answer)));
                return;
            }
            let mut pending = Vec::new();
            let result = read_body(&mut reader, &head, |b| {
                pending.extend_from_slice(b);
                while let Some(i) = pending.iter().position(|&c| c == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line);
                    let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
                    let data = data.trim();
                    let event = if data == "[DONE]" {
                        Ok(Event::Done)
                    } else {
                        match serde_json::from_str::<Value>(data) {
                            Ok(v) if v.get("error").is_some() => Err(error_message(head.status, data.as_bytes())),
                            Ok(v) => Ok(Event::Data(v)),
                            Err(e) => Err(format!("bad event from the server: {e}")),
                        }
                    };
                    if tx.send(event).is_err() {
                        return false;
                    }
                }
                true
            });
            if let Err(e) = result {
                let _ = tx.send(Err(format!("connection lost: {e}")));
            }
        });
        Ok(EventStream { rx, socket })
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

impl Drop for EventStream {
    fn drop(&mut self) {
        // Closing the connection is how a client cancels: the server aborts the request.
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://localhost:8000/v1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("localhost", 8000, "/v1"));
        assert_eq!(u.join("/models").path, "/v1/models");
        let u = Url::parse("http://example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://x:notaport/").is_err());
    }

    #[test]
    fn error_bodies_give_their_message() {
        let m = error_message(404, br#"{"error": {"message": "no such model", "type": "NotFoundError"}}"#);
        assert_eq!(m, "server answered 404: no such model");
    }
}
