//! The accept loop: TCP (plain or TLS) or a Unix socket, each connection served by hyper-util's
//! HTTP/1.1 + HTTP/2 builder with the h11 header limits, and a bounded graceful drain.
//!
//! `axum::serve` cannot terminate TLS nor set hyper's header limits, hence this loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::server::ClientAddr;

/// `--h11-max-header-count`, `--h11-max-incomplete-event-size` and `VLLM_HTTP_TIMEOUT_KEEP_ALIVE`.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_header_count: usize,
    pub max_incomplete_event_size: usize,
    /// How long a connection may wait for (the headers of) its next request; idle keep-alive
    /// connections are closed after it, as uvicorn's `timeout_keep_alive` does.
    pub keep_alive: Duration,
}

/// hyper refuses (panics on) read buffers below 8 KiB: smaller limits are raised to that.
const MIN_BUF: usize = 8192;

/// A client that connects but never finishes its TLS handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

fn builder(limits: HttpLimits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    // The timer lets hyper drop connections that never finish sending their headers.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.keep_alive.max(Duration::from_secs(1)))
        .max_headers(limits.max_header_count.max(1))
        .max_buf_size(limits.max_incomplete_event_size.max(MIN_BUF));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_incomplete_event_size).unwrap_or(u32::MAX));
    b
}

/// Serves one connection until it closes or the drain ends it.
async fn serve_io<I>(io: I, app: Router, builder: Arc<Builder<TokioExecutor>>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(conn).await {
        // Resets and bad requests from one client are its own business.
        tracing::debug!(target: "uvicorn.error", "connection ended with an error: {e}");
    }
}

/// TLS first, on the connection's own task so a slow client never holds up `accept`.
async fn serve_tls(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    watcher: Watcher,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_io(tls, app, builder, watcher).await,
        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Accepts until `shutdown` resolves, then lets open connections finish for up to `drain`.
pub async fn serve(
    listener: Listener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: HttpLimits,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(limits));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        match &listener {
            Listener::Tcp(l) => {
                let accepted = tokio::select! {
                    r = l.accept() => r,
                    _ = &mut shutdown => break,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone().layer(Extension(ClientAddr(Some(peer))));
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                match &tls {
                    None => tokio::spawn(serve_io(stream, app, builder, watcher)),
                    Some(acceptor) => {
                        tokio::spawn(serve_tls(stream, acceptor.clone(), app, builder, watcher))
                    }
                };
            }
            Listener::Unix(l) => {
                let accepted = tokio::select! {
                    r = l.accept() => r,
                    _ = &mut shutdown => break,
                };
                match accepted {
                    Ok((s, _)) => {
                        let app = app.clone().layer(Extension(ClientAddr(None)));
                        tokio::spawn(serve_io(s, app, builder.clone(), graceful.watcher()));
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain time ({} s) over: closing the remaining connections",
            drain.as_secs()
        );
    }
}

/// Accept errors (out of file descriptors, mostly) are transient: pause instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
