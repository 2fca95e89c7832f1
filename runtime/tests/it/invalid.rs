//! Config-error golden tests: each `pipelines/invalid/<case>.toml` fails validation with
//! exactly the text in `<case>.err` (paths relative to the repository root), each case its own
//! test so that one failure does not hide another.
//! Set `SLUICE_UPDATE_GOLDEN=1` to rewrite the `.err` files after an intended change.

use sluice::commands::CommandError;

use crate::support::{registry, repo_root};

/// Validates `pipelines/invalid/<name>.toml` and compares the diagnostics with `<name>.err`.
fn check_case(name: &str) {
    let root = repo_root();
    let case = root.join("pipelines/invalid").join(format!("{name}.toml"));
    let message = match sluice::commands::validate(&case, registry()) {
        Ok(_) => panic!("{} validated, but it is meant to be invalid", case.display()),
        Err(CommandError::Invalid(diagnostics)) => diagnostics.to_string(),
        Err(other) => panic!("{}: expected diagnostics, got: {other}", case.display()),
    };
    let message = format!("{}\n", message.replace(&format!("{}/", root.display()), ""));
    let expected_path = case.with_extension("err");
    if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &message).expect("write .err file");
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(message == expected, "--- {}\nexpected:\n{expected}\nactual:\n{message}", case.display());
}

macro_rules! invalid_cases {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_case($name);
            }
        )*

        /// Every case with a test, to catch a case file that has none.
        const CASES: &[&str] = &[$($name),*];
    };
}

invalid_cases! {
    bad_duration => "bad-duration",
    bad_memory_limit => "bad-memory-limit",
    bad_name => "bad-name",
    bad_parallelism => "bad-parallelism",
    bad_rate => "bad-rate",
    batch_size_negative => "batch-size-negative",
    call_timeout_zero => "call-timeout-zero",
    checkpoint_interval_below_a_millisecond => "checkpoint-interval-below-a-millisecond",
    checkpoint_interval_zero => "checkpoint-interval-zero",
    config_as_tables => "config-as-tables",
    config_not_a_number => "config-not-a-number",
    config_refused => "config-refused",
    config_refused_by_a_python_plugin => "config-refused-by-a-python-plugin",
    console_keep_negative => "console-keep-negative",
    control_character => "control-character",
    date_time_unquoted => "date-time-unquoted",
    dead_letter_stderr_path => "dead-letter-stderr-path",
    deep_table_header => "deep-table-header",
    detector_refused => "detector-refused",
    duration_too_long => "duration-too-long",
    every_error_reported => "every-error-reported",
    exactly_once_file_sink => "exactly-once-file-sink",
    exactly_once_local_source => "exactly-once-local-source",
    exactly_once_read_uncommitted => "exactly-once-read-uncommitted",
    exactly_once_transaction_timeout => "exactly-once-transaction-timeout",
    file_sink_cannot_be_created => "file-sink-cannot-be-created",
    file_sink_kernel_file => "file-sink-kernel-file",
    file_sink_name_too_long => "file-sink-name-too-long",
    file_sink_standard_output => "file-sink-standard-output",
    file_sink_trailing_slash => "file-sink-trailing-slash",
    file_sink_under_a_file => "file-sink-under-a-file",
    file_source_directory => "file-source-directory",
    generator_anomaly_category => "generator-anomaly-category",
    generator_anomaly_price_factor => "generator-anomaly-price-factor",
    granted_file_missing => "granted-file-missing",
    graph_cycle => "graph-cycle",
    graph_input_listed_twice => "graph-input-listed-twice",
    graph_input_name_invalid => "graph-input-name-invalid",
    graph_name_given_twice => "graph-name-given-twice",
    graph_sink_input_listed_twice => "graph-sink-input-listed-twice",
    graph_sink_without_input => "graph-sink-without-input",
    graph_unknown_input => "graph-unknown-input",
    graph_unknown_output => "graph-unknown-output",
    graph_unread_side_output => "graph-unread-side-output",
    graph_unused_node => "graph-unused-node",
    inputs_as_a_table => "inputs-as-a-table",
    inputs_as_tables => "inputs-as-tables",
    join_inputs => "join-inputs",
    kafka_broker_port => "kafka-broker-port",
    kafka_broker_protocol => "kafka-broker-protocol",
    kafka_group_empty => "kafka-group-empty",
    kafka_parallelism => "kafka-parallelism",
    kafka_pattern_and_properties => "kafka-pattern-and-properties",
    kafka_pattern_nul => "kafka-pattern-nul",
    kafka_properties_together => "kafka-properties-together",
    kafka_property_fraction => "kafka-property-fraction",
    kafka_property_of_another_type => "kafka-property-of-another-type",
    kafka_reserved_property => "kafka-reserved-property",
    kafka_secret_unset => "kafka-secret-unset",
    kafka_sink_consumer_property => "kafka-sink-consumer-property",
    kafka_sink_is_a_pipeline_topic => "kafka-sink-is-a-pipeline-topic",
    kafka_sink_is_its_source => "kafka-sink-is-its-source",
    kafka_source_producer_property => "kafka-source-producer-property",
    kafka_topic_listed_twice => "kafka-topic-listed-twice",
    kafka_topic_read_by_two_sources => "kafka-topic-read-by-two-sources",
    kafka_topics_and_pattern => "kafka-topics-and-pattern",
    kafka_with_local_source => "kafka-with-local-source",
    key_by_field_twice => "key-by-field-twice",
    key_by_missing_field => "key-by-missing-field",
    memory_limit_above_4gib => "memory-limit-above-4gib",
    memory_limit_below_start => "memory-limit-below-start",
    mistake_inside_a_typed_table => "mistake-inside-a-typed-table",
    nexmark_option_out_of_range => "nexmark-option-out-of-range",
    no_source => "no-source",
    not_utf8 => "not-utf8",
    old_plugin_version => "old-plugin-version",
    order_unknown => "order-unknown",
    order_without_exchange => "order-without-exchange",
    output_aliases_input => "output-aliases-input",
    output_directory_missing => "output-directory-missing",
    outputs_share_a_path => "outputs-share-a-path",
    path_with_nul => "path-with-nul",
    plugin_config_unknown_key => "plugin-config-unknown-key",
    plugin_empty => "plugin-empty",
    plugin_missing => "plugin-missing",
    plugin_pin_malformed => "plugin-pin-malformed",
    plugin_value_out_of_range => "plugin-value-out-of-range",
    repartition_partitions_without_kafka => "repartition-partitions-without-kafka",
    reserved_config_key => "reserved-config-key",
    secret_in_mask_config => "secret-in-mask-config",
    secret_not_a_table => "secret-not-a-table",
    secret_not_env => "secret-not-env",
    secret_unset => "secret-unset",
    sink_key_empty => "sink-key-empty",
    sinks_in_single_brackets => "sinks-in-single-brackets",
    snapshot_always_traps => "snapshot-always-traps",
    state_dir_in_proc => "state-dir-in-proc",
    state_dir_is_a_sink => "state-dir-is-a-sink",
    state_dir_not_a_directory => "state-dir-not-a-directory",
    state_dir_under_a_file => "state-dir-under-a-file",
    state_dir_with_stdin => "state-dir-with-stdin",
    stdin_read_twice => "stdin-read-twice",
    syntax_error => "syntax-error",
    table_given_twice => "table-given-twice",
    table_written_as_list => "table-written-as-list",
    timestamp_field_empty => "timestamp-field-empty",
    unknown_key => "unknown-key",
    unknown_source_type => "unknown-source-type",
    variable_unset => "variable-unset",
    variable_value_refused => "variable-value-refused",
    wasm_file_given => "wasm-file-given",
    wrong_type => "wrong-type",
    wrong_world => "wrong-world",
}

