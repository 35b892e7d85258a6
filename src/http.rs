//! The HTTP endpoint for `/metrics`, `/healthz` and `/readyz`, served by hyper on the tokio
//! runtime: HTTP/1.1 with keep-alive (a scraper reuses its connection), a bounded time to read a
//! request's head, gzip for `/metrics` when the scraper asks for it (Prometheus does).

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
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

/// Serves until the task is dropped. Bind with [`bind`] first so errors surface at startup.
pub async fn serve(listener: TcpListener, registry: Registry, health: Arc<Health>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // e.g. out of file descriptors: back off instead of spinning
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let registry = registry.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&req, &registry, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            // a connection's errors (a client gone mid-request) concern that client only
            let _ = conn.await;
        });
    }
}

fn reply(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Whether the request accepts a gzip body (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';').map(str::trim);
            parts.next() == Some("gzip") && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    z.write_all(body)?;
    z.finish()
}

fn respond<B>(req: &Request<B>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n");
    }
    let (status, ctype, body) = route(req.uri().path(), registry, health);
    if req.uri().path() == "/metrics" && accepts_gzip(req) {
        if let Ok(z) = gzip(body.as_bytes()) {
            let mut r = reply(status, ctype, z);
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r.headers_mut()
                .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            return r;
        }
    }
    reply(status, ctype, body)
}

fn route(path: &str, registry: &Registry, health: &Health) -> (StatusCode, &'static str, String) {
    let text = "text/plain; charset=utf-8";
    match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(registry),
        ),
        "/healthz" => {
            let now = crate::wallclock::wall_ms();
            let age = now - health.last_loop_ms.load(Ordering::Relaxed);
            if age <= health.stall_ms.load(Ordering::Relaxed) {
                (StatusCode::OK, text, "ok\n".into())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    format!("main loop stalled for {age} ms\n"),
                )
            }
        }
        "/readyz" => {
            if health.ready.load(Ordering::Relaxed) {
                (StatusCode::OK, text, "ready\n".into())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    text,
                    "not yet a consumer group member\n".into(),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            text,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// The metrics address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}{hint}")]
pub struct BindError {
    pub addr: String,
    pub source: std::io::Error,
    /// What to do about it, when the cause is a common one.
    pub hint: &'static str,
}

/// Binds the metrics address.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_string(),
        hint: if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another process, perhaps another deadair, holds it: give this one another \
             address, `metrics_addr` in its config or `--metrics-addr` for the demo; \"\" \
             serves none)"
        } else {
            ""
        },
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn a_busy_address_is_named_with_what_to_do() {
        let first = bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap().to_string();
        let err = bind(&addr).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
        assert!(
            err.contains("another deadair") && err.contains("metrics_addr"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn serves_metrics_gzip_on_request_health_and_readiness() {
        let registry = Registry::new();
        let c = prometheus::IntCounter::new("deadair_test_total", "a test counter").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(7);
        let health = Arc::new(Health {
            stall_ms: AtomicI64::new(60_000),
            last_loop_ms: AtomicI64::new(crate::wallclock::wall_ms()),
            ..Health::default()
        });
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, registry, health.clone()));
        let client = reqwest::Client::new();
        let url = |p: &str| format!("http://{addr}{p}");

        let plain = client.get(url("/metrics")).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-encoding").is_none());
        assert!(plain.text().await.unwrap().contains("deadair_test_total 7"));

        let zipped = client
            .get(url("/metrics"))
            .header("Accept-Encoding", "gzip, deflate")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        let bytes = zipped.bytes().await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.contains("deadair_test_total 7"), "{text}");
        let refused = client
            .get(url("/metrics"))
            .header("Accept-Encoding", "gzip;q=0, identity")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get("content-encoding").is_none());

        assert_eq!(
            client.get(url("/healthz")).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            client.get(url("/readyz")).send().await.unwrap().status(),
            503
        );
        health.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            client.get(url("/readyz")).send().await.unwrap().status(),
            200
        );
        assert_eq!(client.get(url("/nope")).send().await.unwrap().status(), 404);
        assert_eq!(
            client.post(url("/metrics")).send().await.unwrap().status(),
            405
        );
        health.last_loop_ms.store(0, Ordering::Relaxed);
        let stalled = client.get(url("/healthz")).send().await.unwrap();
        assert_eq!(stalled.status(), 503);
        assert!(stalled.text().await.unwrap().contains("stalled"));
        server.abort();
    }
}
