//! The deployment examples in `deploy/` parse, and the pipeline they carry validates.

use crate::support::{Scratch, registry, repo_root};

#[test]
fn the_systemd_unit_is_well_formed_and_stops_with_sigterm() {
    let text = std::fs::read_to_string(repo_root().join("deploy/systemd/sluice@.service")).expect("unit file");
    let mut sections = Vec::new();
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        if let Some(section) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            sections.push(section.to_owned());
        } else {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not `Key=Value`: {line}"));
            assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()), "bad key in {line}");
            keys.push((sections.last().cloned().expect("a key inside a section"), key.to_owned(), value.to_owned()));
        }
    }
    assert_eq!(sections, ["Unit", "Service", "Install"]);
    let value = |key: &str| keys.iter().find(|(section, name, _)| section == "Service" && name == key).map(|(_, _, value)| value.as_str());
    assert!(value("ExecStart").is_some_and(|command| command.contains("/usr/local/bin/sluice run")));
    assert_eq!(value("KillSignal"), Some("SIGTERM"), "SIGTERM drains and checkpoints");
    assert_eq!(value("RestartPreventExitStatus"), Some("78"), "an invalid pipeline file is not restarted for ever");
    assert!(
        value("TimeoutStopSec").and_then(|seconds| seconds.parse::<u32>().ok()).is_some_and(|seconds| seconds > 300),
        "a drain may take delivery.timeout.ms"
    );
    // The install the comments give puts the pipeline where its `../build/plugins/` paths resolve.
    assert!(text.contains("/etc/sluice/pipelines/kafka-marketing.toml") && text.contains("/etc/sluice/build/"));
    assert!(value("ExecStart").is_some_and(|command| command.contains("/etc/sluice/pipelines/")));
    let pipeline = std::fs::read_to_string(repo_root().join("pipelines/kafka-marketing.toml")).expect("pipeline");
    assert!(pipeline.contains("plugin = \"../build/plugins/"), "the pipeline's plugins are where the install puts them");
}

#[test]
fn the_kubernetes_manifests_parse_and_their_pipeline_validates() {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/sluice.yaml")).expect("manifest");
    let documents = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(documents.len(), 2);
    let config_map = &documents[0];
    assert_eq!(config_map["kind"].as_str(), Some("ConfigMap"));
    let deployment = &documents[1];
    assert_eq!(deployment["kind"].as_str(), Some("Deployment"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["terminationGracePeriodSeconds"].as_i64().is_some_and(|seconds| seconds > 300), "a drain may take delivery.timeout.ms");
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/ready"));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/health"));
    let args: Vec<&str> = pod["containers"][0]["args"].as_vec().expect("args").iter().filter_map(|arg| arg.as_str()).collect();
    assert_eq!(args.first(), Some(&"run"));
    assert_eq!(args.last(), Some(&"/etc/sluice/pipeline.toml"));
    let labels = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(labels, &pod_labels(deployment), "the selector matches the pod template");

    // The pipeline it mounts, with the image's plugin directory and secret replaced.
    let pipeline = config_map["data"]["pipeline.toml"].as_str().expect("pipeline.toml");
    let plugins = repo_root().join("build/plugins");
    let local =
        pipeline.replace("/opt/sluice/plugins", &plugins.display().to_string()).replace(r#"{ env = "KAFKA_PASSWORD" }"#, r#""secret""#);
    let scratch = Scratch::new();
    let path = scratch.write("pipeline.toml", &local);
    if let Err(error) = sluice::commands::validate(&path, registry()) {
        panic!("the Kubernetes pipeline is invalid:\n{error}");
    }
}

fn pod_labels(deployment: &yaml_rust2::Yaml) -> yaml_rust2::Yaml {
    deployment["spec"]["template"]["metadata"]["labels"].clone()
}

