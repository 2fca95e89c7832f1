//! The second pass over a parsed pipeline file: checks that need the whole picture.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::path::Path;

use sluice_sdk::OperatorInfo;
use toml::Spanned;

use super::{
    CONSOLE_KEEP, ConsoleSinkConfig, DeadLetterConfig, Delivery, Diagnostics, KafkaProperties, KafkaSourceConfig, LoadedPipeline,
    OperatorConfig, Partitioning, RESERVED_CONSUMER_PROPERTIES, RESERVED_PRODUCER_PROPERTIES, SinkConfig, SourceConfig, resolve_property,
    topic_name_problem, topic_pattern,
};
use crate::event_time::parse_rfc3339_millis;
use crate::graph::{self, Graph, Plan, ResolvedInputs};
use crate::kafka::ClientKind;
use crate::source::GENERATOR_CATEGORIES;

/// What a plugin check can find wrong: with the file itself, or with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginProblem {
    /// Unreadable, not a component, or not the operator world.
    Plugin(String),
    /// The plugin's `init` refused the operator's `config` table.
    Config(String),
}

/// Loads a plugin and offers it its configuration and inputs; answers what the operator
/// declares about itself. Implemented by the Wasm layer; the configuration checks do not
/// depend on how plugins run.
pub trait PluginCheck {
    fn check(&self, path: &Path, operator: &OperatorConfig, inputs: Vec<String>) -> Result<OperatorInfo, PluginProblem>;
}

/// Every problem with `pipeline` that can be found before it runs; without any, its graph.
pub fn check_pipeline(pipeline: &LoadedPipeline, plugins: &dyn PluginCheck) -> Result<Graph, Diagnostics> {
    let mut problems = Problems { pipeline, found: Diagnostics::default() };
    problems.check_settings();
    problems.check_state_dir();
    problems.check_sources();
    let (resolved, unresolved) = graph::resolve_inputs(pipeline);
    problems.found.extend(unresolved);
    let infos = problems.check_operators(plugins, &resolved);
    problems.check_sinks();
    problems.check_file_aliases();
    problems.check_exactly_once();
    let check = graph::build_graph(pipeline, &resolved, &infos);
    problems.found.extend(check.problems);
    if let Some(graph) = &check.graph {
        problems.check_kafka_graph(graph);
    }
    problems.found.into_result()?;
    check.graph.ok_or_else(|| Diagnostics::single(pipeline.text.diagnostic(None, "the pipeline's graph could not be built")))
}

struct Problems<'p> {
    pipeline: &'p LoadedPipeline,
    found: Diagnostics,
}

/// Most instances of one stage (threads, each with its own Wasm instances).
const MAX_PARALLELISM: usize = 256;
/// Most partitions of a repartition topic Sluice creates.
const MAX_REPARTITION_PARTITIONS: u32 = 10_000;

