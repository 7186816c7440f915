//! The HTTP side: `/metrics` in the OpenMetrics text format, `/healthz`.

use std::{sync::Arc, time::Duration};

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{encoding::text::encode, registry::Registry};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a client has to send a request's headers, and, on a kept-alive connection,
/// to start the next request: one that trickles them, or sends nothing, would otherwise
/// hold its connection and the file descriptor behind it for ever. Prometheus sends a
/// scrape's headers at once.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once. More are closed as they arrive, so that clients holding
/// connections open cannot take the file descriptors tracing needs.
pub(crate) const MAX_CONNECTIONS: usize = 128;

/// Serves `router` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::TcpListener, router: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was taken: the
            // condition passes, so wait a little and go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            // A client that goes away or breaks the protocol ends its own connection only.
            let _ended = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok\n" })).with_state(registry)
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::with_capacity(16 * 1024);
    match encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(_) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed\n").into_response(),
    }
}
