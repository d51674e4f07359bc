//! The HTTP server's accept loop, bounded: at most `serve.max_connections` open connections
//! (past it a connection is answered 503 and closed at once; past [`MAX_REFUSING`] refusals
//! in progress, closed without an answer), request headers within
//! [`HEADER_TIMEOUT`] (a client that sends them slowly, or keeps an idle connection, is cut
//! off), and a graceful stop. The server shares the `up` process with the pipeline: bounded,
//! it cannot take the file descriptors the producer and processor need.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Time a client has to send a request's headers, and that an idle connection is kept.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a refused client is given to take its 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Refusals in progress at most: each holds its socket up to [`REFUSAL_TIMEOUT`].
const MAX_REFUSING: usize = 32;
/// Connections still finishing a response get this long after a stop is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Retry-After: 5\r\n\
    Connection: close\r\n\
    Content-Length: 58\r\n\r\n\
    too many open connections to this tickpipe; try again soon";

/// Serves `app` on `listener` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    cancel: CancellationToken,
) {
    let open = Arc::new(Semaphore::new(max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or an aborted handshake: wait a moment, go on.
                    tracing::warn!("accepting an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                let app = app.clone();
                let cancel = cancel.clone();
                connections.spawn(async move {
                    serve_connection(stream, app, cancel).await;
                    drop(permit);
                });
            }
            Err(_) => {
                // A flood of connections gets no answer: dropped, it is closed at once.
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    connections.spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    // Stop accepting; give open responses a moment, then drop the rest.
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(stream: TcpStream, app: Router, cancel: CancellationToken) {
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

/// Answers a connection past the limit with a 503 and closes it. What the client sent is read
/// and dropped first: closing a socket with unread input resets it, and the client would see
/// a reset instead of the 503.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(TOO_MANY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