impl Problems<'_> {
    fn report(&mut self, span: Range<usize>, message: String) {
        self.found.push(self.pipeline.text.diagnostic(Some(span), message));
    }

    fn report_file(&mut self, message: &str) {
        self.found.push(self.pipeline.text.diagnostic(None, message));
    }

    /// Something missing from the file, located at its last line (where it would be added).
    fn report_at_end(&mut self, message: &str) {
        let text = self.pipeline.text.contents();
        let end = text.trim_end().len();
        match text[..end].rfind('\n').map_or(0, |newline| newline + 1) {
            start if start < end => self.report(start..end, message.to_owned()),
            _ => self.report_file(message),
        }
    }

    /// A problem with `key` of `[pipeline]`, located at the key (at the file if it cannot be
    /// found: a default).
    fn report_at_pipeline_value(&mut self, key: &str, message: String) {
        match super::refused_value::top_level_value_span(self.pipeline.text.parsed(), "pipeline", key) {
            Some(span) => self.report(span, message),
            None => self.report_file(&message),
        }
    }

    fn check_settings(&mut self) {
        let checkpoint_interval = self.pipeline.config.pipeline.checkpoint_interval.duration();
        if checkpoint_interval.is_zero() {
            self.report_at_pipeline_value("checkpoint_interval", "checkpoint_interval must be longer than 0 s".to_owned());
        } else if checkpoint_interval < std::time::Duration::from_millis(1) {
            let message = format!(
                "checkpoint_interval must be at least 1ms, got {checkpoint_interval:?}: a checkpoint per batch or more slows a \
                 run many times over and stores no more than one per millisecond would"
            );
            self.report_at_pipeline_value("checkpoint_interval", message);
        }
        let batch_size = &self.pipeline.config.pipeline.batch_size;
        if !(1..=100_000).contains(batch_size.get_ref()) {
            self.report(batch_size.span(), format!("batch_size must be between 1 and 100000, got {}", batch_size.get_ref()));
        }
        if let Some(parallelism) = &self.pipeline.config.pipeline.parallelism
            && !(1..=MAX_PARALLELISM).contains(parallelism.get_ref())
        {
            let message = format!("parallelism must be between 1 and {MAX_PARALLELISM}, got {}", parallelism.get_ref());
            self.report(parallelism.span(), message);
        }
        let kafka = self.pipeline.config.sources.iter().any(|source| matches!(source.get_ref(), SourceConfig::Kafka(_)));
        if let Some(parallelism) = self.pipeline.config.pipeline.parallelism.as_ref().filter(|_| kafka) {
            let message = "parallelism applies to pipelines without Kafka sources: this one runs one task per partition it \
                           is assigned (its keyed exchanges, one per partition of their repartition topics: \
                           repartition_partitions), so remove it";
            self.report(parallelism.span(), message.to_owned());
        }
        if let Some(partitions) = &self.pipeline.config.pipeline.repartition_partitions
            && !(1..=MAX_REPARTITION_PARTITIONS).contains(partitions.get_ref())
        {
            let message =
                format!("repartition_partitions must be between 1 and {MAX_REPARTITION_PARTITIONS}, got {}", partitions.get_ref());
            self.report(partitions.span(), message);
        }
        if let Some(partitions) = self.pipeline.config.pipeline.repartition_partitions.as_ref().filter(|_| !kafka) {
            let message = "repartition_partitions applies to pipelines with Kafka sources (the partitions of their repartition \
                           topics): this one exchanges records between its own tasks, as many as `parallelism`, so remove it";
            self.report(partitions.span(), message.to_owned());
        }
    }

    fn check_sources(&mut self) {
        let sources = &self.pipeline.config.sources;
        if sources.is_empty() {
            self.report_at_end("the pipeline has no source: add a [[sources]] table");
        }
        self.check_unique("source", sources.iter().map(|s| (s.get_ref().name(), s.span())));
        for source in sources {
            self.check_source(source);
        }
        self.check_stdin_read_once();
        self.check_kafka_topics_read_once();
    }

    /// Two Kafka sources of one consumer group on one cluster must not read one topic: the
    /// group would share its partitions between them, and a partition moving from one to the
    /// other would be read again from the start (each source keeps its own checkpoints).
    fn check_kafka_topics_read_once(&mut self) {
        let pipeline = self.pipeline.config.pipeline.name.get_ref().to_string();
        let mut readers: Vec<(String, &KafkaSourceConfig, String)> = Vec::new();
        let mut twice = Vec::new();
        for source in &self.pipeline.config.sources {
            let SourceConfig::Kafka(kafka) = source.get_ref() else { continue };
            let name = source.get_ref().name();
            for topic in &kafka.topics {
                let other = readers.iter().find(|(_, reader, read)| {
                    read == topic
                        && reader.group_id(&pipeline) == kafka.group_id(&pipeline)
                        && same_brokers(&reader.brokers, &kafka.brokers)
                });
                if let Some((first, _, _)) = other {
                    let group = kafka.group_id(&pipeline);
                    twice.push((source.span(), format!("sources \"{first}\" and \"{name}\" both read topic \"{topic}\" in consumer group \"{group}\": the group would give each source only some of its partitions, and a partition moving from one to the other would go on without the state and position the first kept (from the start with `start = \"earliest\"`); read it in one source, or give one source its own `group`")));
                }
            }
            readers.extend(kafka.topics.iter().map(|topic| (name.clone(), kafka, topic.clone())));
        }
        for (span, message) in twice {
            self.report(self.value_in(&span, "topics"), message);
        }
    }

    /// Standard input is one stream: a second `stdin` source would read none of it.
    fn check_stdin_read_once(&mut self) {
        let mut readers = self.pipeline.config.sources.iter().filter(|source| matches!(source.get_ref(), SourceConfig::Stdin(_)));
        let Some(first) = readers.next() else { return };
        let first = first.get_ref().name().to_owned();
        for again in readers.collect::<Vec<_>>() {
            self.report(
                self.value_in(&again.span(), "type"),
                format!(
                    "source \"{}\": standard input is read by source \"{first}\" already, and there is only one: read it with one \
                     source and list \"{first}\" in the `inputs` of each operator or sink that needs its records",
                    again.get_ref().name()
                ),
            );
        }
    }

    fn check_source(&mut self, source: &Spanned<SourceConfig>) {
        let span = source.span();
        let name = source.get_ref().name();
        match source.get_ref() {
            SourceConfig::Generator(generator) => {
                match parse_rfc3339_millis(&generator.start_time) {
                    Err(problem) => self.report(self.key_in(&span, "start_time"), format!("source \"{name}\": start_time {problem}")),
                    Ok(start) if !event_times_fit(start, generator.count, generator.event_interval.millis()) => self.report(
                        self.key_in(&span, "count"),
                        format!(
                            "source \"{name}\": {} records {} ms apart from start_time go past the latest event time a record can \
                             have (i64::MAX ms): lower count or event_interval",
                            generator.count.unwrap_or_default(),
                            generator.event_interval.millis()
                        ),
                    ),
                    Ok(_) => {}
                }
                if generator.users == 0 || generator.items == 0 {
                    let key = if generator.users == 0 { "users" } else { "items" };
                    self.report(self.value_in(&span, key), format!("source \"{name}\": {key} must be at least 1, not 0"));
                }
                let anomalies = self.value_in(&span, "anomalies");
                for anomaly in &generator.anomalies {
                    if let Err(problem) = parse_rfc3339_millis(&anomaly.start) {
                        self.report(anomalies.clone(), format!("source \"{name}\": anomaly start {problem}"));
                    }
                    if !(anomaly.price_factor > 0.0 && anomaly.price_factor <= MAX_PRICE_FACTOR) {
                        self.report(
                            anomalies.clone(),
                            format!(
                                "source \"{name}\": anomaly price_factor must be a positive number up to 1000000000 (prices stay finite), got {}",
                                super::values::short_number(anomaly.price_factor)
                            ),
                        );
                    }
                    if let Some(category) = anomaly.category.as_deref().filter(|category| !GENERATOR_CATEGORIES.contains(category)) {
                        self.report(
                            anomalies.clone(),
                            format!(
                                "source \"{name}\": anomaly category {category:?} is none of the generator's: {}",
                                GENERATOR_CATEGORIES.join(", ")
                            ),
                        );
                    }
                }
            }
            SourceConfig::Nexmark(nexmark) => {
                if let Err(problem) = parse_rfc3339_millis(&nexmark.start_time) {
                    self.report(self.value_in(&span, "start_time"), format!("source \"{name}\": start_time {problem}"));
                }
                let at_least_one = [
                    ("person_proportion", nexmark.person_proportion),
                    ("auction_proportion", nexmark.auction_proportion),
                    ("hot_auction_ratio", nexmark.hot_auction_ratio),
                    ("hot_seller_ratio", nexmark.hot_seller_ratio),
                    ("hot_bidder_ratio", nexmark.hot_bidder_ratio),
                    ("active_people", nexmark.active_people),
                    ("in_flight_auctions", nexmark.in_flight_auctions),
                    ("avg_person_bytes", nexmark.avg_person_bytes),
                    ("avg_auction_bytes", nexmark.avg_auction_bytes),
                    ("avg_bid_bytes", nexmark.avg_bid_bytes),
                ];
                for (key, value) in at_least_one.into_iter().filter(|(_, value)| !(1..=1_000_000).contains(value)) {
                    self.report(self.value_in(&span, key), format!("source \"{name}\": {key} must be between 1 and 1000000, not {value}"));
                }
                if nexmark.bid_proportion > 1_000_000 {
                    let bids = nexmark.bid_proportion;
                    self.report(
                        self.value_in(&span, "bid_proportion"),
                        format!("source \"{name}\": bid_proportion must be between 0 and 1000000, not {bids}"),
                    );
                }
            }
            SourceConfig::File(file) => {
                let problem = match file.path.as_os_str().is_empty() {
                    true => Some("`path` is empty: name the file to read".to_owned()),
                    false => file_source_problem(&self.pipeline.resolve(&file.path)),
                };
                if let Some(problem) = problem {
                    self.report(self.key_in(&span, "path"), format!("source \"{name}\": {problem}"));
                }
                self.check_timestamp_field(&span, &name, file.timestamp_field.as_deref());
            }
            SourceConfig::Stdin(stdin) => {
                self.check_timestamp_field(&span, &name, stdin.timestamp_field.as_deref());
                if let Some(state_dir) = &self.pipeline.config.pipeline.state_dir {
                    self.report(
                        span,
                        format!(
                            "source \"{name}\": standard input cannot be read again, so it cannot resume from the checkpoints in \
                             state_dir {:?}: read a file instead, or remove state_dir",
                            state_dir.display().to_string()
                        ),
                    );
                }
            }
            SourceConfig::Kafka(kafka) => self.check_kafka_source(span, &name, kafka),
        }
    }

    /// An empty `timestamp_field` is a mistake for "unset" rather than a field named "".
    fn check_timestamp_field(&mut self, span: &Range<usize>, name: &str, field: Option<&str>) {
        if field == Some("") {
            self.report(
                self.value_in(span, "timestamp_field"),
                format!("source \"{name}\": `timestamp_field` is empty: name the field holding the event time, or leave it unset for ingestion time"),
            );
        }
    }

    fn check_kafka_source(&mut self, span: Range<usize>, name: &str, kafka: &KafkaSourceConfig) {
        let what = format!("source \"{name}\"");
        match (kafka.topics.is_empty(), &kafka.pattern) {
            (true, None) => self.report(span.clone(), format!("{what}: give `topics` (a list) or a `pattern`")),
            (false, Some(_)) => self.report(span.clone(), format!("{what}: give `topics` or `pattern`, not both")),
            _ => {}
        }
        if let Some(pattern) = kafka.pattern.as_deref().filter(|pattern| pattern.contains('\0')) {
            // librdkafka takes the pattern as a C string, which ends at the first NUL.
            self.report(
                self.value_in(&span, "pattern"),
                format!("{what}: `pattern` = {pattern:?} holds a NUL character, which no topic name has"),
            );
        } else if let Some((pattern, Err(error))) = kafka.pattern.as_deref().map(|pattern| (pattern, topic_pattern(pattern))) {
            // The parser's own report draws the spot on lines of its own: its last line says what.
            let error = error.to_string();
            let why = error.lines().last().unwrap_or_default().trim_start_matches("error: ");
            self.report(self.value_in(&span, "pattern"), format!("{what}: `pattern` = {pattern:?} is not a regular expression: {why}"));
        }
        for topic in kafka.topics.iter().chain([kafka.checkpoint_topic()].iter()) {
            if let Some(problem) = topic_name_problem(topic) {
                self.report(span.clone(), format!("{what}: {problem}"));
            }
        }
        let mut listed = HashSet::new();
        if let Some(twice) = kafka.topics.iter().find(|topic| !listed.insert(topic.as_str())) {
            self.report(self.value_in(&span, "topics"), format!("{what}: topic \"{twice}\" is listed twice in `topics`: list each once"));
        }
        if kafka.topics.contains(&kafka.checkpoint_topic()) {
            let topic = kafka.checkpoint_topic();
            self.report(
                span.clone(),
                format!("{what}: topic \"{topic}\" is the pipeline's checkpoint topic, which holds operator state, not records"),
            );
        }
        if kafka.group.as_deref().is_some_and(|group| group.trim().is_empty()) {
            let at = self.key_in(&span, "group");
            self.report(at, format!("{what}: `group` is empty: name the consumer group, or leave `group` out for the pipeline's name"));
        }
        // A source's properties also serve its checkpoint and repartition producers: what
        // Sluice sets for either is refused.
        let kinds = [ClientKind::Consumer, ClientKind::Producer];
        let reserved: Vec<(&str, &str)> = RESERVED_CONSUMER_PROPERTIES.iter().chain(RESERVED_PRODUCER_PROPERTIES).copied().collect();
        self.check_kafka_client(span, &what, &kafka.brokers, &kafka.properties, &reserved, &kinds);
    }

    /// The Kafka source that reads `topic` (by name or pattern) on `brokers`, if one does.
    fn kafka_source_reading(&self, brokers: &str, topic: &str) -> Option<String> {
        self.pipeline.config.sources.iter().find_map(|source| match source.get_ref() {
            SourceConfig::Kafka(kafka) if same_brokers(&kafka.brokers, brokers) => {
                let by_name = kafka.topics.iter().any(|read| read == topic);
                let by_pattern =
                    kafka.pattern.as_deref().and_then(|pattern| topic_pattern(pattern).ok()).is_some_and(|pattern| pattern.is_match(topic));
                (by_name || by_pattern).then(|| source.get_ref().name())
            }
            _ => None,
        })
    }

    /// What `topic` is to this pipeline's Kafka sources on the same brokers, if it is one of
    /// the topics Sluice keeps for them: a checkpoint topic, or an operator's repartition topic.
    fn pipeline_topic_owner(&self, brokers: &str, topic: &str) -> Option<String> {
        let pipeline = self.pipeline.config.pipeline.name.get_ref().as_str();
        self.pipeline.config.sources.iter().find_map(|source| match source.get_ref() {
            SourceConfig::Kafka(kafka) if same_brokers(&kafka.brokers, brokers) => {
                if kafka.checkpoint_topic() == topic {
                    return Some(format!("the checkpoint topic of source \"{}\"", source.get_ref().name()));
                }
                let group = kafka.group_id(pipeline);
                self.pipeline.config.operators.iter().map(|operator| operator.get_ref().name.get_ref().as_str()).find_map(|operator| {
                    (crate::kafka::repartition::repartition_topic(pipeline, &group, operator) == topic)
                        .then(|| format!("the repartition topic of operator \"{operator}\""))
                })
            }
            _ => None,
        })
    }

    /// Where `key` of the table at `table` is written, or the table when it is not found.
    fn key_in(&self, table: &Range<usize>, key: &str) -> Range<usize> {
        super::refused_value::key_span(self.pipeline.text.parsed(), table.clone(), None, key).unwrap_or(table.clone())
    }

    /// Where the value of `key` of the table at `table` is written, or the table when it is
    /// not found: where a refused value is pointed at.
    fn value_in(&self, table: &Range<usize>, key: &str) -> Range<usize> {
        super::refused_value::value_span(self.pipeline.text.parsed(), table.clone(), key).unwrap_or(table.clone())
    }

    fn check_kafka_client(
        &mut self,
        span: Range<usize>,
        what: &str,
        brokers: &str,
        properties: &KafkaProperties,
        reserved: &[(&str, &'static str)],
        kinds: &[ClientKind],
    ) {
        if brokers.trim().is_empty() {
            self.report(span.clone(), format!("{what}: `brokers` is empty: give host:port[,host:port...]"));
        } else if let Some((broker, protocol)) =
            brokers.split(',').map(str::trim).find_map(|broker| Some((broker, protocol_problem(broker)?)))
        {
            let message = format!(
                "{what}: broker \"{broker}\" begins with \"{protocol}://\", which librdkafka does not know: write host:port, \
                 or begin with PLAINTEXT://, SSL://, SASL_PLAINTEXT:// or SASL_SSL:// (the protocol is set by the property \
                 security.protocol)"
            );
            self.report(self.value_in(&span, "brokers"), message);
        } else if let Some((broker, port)) = brokers.split(',').map(str::trim).find_map(|broker| Some((broker, port_problem(broker)?))) {
            let message = format!("{what}: broker \"{broker}\" has port \"{port}\", which is no port number (1 to 65535)");
            self.report(self.value_in(&span, "brokers"), message);
        }
        let mut refused = false;
        let producer_only = kinds == [ClientKind::Producer];
        for (property, value) in properties {
            if producer_only && crate::kafka::is_consumer_only(property) {
                refused = true;
                let at = super::refused_value::key_span(self.pipeline.text.parsed(), span.clone(), Some("properties"), property);
                let message =
                    format!("{what}: property \"{property}\" is a consumer's, and this client only produces (librdkafka would ignore it)");
                self.report(at.unwrap_or(span.clone()), message);
                continue;
            }
            let problem = match resolve_property(property, value, reserved) {
                Err(problem) => Some(problem.to_string()),
                Ok(text) => crate::kafka::property_problem(property, &text).map(|problem| format!("property \"{property}\": {problem}")),
            };
            if let Some(problem) = problem {
                refused = true;
                let at = super::refused_value::key_span(self.pipeline.text.parsed(), span.clone(), Some("properties"), property);
                self.report(at.unwrap_or(span.clone()), format!("{what}: {problem}"));
            }
        }
        if refused {
            return;
        }
        if let Some(problem) = kinds.iter().find_map(|kind| crate::kafka::client_problem(*kind, properties)) {
            self.report(self.key_in(&span, "properties"), format!("{what}: librdkafka refuses the properties together: {problem}"));
        }
    }

    fn check_kafka_sink(&mut self, span: Range<usize>, what: &str, brokers: &str, topic: &str, properties: &KafkaProperties) {
        if let Some(problem) = topic_name_problem(topic) {
            self.report(span.clone(), format!("{what}: {problem}"));
        }
        if let Some(source) = self.kafka_source_reading(brokers, topic) {
            self.report(
                span.clone(),
                format!(
                    "{what}: topic \"{topic}\" is read by source \"{source}\" on the same brokers: every record written would be \
                     read again, for ever; write to another topic"
                ),
            );
        } else if let Some(owner) = self.pipeline_topic_owner(brokers, topic) {
            self.report(
                span.clone(),
                format!("{what}: topic \"{topic}\" is {owner}, which Sluice writes and reads itself; write to another topic"),
            );
        }
        self.check_kafka_client(span, what, brokers, properties, RESERVED_PRODUCER_PROPERTIES, &[ClientKind::Producer]);
    }

    /// Checks each operator's plugin with its configuration; returns what each declared
    /// (`None` where the plugin could not be checked).
    fn check_operators(&mut self, plugins: &dyn PluginCheck, resolved: &ResolvedInputs) -> Vec<Option<OperatorInfo>> {
        let operators = &self.pipeline.config.operators;
        self.check_unique("operator", operators.iter().map(|o| (o.get_ref().name.get_ref().to_string(), o.get_ref().name.span())));
        self.check_unique_nodes();
        operators
            .iter()
            .enumerate()
            .map(|(index, operator)| self.check_operator(plugins, index, operator, input_names(self.pipeline, resolved, index, operator)))
            .collect()
    }

    fn check_operator(
        &mut self,
        plugins: &dyn PluginCheck,
        index: usize,
        operator: &Spanned<OperatorConfig>,
        inputs: Vec<String>,
    ) -> Option<OperatorInfo> {
        let operator_span = operator.span();
        let operator = operator.get_ref();
        let name = operator.name.get_ref();
        if operator.call_timeout.duration() < MIN_CALL_TIMEOUT {
            self.report(
                self.value_in(&operator_span, "call_timeout"),
                format!(
                    "operator \"{name}\": call_timeout must be at least 10ms (deadlines are kept on the engine's {}ms clock), got {:?}",
                    crate::wasm::EPOCH_TICK.as_millis(),
                    operator.call_timeout.duration()
                ),
            );
        }
        if operator.memory_limit.bytes() > MAX_MEMORY_LIMIT {
            self.report(
                self.value_in(&operator_span, "memory_limit"),
                format!(
                    "operator \"{name}\": memory_limit must be at most 4GiB (a WebAssembly memory cannot grow past 4 GiB), got {} bytes",
                    operator.memory_limit.bytes()
                ),
            );
        }
        if operator.plugin.get_ref().as_os_str().is_empty() {
            self.report(operator.plugin.span(), format!("operator \"{name}\": `plugin` is empty: it names a .wasm component file"));
            return None;
        }
        let path = self.pipeline.resolve(operator.plugin.get_ref());
        if let Some(problem) = plugin_file_problem(&path) {
            self.report(operator.plugin.span(), format!("operator \"{name}\": {problem}"));
            return None;
        }
        if let Some(config) = operator.config.as_ref().filter(|config| config.get_ref().contains_key("sluice_files")) {
            self.report(config.span(), format!("operator \"{name}\": `sluice_files` is reserved for the contents of granted files: grant files with `files = {{ name = \"path\" }}`"));
            return None;
        }
        if let Some(config) = operator.config.as_ref().filter(|config| config.get_ref().contains_key("sluice_secrets")) {
            self.report(config.span(), format!("operator \"{name}\": `sluice_secrets` is reserved for the values of secrets: give secrets with `secrets = {{ name = {{ env = \"VARIABLE\" }} }}`"));
            return None;
        }
        if !self.check_granted_files(operator) || !self.check_secrets(operator) {
            return None;
        }
        if let Some(config) = &operator.config
            && let Some(at) = non_finite_number(config.get_ref())
        {
            let reason = format!("{at}: nan and inf are not numbers a plugin can be given (its configuration is JSON): write a number");
            let span = super::refused_value::refused_value_span(self.pipeline.text.parsed(), index, &reason).unwrap_or(config.span());
            self.report(span, format!("operator \"{name}\": {reason}"));
            return None;
        }
        if let Some(pin) = &operator.sha256
            && let Err(problem) = super::parse_pinned_digest(pin.get_ref())
        {
            self.report(pin.span(), format!("operator \"{name}\": {problem}"));
            return None;
        }
        match plugins.check(&path, operator, inputs) {
            Ok(info) => Some(info),
            Err(PluginProblem::Plugin(reason)) => {
                // A memory limit below what the plugin starts with is the limit's mistake.
                let limit = reason
                    .contains("its memory_limit (")
                    .then(|| super::refused_value::value_span(self.pipeline.text.parsed(), operator_span.clone(), "memory_limit"))
                    .flatten();
                self.report(limit.unwrap_or(operator.plugin.span()), format!("operator \"{name}\": {reason}"));
                None
            }
            Err(PluginProblem::Config(reason)) => {
                // At the refused value when the reason names its path, else at the whole table.
                let config_span = operator.config.as_ref().map_or(operator_span, Spanned::span);
                let span = super::refused_value::refused_value_span(self.pipeline.text.parsed(), index, &reason).unwrap_or(config_span);
                self.report(span, format!("operator \"{name}\": the plugin refused its configuration: {reason}"));
                None
            }
        }
    }

    /// Inputs name sources and operators alike, so no source may share an operator's name.
    fn check_unique_nodes(&mut self) {
        let config = &self.pipeline.config;
        let sources: HashSet<String> = config.sources.iter().map(|source| source.get_ref().name()).collect();
        for operator in &config.operators {
            let name = operator.get_ref().name.get_ref().to_string();
            if sources.contains(&name) {
                self.report(
                    operator.get_ref().name.span(),
                    format!("operator \"{name}\" has the name of a source: inputs could not tell them apart; rename one"),
                );
            }
        }
    }

    /// A pipeline that reads Kafka scales out the Kafka way, with repartition topics between
    /// its stages; local sources would be read again by every process.
    fn check_kafka_graph(&mut self, graph: &Graph) {
        let sources = &self.pipeline.config.sources;
        let kafka: Vec<&Spanned<SourceConfig>> =
            sources.iter().filter(|source| matches!(source.get_ref(), SourceConfig::Kafka(_))).collect();
        if kafka.is_empty() {
            return;
        }
        for source in sources.iter().filter(|source| !matches!(source.get_ref(), SourceConfig::Kafka(_))) {
            self.report(
                source.span(),
                format!(
                    "source \"{}\": a pipeline that reads Kafka scales out over processes, each of which would read this source again: \
                     read Kafka topics only, or run this source in a pipeline of its own (which may write to Kafka)",
                    source.get_ref().name()
                ),
            );
        }
        let exchanges = !Plan::of(graph).exchanges.is_empty();
        let with_pattern = kafka.iter().find(|source| matches!(source.get_ref(), SourceConfig::Kafka(config) if config.pattern.is_some()));
        if let Some(source) = with_pattern.filter(|_| exchanges && self.pipeline.config.pipeline.repartition_partitions.is_none()) {
            self.report(
                source.span(),
                format!(
                    "source \"{}\": with a `pattern`, the number of partitions the repartition topics need cannot be known in \
                     advance: set [pipeline] repartition_partitions",
                    source.get_ref().name()
                ),
            );
        }
        if kafka.len() > 1 && exchanges {
            self.report(
                kafka[1].span(),
                "a pipeline with keyed exchanges reads Kafka through one source: list every topic in that source's `topics`".into(),
            );
        }
    }

    /// Every secret's environment variable must be set; false if one is not.
    fn check_secrets(&mut self, operator: &OperatorConfig) -> bool {
        let Some(secrets) = &operator.secrets else { return true };
        match operator.secret_values() {
            Ok(_) => true,
            Err(missing) => {
                self.report(secrets.span(), format!("operator \"{}\": {missing}", operator.name.get_ref()));
                false
            }
        }
    }

    /// Every granted file must exist and be small enough; false if one is not.
    fn check_granted_files(&mut self, operator: &OperatorConfig) -> bool {
        let Some(files) = &operator.files else { return true };
        let name = operator.name.get_ref();
        let mut usable = true;
        for (file, path) in files.get_ref() {
            let path = self.pipeline.resolve(path);
            if let Some(problem) = nul_problem(&path) {
                self.report(files.span(), format!("operator \"{name}\": granted file \"{file}\": {problem}"));
                usable = false;
                continue;
            }
            let problem = match crate::bounded_read::read_bounded_text(&path, super::MAX_GRANTED_FILE) {
                Ok(_) => None,
                Err(crate::bounded_read::BoundedReadError::Io(error)) => Some(format!("cannot be read: {error}")),
                Err(error) => Some(error.to_string()),
            };
            if let Some(problem) = problem {
                self.report(files.span(), format!("operator \"{name}\": granted file \"{file}\" ({}) {problem}", path.display()));
                usable = false;
            }
        }
        usable
    }

    fn check_sinks(&mut self) {
        let sinks = &self.pipeline.config.sinks;
        if sinks.is_empty() {
            self.report_at_end("the pipeline has no sink: add a [[sinks]] table");
        }
        self.check_unique("sink", sinks.iter().map(|s| (s.get_ref().name(), s.span())));
        for sink in sinks {
            let what = format!("sink \"{}\"", sink.get_ref().name());
            if sink.get_ref().key().is_some_and(<[_]>::is_empty) {
                self.report(
                    self.value_in(&sink.span(), "key"),
                    format!("{what}: `key` is empty: name the fields whose values make each record's key, or leave `key` out"),
                );
            }
            match sink.get_ref() {
                SinkConfig::File(file) => self.check_directory(sink.span(), &what, &file.path),
                SinkConfig::Kafka(kafka) => self.check_kafka_sink(sink.span(), &what, &kafka.brokers, &kafka.topic, &kafka.properties),
                SinkConfig::Stdout(_) => {}
                SinkConfig::Console(ConsoleSinkConfig { keep, chart, .. }) => {
                    if !CONSOLE_KEEP.contains(keep) {
                        self.report(
                            self.value_in(&sink.span(), "keep"),
                            format!("{what}: `keep` must be between 1 and 100000 records, not {keep}"),
                        );
                    }
                    let axes = [("x", &chart.x), ("y", &chart.y), ("series", &chart.series)];
                    if let Some((axis, _)) = axes.iter().find(|(_, field)| field.as_deref().is_some_and(|field| field.trim().is_empty())) {
                        self.report(
                            self.value_in(&sink.span(), "chart"),
                            format!(
                                "{what}: chart `{axis}` is empty: name a field of the records, or leave it out to let the console choose"
                            ),
                        );
                    }
                }
            }
        }
        if let Some(dead_letter) = &self.pipeline.config.dead_letter {
            match dead_letter.get_ref() {
                DeadLetterConfig::File(file) => self.check_directory(dead_letter.span(), "the dead-letter file", &file.path),
                DeadLetterConfig::Kafka(kafka) => {
                    self.check_kafka_sink(dead_letter.span(), "the dead-letter topic", &kafka.brokers, &kafka.topic, &kafka.properties)
                }
                DeadLetterConfig::Stderr(_) => {}
            }
        } else {
            self.check_default_dead_letter_file();
        }
    }

    /// No output may overwrite an input or another output.
    fn check_file_aliases(&mut self) {
        for (span, message) in super::aliases::aliased_files(self.pipeline) {
            self.found.push(self.pipeline.text.diagnostic(span, message));
        }
    }

    /// `delivery = "exactly-once"` commits everything through one transactional producer, so
    /// every input and output must be on the same Kafka cluster and fit that producer.
    fn check_exactly_once(&mut self) {
        let config = &self.pipeline.config;
        if config.pipeline.delivery != Delivery::ExactlyOnce {
            return;
        }
        let why = "delivery = \"exactly-once\" commits outputs, dead letters, checkpoints and offsets in one Kafka transaction";
        let kafka_sources: Vec<_> = config
            .sources
            .iter()
            .filter_map(|source| match source.get_ref() {
                SourceConfig::Kafka(kafka) => Some(kafka),
                _ => None,
            })
            .collect();
        let needs = format!("{why}: the pipeline needs exactly one source, of type \"kafka\"");
        let [source] = kafka_sources.as_slice() else {
            // Point at the first source that is not Kafka, or the second Kafka source.
            let local = config.sources.iter().find(|source| !matches!(source.get_ref(), SourceConfig::Kafka(_)));
            return match local.or(config.sources.get(1)) {
                Some(offending) => self.report(offending.span(), format!("source \"{}\": {needs}", offending.get_ref().name())),
                None => self.report_file(&needs),
            };
        };
        if let Some(other) = config.sources.iter().find(|other| !matches!(other.get_ref(), SourceConfig::Kafka(_))) {
            return self.report(other.span(), format!("source \"{}\": {needs}", other.get_ref().name()));
        }
        // Every output, as (span, what, brokers, properties): all go through one producer.
        let mut outputs: Vec<(Range<usize>, String, &str, &KafkaProperties)> = Vec::new();
        for sink in &config.sinks {
            let what = format!("sink \"{}\"", sink.get_ref().name());
            match sink.get_ref() {
                SinkConfig::Kafka(kafka) => {
                    if kafka.partitioning != Partitioning::Key {
                        self.report(sink.span(), format!("{what}: {why}, through one producer: use `partitioning = \"key\"`"));
                    }
                    outputs.push((sink.span(), what, &kafka.brokers, &kafka.properties));
                }
                _ => self.report(sink.span(), format!("{what}: {why}: every sink must be of type \"kafka\"")),
            }
        }
        match config.dead_letter.as_ref().map(|dead_letter| (dead_letter.span(), dead_letter.get_ref())) {
            Some((span, DeadLetterConfig::Kafka(kafka))) => {
                outputs.push((span, "the dead-letter topic".into(), &kafka.brokers, &kafka.properties))
            }
            Some((span, _)) => self.report(span, format!("{why}: [dead_letter] must be of type \"kafka\"")),
            None => {
                let message = format!("{why}: add a [dead_letter] table of type \"kafka\"");
                match super::refused_value::top_level_value_span(self.pipeline.text.parsed(), "pipeline", "delivery") {
                    Some(at) => self.report(at, message),
                    None => self.report_file(&message),
                }
            }
        }
        // Its consumer reads the repartition topics too: aborted records must stay unread.
        if let Some(level) = source.properties.get("isolation.level")
            && !matches!(level, crate::config::PropertyValue::Text(level) if level == "read_committed")
        {
            let (source_span, source_name) =
                config.sources.first().map(|source| (source.span(), source.get_ref().name())).unwrap_or_default();
            let at =
                super::refused_value::value_span_within(self.pipeline.text.parsed(), source_span.clone(), "properties", "isolation.level");
            self.report(
                at.unwrap_or(source_span),
                format!(
                    "source \"{source_name}\": {why}: its consumer reads the repartition topics too, and must not read aborted \
                     records: leave isolation.level out (it is read_committed)"
                ),
            );
        }
        let first = outputs.first().map(|output| (output.1.clone(), output.3));
        let checkpoint_interval = self.pipeline.config.pipeline.checkpoint_interval.duration();
        let round_timeout = crate::kafka::round_timeout(self.pipeline.config.round_limit());
        let mut timeout_said = false;
        for (span, what, brokers, properties) in outputs {
            // Said once: every output has the same properties, or is refused for that below.
            if let Some(problem) =
                crate::kafka::transaction_timeout_problem(properties, checkpoint_interval, round_timeout).filter(|_| !timeout_said)
            {
                timeout_said = true;
                let at = super::refused_value::value_span_within(
                    self.pipeline.text.parsed(),
                    span.clone(),
                    "properties",
                    "transaction.timeout.ms",
                );
                self.report(at.unwrap_or(span.clone()), format!("{what}: {problem}"));
            }
            // One cluster, however its addresses are written (`localhost` or `127.0.0.1`).
            if broker_set(brokers) != broker_set(&source.brokers) {
                self.report(span.clone(), format!("{what}: {why}: use the source's brokers ({:?})", source.brokers));
            }
            if let Some((first_what, _)) = first.as_ref().filter(|(_, first)| *first != properties) {
                self.report(
                    span,
                    format!(
                        "{what}: {why}, through one producer: give every output the same `properties` (these differ from {first_what}'s)"
                    ),
                );
            }
        }
    }

    /// An output file: its directory must exist, and the path must not be a directory.
    fn check_directory(&mut self, span: Range<usize>, what: &str, path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let problem = if path.as_os_str().is_empty() {
            Some("`path` is empty: name the file to write".to_owned())
        } else if path.as_os_str().as_bytes().ends_with(b"/") {
            Some(format!("`path` {} ends with a slash, which names a directory: name the file to write", path.display()))
        } else {
            output_file_problem(&self.pipeline.resolve(path))
        };
        if let Some(problem) = problem {
            self.report(self.key_in(&span, "path"), format!("{what}: {problem}"));
        }
    }

    /// The dead-letter file written by default, `<pipeline>.dead-letter.jsonl` in the working
    /// directory, must be writable there: it is opened at the first dead letter, mid-run.
    fn check_default_dead_letter_file(&mut self) {
        let path = DeadLetterConfig::default_file(self.pipeline.config.pipeline.name.get_ref().as_str());
        if let Some(problem) = output_file_problem(&path) {
            self.report_file(&format!("the dead-letter file (by default in the working directory): {problem}; give a [dead_letter] table"));
        }
    }

    /// `state_dir`, when set, must be a directory, or a path one can be made at.
    fn check_state_dir(&mut self) {
        let Some(state_dir) = &self.pipeline.config.pipeline.state_dir else { return };
        let path = self.pipeline.resolve(state_dir);
        let problem = if state_dir.as_os_str().is_empty() {
            Some("state_dir is empty: name a directory, or leave state_dir out".to_owned())
        } else if let Some(problem) = nul_problem(&path) {
            Some(problem)
        } else if let Some(long) = path.components().map(|part| part.as_os_str().len()).find(|length| *length > NAME_MAX) {
            Some(format!("state_dir {}: a name in it is {long} bytes long, more than the {NAME_MAX} a file system takes", path.display()))
        } else if !path.exists() && path.symlink_metadata().is_ok() {
            Some(format!("state_dir {} is a symbolic link that leads nowhere (a missing target, or a loop)", path.display()))
        } else if path.exists() && !path.is_dir() {
            Some(format!("state_dir {} is not a directory", path.display()))
        } else if path.is_dir() {
            let pipeline = path.join(self.pipeline.config.pipeline.name.get_ref().as_str());
            if pipeline.symlink_metadata().is_ok() && !pipeline.is_dir() {
                Some(format!(
                    "{} is not a directory: the pipeline keeps its checkpoints there (state_dir/<pipeline name>)",
                    pipeline.display()
                ))
            } else {
                creation_problem(&path).map(|error| format!("state_dir {} cannot be written in: {error}", path.display()))
            }
        } else if !path.exists() {
            state_dir_creation_problem(&path)
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report_at_pipeline_value("state_dir", problem);
        }
    }

    fn check_unique(&mut self, kind: &str, names: impl Iterator<Item = (String, Range<usize>)>) {
        let mut seen = HashSet::new();
        for (name, span) in names {
            if !seen.insert(name.clone()) {
                self.report(span, format!("two {kind}s are named \"{name}\": give each a distinct `name`"));
            }
        }
    }
}

/// The largest anomaly `price_factor` of the generator: an order's price times it stays a
/// finite number with cents.
const MAX_PRICE_FACTOR: f64 = 1e9;

/// The largest `memory_limit`: a 32-bit WebAssembly memory holds at most 65,536 pages of 64 KiB.
const MAX_MEMORY_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

/// The shortest `call_timeout`: a few ticks of the clock deadlines are kept on, so that a
/// call is not interrupted at a random point of its first tick.
const MIN_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(10);

/// Why the missing directory `path` could not be made, if it could not: the nearest of its
/// ancestors that exists must be a directory one can write in (`run` makes the rest). The
/// kernel is asked by making a file there, since permissions alone do not tell (root may write
/// anywhere but `/proc` and `/sys` refuse new entries).
fn state_dir_creation_problem(path: &Path) -> Option<String> {
    let existing = path.ancestors().skip(1).find(|ancestor| ancestor.as_os_str().is_empty() || ancestor.exists())?;
    let existing = if existing.as_os_str().is_empty() { Path::new(".") } else { existing };
    if !existing.is_dir() {
        return Some(format!("state_dir {} cannot be created: {} is not a directory", path.display(), existing.display()));
    }
    creation_problem(existing).map(|error| format!("state_dir {} cannot be created in {}: {error}", path.display(), existing.display()))
}

/// Whether the event times of `count` generated records, `interval` ms apart from `start`,
/// are all representable (an unbounded generator is not checked: it would take longer than
/// any run to get there at a sane interval).
fn event_times_fit(start: i64, count: Option<u64>, interval: i64) -> bool {
    let Some(count) = count.filter(|count| *count > 0) else { return true };
    i64::try_from(count - 1).ok().and_then(|steps| steps.checked_mul(interval)).and_then(|span| start.checked_add(span)).is_some()
}

/// Why `path` cannot be an operator's plugin, if it cannot: it must be a regular file (what
/// it holds is checked when it is compiled).
fn plugin_file_problem(path: &Path) -> Option<String> {
    let remedy = ": `plugin` names a .wasm component file";
    regular_file_problem(path, "plugin file", remedy, remedy)
}

/// Why `path` cannot be read by a file source, if it cannot: a file source reads a regular
/// file, from byte offsets it can resume at.
fn file_source_problem(path: &Path) -> Option<String> {
    let other = format!(
        " (a named pipe, socket or device): a file source reads a file from offsets it can resume at; read a pipe with a \
         source of type = \"stdin\" (sluice run pipeline.toml < {})",
        path.display()
    );
    regular_file_problem(path, "file", ": `path` names one file", &other)
}

/// The path (`detectors[0].threshold`) of the first `nan` or `inf` in an operator's `config`,
/// which JSON cannot hold: the plugin would be given `null`.
fn non_finite_number(table: &toml::Table) -> Option<String> {
    fn within(value: &toml::Value) -> Option<String> {
        match value {
            toml::Value::Float(number) if !number.is_finite() => Some(String::new()),
            toml::Value::Table(table) => table.iter().find_map(|(key, value)| within(value).map(|rest| join(key, &rest))),
            toml::Value::Array(items) => {
                items.iter().enumerate().find_map(|(index, item)| within(item).map(|rest| join(&format!("[{index}]"), &rest)))
            }
            _ => None,
        }
    }
    fn join(key: &str, rest: &str) -> String {
        if rest.is_empty() || rest.starts_with('[') { format!("{key}{rest}") } else { format!("{key}.{rest}") }
    }
    table.iter().find_map(|(key, value)| within(value).map(|rest| join(key, &rest)))
}

/// Why an output file cannot be written at `path`, if it cannot: a directory, a missing
/// directory, or one (or a file) the process may not write. A symbolic link is followed. The
/// kernel is asked by opening: an existing file for appending (nothing is written), a new one
/// by creating and removing a file beside it, since permissions alone do not tell (root may
/// write anywhere but `/proc` and `/sys` refuse new files).
fn output_file_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(problem) = nul_problem(path) {
        return Some(problem);
    }
    if let Some(stream) = standard_stream(path) {
        return Some(format!(
            "{} is {stream} of a process, not a file: a file output would open it again, truncating what it holds and \
             writing over the process's other writes to it; write to standard output with a sink of type = \"stdout\", and dead letters to \
             standard error with [dead_letter] type = \"stderr\"",
            path.display()
        ));
    }
    let target = link_target(path);
    let shown = match &target {
        Some(target) => format!("{} (a link to {})", path.display(), target.display()),
        None => path.display().to_string(),
    };
    let path = target.as_deref().unwrap_or(path);
    if path.is_dir() {
        return Some(format!("{shown} is a directory: `path` names the file to write"));
    }
    let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if directory.exists() && !directory.is_dir() {
        return Some(format!("{} in {shown} is a file, not a directory", directory.display()));
    }
    if !directory.is_dir() {
        return Some(format!("directory {} of {shown} does not exist", directory.display()));
    }
    if let Some(name) = path.file_name().filter(|name| name.len() > NAME_MAX) {
        return Some(format!("{shown}: the file name is {} bytes long, more than the {NAME_MAX} a file system takes", name.len()));
    }
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() && on_kernel_file_system(path) => {
            Some(format!("{shown} is a file of the kernel (procfs, sysfs or the like), not one to write results to"))
        }
        Ok(metadata) if metadata.is_file() => {
            std::fs::File::options().append(true).open(path).err().map(|error| format!("{shown} cannot be written: {error}"))
        }
        Ok(_) if !permitted(path, libc::W_OK) => Some(format!("{shown} cannot be written: permission denied")),
        Ok(metadata) if metadata.file_type().is_char_device() => {
            device_problem(path).map(|error| format!("{shown} cannot be written: {error}"))
        }
        Ok(_) => None,
        Err(_) => creation_problem(directory).map(|error| format!("{shown} cannot be created in {}: {error}", directory.display())),
    }
}

