//! A small HTTP/1.1 client on tokio, enough for talking to `vllmd`: plain `http://` only (for a
//! remote server, tunnel the port over SSH), one connection per request, chunked or sized
//! bodies, and Server-Sent Events read as they arrive.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path prefix of the OpenAI API (`/v1`); `/metrics`, `/health`, `/version` live at the root.
    pub api_prefix: String,
    pub api_key: Option<String>,
}

impl Endpoint {
    pub fn parse(url: &str, api_key: Option<String>) -> Result<Endpoint> {
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => bail!("only http:// URLs are supported (got {scheme}://); tunnel a remote server with ssh -L"),
            None => url,
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if host.is_empty() {
            bail!("no host in URL {url:?}");
        }
        let authority = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !host.ends_with(']')
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Endpoint {
            authority,
            api_prefix: path.trim_end_matches('/').to_string(),
            api_key,
        })
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.api_prefix)
    }

    async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Result<Response> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connect to {}", self.authority))?;
        let mut stream = BufReader::new(stream);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n",
            self.authority
        );
        if let Some(key) = &self.api_key {
            req.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        stream.get_mut().write_all(req.as_bytes()).await?;
        let mut status_line = String::new();
        stream.read_line(&mut status_line).await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("not an HTTP answer: {:?}", status_line.trim()))?;
        let mut chunked = false;
        let mut length = None;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if k == "content-length" {
                    length = v.parse::<usize>().ok();
                }
            }
        }
        Ok(Response {
            status,
            stream,
            chunked,
            remaining: length,
            done: false,
        })
    }

    /// `GET path` (path from the server root) with a whole-request timeout.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, String)> {
        let fut = async {
            let mut resp = self.send("GET", path, None).await?;
            let body = resp.read_all().await?;
            Ok::<_, anyhow::Error>((resp.status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("GET {path}: no answer within {timeout:?}"))?
    }

    pub async fn post(&self, path: &str, body: &str) -> Result<Response> {
        self.send("POST", path, Some(body)).await
    }
}

pub struct Response {
    pub status: u16,
    stream: BufReader<TcpStream>,
    chunked: bool,
    remaining: Option<usize>,
    done: bool,
}

impl Response {
    /// The next piece of the body as it arrives; `None` at the end.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        if self.chunked {
            let mut size_line = String::new();
            self.stream.read_line(&mut size_line).await?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| anyhow!("bad chunk size {size_hex:?}"))?;
            if size == 0 {
                self.done = true;
                return Ok(None);
            }
            let mut buf = vec![0; size + 2];
            self.stream.read_exact(&mut buf).await?;
            buf.truncate(size);
            return Ok(Some(buf));
        }
        let want = self.remaining.unwrap_or(8192).min(8192);
        if want == 0 {
            self.done = true;
            return Ok(None);
        }
        let mut buf = vec![0; want];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        buf.truncate(n);
        if let Some(r) = &mut self.remaining {
            *r -= n;
        }
        Ok(Some(buf))
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
    use super::*;

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("http://localhost:8000/v1", None).unwrap();
        assert_eq!(e.authority, "localhost:8000");
        assert_eq!(e.api("/models"), "/v1/models");
        let e = Endpoint::parse("example.com/v1/", None).unwrap();
        assert_eq!(e.authority, "example.com:80");
        assert_eq!(e.api_prefix, "/v1");
        assert!(Endpoint::parse("https://x/v1", None).is_err());
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
}
