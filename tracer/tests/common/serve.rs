//! Running `tcptrace serve` as a child, and scraping what it serves.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use super::{
    http::http_get,
    probe,
    trace::{assert_hook_paths, end_child, stderr_lines, tcptrace_bin},
    START_TIMEOUT,
};

/// A running `tcptrace -v --probe $TT_PROBE <global args> serve --listen 127.0.0.1:0
/// <serve args>`, and the address it serves on.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Serve {
    pub fn start(global: &[&str], serve: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", global, serve)
    }

    /// As `start`, serving on `listen`.
    pub fn start_on(listen: &str, global: &[&str], serve: &[&str]) -> Self {
        let mut child = Command::new(tcptrace_bin())
            .args(["-v", "--probe", &probe()])
            .args(global)
            .args(["serve", "--listen", listen])
            .args(serve)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcptrace serve");
        let rx = stderr_lines(&mut child);
        let mut seen = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tcptrace serve did not start: {seen:?}");
            };
            if let Some(url) = line.strip_prefix("tcptrace: serving metrics on http://") {
                assert_hook_paths(&probe(), &seen);
                let addr =
                    url.trim_end_matches("/metrics").parse().expect("address in the start-up line");
                return Self { child, addr, stderr: rx };
            }
            seen.push(line);
        }
    }

    /// Every sample of the current `/metrics`.
    pub fn scrape(&self) -> Vec<Sample> {
        let (status, body) = http_get(self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        parse_samples(&body)
    }

    /// Scrapes until `done` holds (or a generous time-out, then panics with the last scrape).
    pub fn scrape_until(&self, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let samples = self.scrape();
            if done(&samples) {
                return samples;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {samples:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit code and the stderr lines since start-up.
    pub fn terminate(self) -> (Option<i32>, Vec<String>) {
        self.end_with(libc::SIGTERM)
    }

    /// `signal`, then the exit code and the stderr lines since start-up.
    pub fn end_with(mut self, signal: i32) -> (Option<i32>, Vec<String>) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().expect("wait for tcptrace serve");
        (status.code(), self.stderr.iter().collect())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        end_child(&mut self.child);
    }
}

/// One line of the exposition: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the OpenMetrics text format (what tcptrace serves; label values it writes have
/// no escaped quotes or commas).
pub fn parse_samples(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) =
            line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner =
                    rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once("=\"")
                            .unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Default::default()),
        };
        out.push(Sample { name, labels, value });
    }
    out
}

/// The sum of the samples named `name` whose labels include every pair of `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}