/// Why the character device at `path` (a terminal, `/dev/null`) cannot be opened for writing,
/// if it cannot: `/dev/tty` without a controlling terminal, say. Opened without waiting and
/// closed at once; a named pipe is not opened here (that would wait for its reader).
fn device_problem(path: &Path) -> Option<std::io::Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options().write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).err()
}

/// Which stream of a process (`the standard output`, `the standard error`, `the standard
/// input`, `file descriptor N`) `path` names, through any chain of symbolic links: `/dev/stdout`,
/// `/dev/fd/1`, `/proc/self/fd/1`, `/proc/<pid>/fd/1`.
pub(super) fn standard_stream(path: &Path) -> Option<String> {
    link_chain(path).iter().find_map(|hop| stream_named(&std::path::absolute(hop).unwrap_or_else(|_| hop.clone())))
}

/// The stream a path names by its spelling alone (see [`standard_stream`]).
fn stream_named(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let descriptor = match text {
        "/dev/stdin" => Some("0"),
        "/dev/stdout" => Some("1"),
        "/dev/stderr" => Some("2"),
        _ => ["/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"].iter().find_map(|prefix| text.strip_prefix(prefix)).or_else(|| {
            text.strip_prefix("/proc/")?.split_once("/fd/").filter(|(pid, _)| pid.bytes().all(|b| b.is_ascii_digit())).map(|(_, fd)| fd)
        }),
    }?;
    Some(match descriptor {
        "0" => "the standard input".to_owned(),
        "1" => "the standard output".to_owned(),
        "2" => "the standard error".to_owned(),
        other => format!("file descriptor {other}"),
    })
}