/// Every name a scrape can show: each family touched once, then encoded (a family without a
/// series is not written), histograms with their `_bucket`, `_sum` and `_count` series.
fn exposed_metric_names() -> std::collections::BTreeSet<String> {
    use sluice::monitor::{Metrics, SwapOutcome};
    let metrics = Metrics::default();
    let mut task = metrics.task("p", "t").expect("enabled");
    task.watermark(1_000, 2_000);
    task.checkpoint_saved(std::time::Duration::from_millis(3), 10);
    let _source = metrics.source("p", "s", "t");
    let mut operator = metrics.operator("p", "o", "t", 1 << 20).expect("enabled");
    operator.plugin.counter_add("c", 1);
    operator.plugin.gauge_set("g", 1.0);
    let _sink = metrics.sink("p", "k");
    metrics.dead_letter("p", "o", "trap");
    metrics.swap("p", "o", SwapOutcome { swapped: true, stall: std::time::Duration::ZERO, new_digest: "b" });
    metrics.consumer_lag("p", "topic", 0, 5);
    metrics.commit("p", "s", true);
    let _late = metrics.source_late_dropped("p", "s");
    let _rounds = metrics.checkpoint_rounds("p");
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.encode().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("name and type");
        names.insert(name.to_owned());
        if kind == "histogram" {
            names.extend(["_bucket", "_sum", "_count"].map(|suffix| format!("{name}{suffix}")));
        }
    }
    names
}

/// The `sluice_…` names in `text`.
fn metric_names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    for (start, _) in text.match_indices("sluice_") {
        let name: String = text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        found.insert(name);
    }
    found
}

#[test]
fn the_grafana_dashboard_and_the_metrics_reference_use_the_names_a_scrape_shows() {
    let exposed = exposed_metric_names();
    let families = exposed.iter().filter(|name| !name.ends_with("_bucket") && !name.ends_with("_sum") && !name.ends_with("_count"));
    assert_eq!(families.count(), 30, "every family is exposed: {exposed:?}");
    let dashboard = std::fs::read_to_string(repo_root().join("deploy/grafana/sluice-dashboard.json")).expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(json["panels"].as_array().is_some_and(|panels| panels.len() >= 10));
    let unknown: Vec<_> = metric_names_in(&dashboard).into_iter().filter(|name| !exposed.contains(name)).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics Sluice does not expose: {unknown:?}");
    let shown: Vec<String> = metric_names_in(&dashboard)
        .into_iter()
        .map(|name| ["_bucket", "_sum", "_count"].iter().fold(name.to_string(), |name, suffix| name.trim_end_matches(suffix).to_owned()))
        .collect();
    let families = exposed.iter().filter(|name| !name.ends_with("_bucket") && !name.ends_with("_sum") && !name.ends_with("_count"));
    let missing: Vec<_> = families.filter(|name| !shown.iter().any(|shown| shown == *name)).collect();
    assert!(missing.is_empty(), "docs/metrics.md promises a dashboard of every metric; it lacks {missing:?}");
    let reference = std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    let families = exposed.iter().filter(|name| !name.ends_with("_bucket") && !name.ends_with("_sum") && !name.ends_with("_count"));
    let undocumented: Vec<_> = families.filter(|name| !reference.contains(&format!("`{name}`"))).collect();
    assert!(undocumented.is_empty(), "docs/metrics.md does not document {undocumented:?}");
    let stale: Vec<_> = metric_names_in(&reference).into_iter().filter(|name| !exposed.contains(name)).collect();
    assert!(stale.is_empty(), "docs/metrics.md names metrics Sluice does not expose: {stale:?}");
}

#[test]
fn prometheus_scrapes_the_port_the_kubernetes_pods_serve_metrics_on() {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/sluice.yaml")).expect("manifest");
    let documents = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let template = &documents[1]["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    let port = annotations["prometheus.io/port"].as_str().expect("a port annotation");
    let container = &template["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_vec().expect("args").iter().filter_map(|arg| arg.as_str()).collect();
    let metrics = args.iter().position(|arg| *arg == "--metrics").map(|at| args[at + 1]).expect("--metrics");
    assert!(metrics.ends_with(&format!(":{port}")), "--metrics {metrics} serves the annotated port {port}");
    assert_eq!(container["ports"][0]["containerPort"].as_i64().map(|port| port.to_string()).as_deref(), Some(port));
    let config = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml")).expect("prometheus.yml");
    let config = &yaml_rust2::YamlLoader::load_from_str(&config).expect("valid YAML")[0];
    let jobs = config["scrape_configs"].as_vec().expect("scrape_configs");
    assert!(jobs.iter().any(|job| job["kubernetes_sd_configs"].as_vec().is_some()), "a job finds the pods");
    // The binary accepts the manifest's arguments (the pipeline file aside).
    let help = crate::support::sluice(&repo_root(), &["run", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(help.contains(flag), "`sluice run` has no {flag}");
    }
}
