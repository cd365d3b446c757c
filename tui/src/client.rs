//! The TUI's HTTP client: reqwest (async, rustls) as in the rest of the CLI, over `http://` and
//! `https://`. Proxies come from the usual `HTTP(S)_PROXY`/`NO_PROXY` variables; a private CA is
//! trusted with `SSL_CERT_FILE=ca.pem`. Server-Sent Events are read as the pieces arrive and split
//! into `data:` payloads here.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};

/// How long a connection (TCP and TLS) may take to open; a chat stream itself has no limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Scheme, host and port; `/metrics`, `/health` and `/version` live at its root.
    origin: reqwest::Url,
    /// Path prefix of the OpenAI API (`/v1`).
    pub api_prefix: String,
    pub api_key: Option<String>,
    client: reqwest::Client,
}

/// One line for a failed request, with its causes (a TLS failure says why) and, for a
/// certificate problem, how to trust a private CA.
fn describe(what: &str, e: reqwest::Error) -> anyhow::Error {
    let mut causes = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    let detail = causes.join(": ");
    let hint = if detail.contains("certificate") {
        " (for a private CA, set SSL_CERT_FILE=ca.pem)"
    } else {
        ""
    };
    anyhow!("{what}: {detail}{hint}")
}

impl Endpoint {
    /// `http(s)://host[:port][/prefix]`; without a scheme, `http://` is meant.
    pub fn parse(url: &str, api_key: Option<String>) -> Result<Endpoint> {
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let parsed = reqwest::Url::parse(&full).map_err(|e| anyhow!("{url}: not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("{url}: only http:// and https:// URLs are supported");
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            bail!("no host in URL {url:?}");
        }
        let api_prefix = parsed.path().trim_end_matches('/').to_string();
        let mut origin = parsed;
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| describe("setting up the HTTP client", e))?;
        Ok(Endpoint {
            origin,
            api_prefix,
            api_key,
            client,
        })
    }

    /// `host:port` as shown to the user.
    pub fn authority(&self) -> String {
        format!(
            "{}:{}",
            self.origin.host_str().unwrap_or_default(),
            self.origin.port_or_known_default().unwrap_or_default()
        )
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.api_prefix)
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.origin.clone();
        url.set_path(path);
        url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match &self.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// `GET path` (path from the server root) with a whole-request timeout.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, String)> {
        let fut = async {
            let resp = self
                .request(reqwest::Method::GET, path)
                .send()
                .await
                .map_err(|e| describe(&format!("GET {path}"), e))?;
            let status = resp.status().as_u16();
            let body = resp
                .text()
                .await
                .map_err(|e| describe(&format!("GET {path}"), e))?;
            Ok::<_, anyhow::Error>((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("GET {path}: no answer within {timeout:?}"))?
    }

    /// `POST path` with a JSON body; the answer is read piece by piece from the [`Response`].
    pub async fn post(&self, path: &str, body: &str) -> Result<Response> {
        let inner = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| describe(&format!("POST {path}"), e))?;
        Ok(Response {
            status: inner.status().as_u16(),
            inner,
        })
    }
}

pub struct Response {
    pub status: u16,
    inner: reqwest::Response,
}

impl Response {
    /// The next piece of the body as it arrives; `None` at the end.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        let piece = self
            .inner
            .chunk()
            .await
            .map_err(|e| describe("reading the answer", e))?;
        Ok(piece.map(|b| b.to_vec()))
    }

    pub async fn read_all(&mut self) -> Result<String> {
        let mut body = Vec::new();
        while let Some(piece) = self.next_piece().await? {
            body.extend_from_slice(&piece);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Splits a Server-Sent Events byte stream into `data:` payloads, across piece boundaries.
#[derive(Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
}

impl SseSplitter {
    pub fn feed(&mut self, piece: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(piece);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim_end_matches(['\r', '\n']).strip_prefix("data:") {
                out.push(data.trim_start().to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("http://localhost:8000/v1", None).unwrap();
        assert_eq!(e.authority(), "localhost:8000");
        assert_eq!(e.api("/models"), "/v1/models");
        assert_eq!(e.url("/metrics").as_str(), "http://localhost:8000/metrics");
        let e = Endpoint::parse("example.com/v1/", None).unwrap();
        assert_eq!(e.authority(), "example.com:80");
        assert_eq!(e.api_prefix, "/v1");
        let e = Endpoint::parse("https://x.example/v1", None).unwrap();
        assert_eq!(e.authority(), "x.example:443");
        assert_eq!(e.url("/health").as_str(), "https://x.example/health");
        assert!(Endpoint::parse("ftp://x/v1", None).is_err());
        assert!(Endpoint::parse("http://:8000/v1", None).is_err());
    }

    #[test]
    fn sse_split_across_pieces() {
        let mut s = SseSplitter::default();
        assert!(s.feed(b"data: {\"a\"").is_empty());
        assert_eq!(
            s.feed(b":1}\r\n\r\ndata: [DONE]\n\n"),
            vec!["{\"a\":1}".to_string(), "[DONE]".to_string()]
        );
    }

    /// A one-shot server that records the request and answers with a chunked event stream
    /// whose events are split across chunks, as a real server's may be.
    async fn stream_server() -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the 2-byte body `{}` announced by Content-Length.
            while !String::from_utf8_lossy(&req).ends_with("\r\n\r\n{}") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "request ended early");
                req.extend_from_slice(&buf[..n]);
            }
            let chunks = [
                "data: {\"n\":",
                "1}\n\ndata: {\"n\":2}\n",
                "\ndata: [DONE]\n\n",
            ];
            let mut answer = String::from(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            for c in chunks {
                answer.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
            }
            answer.push_str("0\r\n\r\n");
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (port, server)
    }

    #[tokio::test]
    async fn streamed_events_and_the_api_key_arrive() {
        let (port, server) = stream_server().await;
        let ep = Endpoint::parse(
            &format!("http://127.0.0.1:{port}/v1"),
            Some("sk-test".into()),
        )
        .unwrap();
        let mut resp = ep.post(&ep.api("/chat/completions"), "{}").await.unwrap();
        assert_eq!(resp.status, 200);
        let mut sse = SseSplitter::default();
        let mut events = Vec::new();
        while let Some(piece) = resp.next_piece().await.unwrap() {
            events.extend(sse.feed(&piece));
        }
        assert_eq!(events, ["{\"n\":1}", "{\"n\":2}", "[DONE]"]);
        let req = server.await.unwrap().to_ascii_lowercase();
        assert!(req.starts_with("post /v1/chat/completions "), "{req}");
        assert!(req.contains("authorization: bearer sk-test"), "{req}");
        assert!(req.contains("content-type: application/json"), "{req}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        let ep = Endpoint::parse(&format!("127.0.0.1:{port}"), None).unwrap();
        let err = ep
            .get("/health", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no answer within"), "{err}");
    }
}