/// The longest file name (one path component, in bytes) Linux file systems take.
const NAME_MAX: usize = 255;

/// Whether `path` is on a file system of the kernel (procfs, sysfs, cgroup, debugfs...), whose
/// files open for writing but are no output (a write fails, or changes a kernel setting).
fn on_kernel_file_system(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // procfs, sysfs, cgroup and cgroup2, debugfs, tracefs, securityfs (linux/magic.h).
    const KERNEL_FILE_SYSTEMS: [i64; 7] = [0x9fa0, 0x6265_6572, 0x0027_e0eb, 0x6367_7270, 0x6462_6720, 0x7472_6163, 0x7363_6673];
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` room for one `statfs`, which the
    // call fills when it returns 0.
    if unsafe { libc::statfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: filled by the successful call above. (`f_type`'s type varies by platform.)
    #[allow(clippy::unnecessary_cast)]
    let kind = unsafe { stats.assume_init() }.f_type as i64;
    KERNEL_FILE_SYSTEMS.contains(&kind)
}

/// Why `path` cannot name a file, if it holds a NUL character (`"\u0000"` in TOML): no file
/// name can, and the kernel is never asked. The path is shown with the NUL written as `\0`.
fn nul_problem(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .contains(&0)
        .then(|| format!("{} holds a NUL character (\\0), which no file name can hold", path.display().to_string().replace('\0', "\\0")))
}

/// Where a symbolic link at `path` finally points (through a chain of links), each resolved
/// against its link's directory; `None` if `path` is no link.
pub(super) fn link_target(path: &Path) -> Option<std::path::PathBuf> {
    link_chain(path).pop().filter(|last| last != path)
}

/// `path`, then where each symbolic link on the way points, in turn, each resolved against its
/// link's directory: as many links as the kernel follows (ELOOP past them).
fn link_chain(path: &Path) -> Vec<std::path::PathBuf> {
    let mut chain = vec![path.to_path_buf()];
    for _ in 0..40 {
        let current = &chain[chain.len() - 1];
        let Ok(target) = std::fs::read_link(current) else { break };
        let next = match current.parent() {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
        chain.push(next);
    }
    chain
}

/// Why a new file cannot be created in `directory`, if it cannot: one with a name no other
/// file has is made and removed.
fn creation_problem(directory: &Path) -> Option<std::io::Error> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.subsec_nanos());
    for attempt in 0..16 {
        let probe = directory.join(format!(".sluice-validate-{}-{nanos}-{attempt}", std::process::id()));
        match std::fs::File::options().write(true).create_new(true).open(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                return None;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Some(error),
        }
    }
    None
}

/// Whether this process may use `path` as `mode` asks (`libc::R_OK`, `W_OK`, `X_OK`), as the
/// kernel decides it (permissions, read-only mounts); true when that cannot be asked.
fn permitted(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(text) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return true };
    // SAFETY: `access` reads the NUL-terminated path, which lives for the call.
    unsafe { libc::access(text.as_ptr(), mode) == 0 }
}

/// Why `path` is not a regular file that can be read, if it is not: it is missing (`noun`
/// and the path are said), unreadable, a directory or something else (each followed by its
/// remedy).
fn regular_file_problem(path: &Path, noun: &str, directory_remedy: &str, other_remedy: &str) -> Option<String> {
    if let Some(problem) = nul_problem(path) {
        return Some(problem);
    }
    let path_text = path.display();
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(format!("{noun} {path_text} does not exist")),
        Err(error) => Some(format!("{noun} {path_text} cannot be read: {error}")),
        Ok(metadata) if metadata.is_dir() => Some(format!("{path_text} is a directory{directory_remedy}")),
        Ok(metadata) if !metadata.is_file() => Some(format!("{path_text} is not a regular file{other_remedy}")),
        Ok(_) if !permitted(path, libc::R_OK) => Some(format!("{noun} {path_text} cannot be read: permission denied")),
        Ok(_) => None,
    }
}

/// Whether two `brokers` lists name one cluster: they share a broker, however it is spelt
/// (`localhost:9092`, `127.0.0.1:9092` and `[::1]:9092` are one; a missing port is 9092).
fn same_brokers(one: &str, other: &str) -> bool {
    !broker_set(one).is_disjoint(&broker_set(other))
}

/// The brokers of a `brokers` list, as a set of (host, port), loopback names as one.
fn broker_set(list: &str) -> BTreeSet<(String, u16)> {
    list.split(',').map(str::trim).filter(|broker| !broker.is_empty()).map(broker_address).collect()
}

/// A broker address without its listener's protocol, which librdkafka takes
/// (`PLAINTEXT://host:port`).
fn without_protocol(broker: &str) -> &str {
    broker.split_once("://").map_or(broker, |(_, address)| address)
}

/// The protocol a broker address begins with (`http` of `http://host:9092`) when librdkafka
/// knows no such protocol: it would leave the broker out, and wait for brokers it never gets.
fn protocol_problem(broker: &str) -> Option<&str> {
    const KNOWN: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
    let (protocol, _) = broker.split_once("://")?;
    if KNOWN.iter().any(|known| protocol.eq_ignore_ascii_case(known)) { None } else { Some(protocol) }
}

/// The port of a `host:port` broker address when it is no port number (librdkafka would try
/// to connect for 30 s before saying so); an address without a port takes 9092.
fn port_problem(broker: &str) -> Option<&str> {
    let address = without_protocol(broker);
    // `[::1]:9092`, or a bare IPv6 address, whose colons are no port's.
    let after_host = match address.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(_, rest)| rest),
        None if address.matches(':').count() > 1 => return None,
        None => address,
    };
    let (_, port) = after_host.rsplit_once(':')?;
    if matches!(port.parse::<u16>(), Ok(1..)) { None } else { Some(port) }
}

