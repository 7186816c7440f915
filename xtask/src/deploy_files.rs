//! The files in `deploy/` that tools can check here: the scrape configuration (Prometheus's
//! own `promtool`) and the dashboard (JSON, with a data source variable). The dashboard's
//! queries are run against a real Prometheus by tracer/tests/prometheus.rs.

use std::process::Command;

use crate::workspace_root;

#[test]
fn prometheus_scrape_config_passes_promtool() {
    let config = workspace_root().join("deploy/prometheus.yml");
    let out = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&config)
        .output()
        .expect("promtool (apt-get install prometheus)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboard_panels_all_use_the_data_source_variable() {
    let text =
        std::fs::read_to_string(workspace_root().join("deploy/grafana/tcptrace-dashboard.json"))
            .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let vars = dashboard["templating"]["list"].as_array().expect("template variables");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "no datasource variable"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for p in panels {
        if p["type"] == "row" {
            // A row only groups the panels below it: a title, no query.
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "a row without a title");
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "panel {} has no query",
            p["title"]
        );
    }
}
