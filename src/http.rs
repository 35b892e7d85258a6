//! A minimal HTTP/1.1 endpoint for `/metrics`, `/healthz` and `/readyz` (one request per
//! connection, bounded request size and time; no framework needed for three GET routes).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the health endpoints report.
#[derive(Default)]
pub struct Health {
    /// Set once the consumer has partitions (or is a member with nothing to own yet).
    pub ready: AtomicBool,
    /// Wall-clock ms of the main loop's last turn.
    pub last_loop_ms: AtomicI64,
    /// The main loop is unhealthy when its last turn is older than this, ms.
    pub stall_ms: AtomicI64,
}

/// Serves until the listener fails. Bind with [`bind`] first so errors surface at startup.
pub async fn serve(listener: TcpListener, registry: Registry, health: Arc<Health>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            // e.g. out of file descriptors: back off instead of spinning
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let registry = registry.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let mut n = 0;
            let read = async {
                while n < buf.len() {
                    let k = conn.read(&mut buf[n..]).await.ok()?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Some(())
            };
            if tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .ok()
                .flatten()
                .is_none()
            {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = respond(path, &registry, &health);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

fn respond(
    path: &str,
    registry: &Registry,
    health: &Health,
) -> (&'static str, &'static str, String) {
    let text = "text/plain; charset=utf-8";
    match path.split('?').next().unwrap_or("") {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(registry),
        ),
        "/healthz" => {
            let now = crate::wallclock::wall_ms();
            let age = now - health.last_loop_ms.load(Ordering::Relaxed);
            if age <= health.stall_ms.load(Ordering::Relaxed) {
                ("200 OK", text, "ok\n".into())
            } else {
                (
                    "503 Service Unavailable",
                    text,
                    format!("main loop stalled for {age} ms\n"),
                )
            }
        }
        "/readyz" => {
            if health.ready.load(Ordering::Relaxed) {
                ("200 OK", text, "ready\n".into())
            } else {
                (
                    "503 Service Unavailable",
                    text,
                    "not yet a consumer group member\n".into(),
                )
            }
        }
        _ => (
            "404 Not Found",
            text,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// The metrics address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: String,
    pub source: std::io::Error,
}

/// Binds the metrics address.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_string(),
        source,
    })
}