fn broker_address(broker: &str) -> (String, u16) {
    let broker = without_protocol(broker);
    let host_and_port = broker.rsplit_once(':').filter(|(host, _)| !host.ends_with(':'));
    let (host, port) = host_and_port.and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?))).unwrap_or((broker, 9092));
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback());
    (if loopback { "loopback".to_owned() } else { host }, port)
}

/// The names of the inputs the plugin is told of while it is checked: those resolved, or, when
/// some could not be (an unknown or repeated input, reported on its own), those written, so
/// that the plugin does not refuse an input count the file does not have.
fn input_names(pipeline: &LoadedPipeline, resolved: &ResolvedInputs, index: usize, operator: &Spanned<OperatorConfig>) -> Vec<String> {
    let names = resolved.input_names(pipeline, index);
    match &operator.get_ref().inputs {
        Some(written) if written.get_ref().len() != names.len() => {
            written.get_ref().iter().map(|input| input.get_ref().to_string()).collect()
        }
        _ => names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_sharing_a_broker_however_spelt_are_one_cluster() {
        assert!(same_brokers("localhost:27501", "127.0.0.1:27501"));
        assert!(same_brokers("[::1]:9092", "LOCALHOST"));
        assert!(same_brokers("a:9092,b:9092", "b:9092, c:9092"));
        assert!(same_brokers("PLAINTEXT://127.0.0.1:36010", "localhost:36010"), "a listener's protocol is no other broker");
        assert!(!same_brokers("127.0.0.1:27501", "127.0.0.1:27502"));
        assert!(!same_brokers("kafka-1:9092", "kafka-2:9092"));
        assert!(!same_brokers("", ""));
    }

    #[test]
    fn a_broker_port_must_be_a_port_number() {
        for good in ["127.0.0.1:9092", "kafka", "PLAINTEXT://kafka:19092", "[::1]:9092", "::1", "[fe80::1]"] {
            assert_eq!(port_problem(good), None, "{good}");
        }
        assert_eq!(port_problem("127.0.0.1:notaport"), Some("notaport"));
        assert_eq!(port_problem("kafka:0"), Some("0"));
        assert_eq!(port_problem("kafka:70000"), Some("70000"));
        assert_eq!(port_problem("[::1]:x"), Some("x"));
        assert_eq!(port_problem("kafka:"), Some(""));
    }

    #[test]
    fn generated_event_times_must_be_representable() {
        assert!(event_times_fit(0, None, i64::MAX), "unbounded: not checked");
        assert!(event_times_fit(i64::MAX, Some(1), 10), "one record at the start");
        assert!(event_times_fit(0, Some(0), i64::MAX));
        assert!(event_times_fit(0, Some(3), i64::MAX / 2));
        assert!(!event_times_fit(0, Some(4), i64::MAX / 2));
        assert!(!event_times_fit(1, Some(1000), i64::MAX));
        assert!(!event_times_fit(0, Some(u64::MAX), 1));
    }
}