#[test]
fn every_invalid_pipeline_file_has_its_own_test() {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("pipelines/invalid"))
        .expect("pipelines/invalid exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
        .filter_map(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .collect();
    files.sort();
    assert_eq!(files, CASES, "add each new case file to invalid_cases! in runtime/tests/it/invalid.rs");
}

#[test]
fn two_outputs_on_one_named_pipe_are_refused_as_two_on_one_file_are() {
    let scratch = crate::support::Scratch::new();
    let fifo = scratch.path("results.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let path = scratch.pipeline(
        "[pipeline]\nname = \"fifo\"\n\n[[sources]]\ntype = \"generator\"\ncount = 10\n\n[[sinks]]\nname = \"one\"\ntype = \"file\"\npath = \"results.fifo\"\n\n[[sinks]]\nname = \"two\"\ntype = \"file\"\npath = \"results.fifo\"\n",
    );
    let message = match sluice::commands::validate(&path, registry()) {
        Err(CommandError::Invalid(diagnostics)) => diagnostics.to_string(),
        other => panic!("expected diagnostics, got {:?}", other.map(|_| ())),
    };
    assert!(message.contains("sink \"two\"") && message.contains("two writers would interleave"), "{message}");
}

#[test]
fn a_named_pipe_as_a_file_source_is_refused_with_the_stdin_source_suggested() {
    let scratch = crate::support::Scratch::new();
    let fifo = scratch.path("events.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let path = scratch
        .pipeline("[pipeline]\nname = \"fifo\"\n\n[[sources]]\ntype = \"file\"\npath = \"events.fifo\"\n\n[[sinks]]\ntype = \"stdout\"\n");
    let message = match sluice::commands::validate(&path, registry()) {
        Err(CommandError::Invalid(diagnostics)) => diagnostics.to_string(),
        other => panic!("expected diagnostics, got {:?}", other.map(|_| ())),
    };
    assert!(message.contains("is not a regular file (a named pipe, socket or device)"), "{message}");
    assert!(message.contains("type = \"stdin\""), "{message}");
}
