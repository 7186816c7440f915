//! The HTTP side: `/metrics` in the OpenMetrics text format (or Prometheus's classic text
//! format for a client that asks for it and not for OpenMetrics), `/healthz`.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
    routing::get,
    Router,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a client has to send a request's headers, and, on a kept-alive connection,
/// to start the next request: one that trickles them, or sends nothing, would otherwise
/// hold its connection and the file descriptor behind it for ever. Prometheus sends a
/// scrape's headers at once.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once. Beyond that, each new one closes the oldest, so that clients
/// holding connections open cannot take the file descriptors tracing needs, nor keep a
/// scrape out: a scraper's connection, newest, is served at once.
pub(crate) const MAX_CONNECTIONS: usize = 128;

/// Serves `router` on `listener` until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::TcpListener, router: Router) {
    // The connections being served, oldest first (finished ones pruned at each accept).
    let mut served: std::collections::VecDeque<tokio::task::AbortHandle> =
        std::collections::VecDeque::with_capacity(MAX_CONNECTIONS + 1);
    let mut warned = false;
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
        served.retain(|task| !task.is_finished());
        if served.len() >= MAX_CONNECTIONS {
            if !warned {
                say!("tcptrace: more than {MAX_CONNECTIONS} HTTP connections at once: the oldest are closed as new ones come (clients holding connections open?)");
                warned = true;
            }
            if let Some(oldest) = served.pop_front() {
                oldest.abort(); // its connection is closed with the task
            }
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let task = tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            // A client that goes away or breaks the protocol ends its own connection only.
            let _ended = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
        served.push_back(task.abort_handle());
    }
}

pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(registry)
}

async fn metrics(State(registry): State<Arc<Registry>>, request: HeaderMap) -> impl IntoResponse {
    let mut body = String::with_capacity(16 * 1024);
    if encode(&mut body, &registry).is_err() {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed\n")
            .into_response();
    }
    let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if wants_classic_text(accept) {
        return ([(header::CONTENT_TYPE, CLASSIC_TEXT)], classic_text(&body)).into_response();
    }
    ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
}

/// Whether the client asks for the classic text format and not for OpenMetrics (`curl -H
/// 'Accept: text/plain'`, older scrapers, `promtool check metrics`). Prometheus asks for
/// both, OpenMetrics first; a client that says nothing gets OpenMetrics, as before.
fn wants_classic_text(accept: &str) -> bool {
    let types = || accept.split(',').map(|t| t.split(';').next().unwrap_or("").trim());
    types().any(|t| t == "text/plain") && !types().any(|t| t == "application/openmetrics-text")
}

/// The OpenMetrics text `prometheus_client` writes, in the classic text format: the same
/// samples, without `# EOF` and `# UNIT`, and with a counter's HELP and TYPE under its
/// sample name (`x_total`), where OpenMetrics puts them under the family's (`x`).
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        // A counter's HELP and TYPE lines name it without the `_total` its samples have.
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|kind| {
            let (name, tail) = line.strip_prefix(kind)?.split_once(' ')?;
            Some((kind, name, tail))
        });
        match meta {
            Some((kind, name, tail)) if counters.contains(name) => {
                out.push_str(kind);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_goes_only_to_who_asks_for_it_alone() {
        assert!(wants_classic_text("text/plain"));
        assert!(wants_classic_text("text/plain;version=0.0.4;q=0.9, */*;q=0.1"));
        assert!(!wants_classic_text(""));
        assert!(!wants_classic_text("*/*"));
        // What Prometheus sends.
        assert!(!wants_classic_text("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    }

    /// Every metric the exporter has, in the classic format, passes `promtool check
    /// metrics` (Prometheus's own linter, which reads only that format), and keeps every
    /// sample of the OpenMetrics text.
    #[test]
    fn the_classic_format_passes_promtool() {
        use std::io::Write;
        let mut registry = Registry::with_prefix("tcptrace");
        let mut metrics = super::super::metrics::Metrics::new(&mut registry, Vec::new(), 10, 10);
        for event in crate::printer::tests::one_of_each() {
            metrics.record(&event);
        }
        metrics.lost_so_far("ring_buffer_full", 1);
        metrics.filtered_so_far(2);
        metrics.hook_in_use("state", "tracepoint", "sock:inet_sock_set_state");
        let mut openmetrics = String::new();
        encode(&mut openmetrics, &registry).expect("encode");
        let classic = classic_text(&openmetrics);
        let samples = |text: &str| {
            text.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(samples(&classic), samples(&openmetrics));
        assert!(
            classic.contains("# TYPE tcptrace_connections_opened_total counter\n"),
            "{classic}"
        );
        let mut promtool = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run promtool (Debian package prometheus)");
        promtool
            .stdin
            .take()
            .expect("stdin")
            .write_all(classic.as_bytes())
            .expect("write to promtool");
        let out = promtool.wait_with_output().expect("promtool's verdict");
        assert!(
            out.status.success(),
            "{}{}\n{classic}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
