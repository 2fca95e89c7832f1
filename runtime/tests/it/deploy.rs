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
    assert!(pod["terminationGracePeriodSeconds"].as_i64().is_some_and(|seconds| seconds >= 60));
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
