//! Kafka settings of sources, sinks and the dead-letter topic: brokers, topics, and the
//! librdkafka properties passed through (secrets may come from environment variables).

use std::collections::BTreeMap;

use serde::Deserialize;

use sluice_sdk::FieldPath;

use super::{InputRef, Name};

/// librdkafka properties Sluice sets itself for consumers: offsets are committed only after
/// outputs and checkpoints are durable, and the group is the pipeline's.
pub const RESERVED_CONSUMER_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `brokers`"),
    ("group.id", "use `group`"),
    ("enable.auto.commit", "Sluice commits offsets after each checkpoint"),
    ("enable.auto.offset.store", "Sluice commits offsets after each checkpoint"),
    ("auto.offset.reset", "use `start`"),
    ("enable.partition.eof", "Sluice reads partitions as unbounded streams"),
];

/// librdkafka properties Sluice sets itself for producers.
pub const RESERVED_PRODUCER_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `brokers`"),
    ("enable.idempotence", "Sluice's producers are always idempotent"),
    ("transactional.id", "set `delivery = \"exactly-once\"` in [pipeline]; the id comes from the pipeline, source and SLUICE_INSTANCE"),
    ("partitioner", "use `partitioning`"),
];

/// `type = "kafka"` source: records of one or more topics, read by a consumer group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    pub name: Option<Name>,
    /// `bootstrap.servers`: comma-separated host:port list.
    pub brokers: String,
    /// Topics to read; or give `pattern`.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression (librdkafka syntax) of the topics to read.
    pub pattern: Option<String>,
    /// Consumer group; by default the pipeline's name. Processes with the same group share
    /// the partitions.
    pub group: Option<String>,
    /// Where a partition without a checkpoint starts.
    #[serde(default)]
    pub start: StartPosition,
    /// Compacted topic holding the operators' state (created when missing).
    pub checkpoint_topic: Option<String>,
    /// Any librdkafka consumer property (security settings included).
    #[serde(default)]
    pub properties: KafkaProperties,
}

impl KafkaSourceConfig {
    /// The consumer group: given, or the pipeline's name.
    pub fn group_id(&self, pipeline: &str) -> String {
        self.group.clone().unwrap_or_else(|| pipeline.to_owned())
    }

    /// The checkpoint topic: given, or `sluice-checkpoints`.
    pub fn checkpoint_topic(&self) -> String {
        self.checkpoint_topic.clone().unwrap_or_else(|| "sluice-checkpoints".into())
    }

    /// The topics, or the pattern in librdkafka's form (a leading '^').
    pub fn subscription(&self) -> Vec<String> {
        match &self.pattern {
            Some(pattern) if pattern.starts_with('^') => vec![pattern.clone()],
            Some(pattern) => vec![format!("^{pattern}")],
            None => self.topics.clone(),
        }
    }
}

/// Where a partition that has no checkpoint starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPosition {
    /// The group's committed offset; the earliest record when none was committed.
    #[default]
    Committed,
    /// The earliest record still in the partition.
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// `type = "kafka"` sink: records written to a topic by an idempotent producer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub name: Option<Name>,
    pub brokers: String,
    pub topic: String,
    #[serde(default)]
    pub partitioning: Partitioning,
    /// Any librdkafka producer property.
    #[serde(default)]
    pub properties: KafkaProperties,
    /// What the sink reads (see `SinkConfig::inputs`).
    pub inputs: Option<Vec<InputRef>>,
    /// Fields whose values become the record's key (so that `partitioning = "key"` spreads
    /// records by them).
    pub key: Option<Vec<FieldPath>>,
}

/// How output records are spread over the topic's partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// By a hash of the key, as Java clients do (murmur2); records without a key at random.
    #[default]
    Key,
    /// At random, whatever the key.
    Random,
}

impl Partitioning {
    /// The librdkafka `partitioner` setting.
    pub fn partitioner(self) -> &'static str {
        match self {
            Partitioning::Key => "murmur2_random",
            Partitioning::Random => "random",
        }
    }
}

/// The dead-letter topic: refused records with the reason and provenance in headers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaDeadLetterConfig {
    pub brokers: String,
    pub topic: String,
    #[serde(default)]
    pub properties: KafkaProperties,
}

/// librdkafka properties by name.
pub type KafkaProperties = BTreeMap<String, PropertyValue>;

/// A property's value: written in the file, or read from an environment variable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "a property's value must be a string, a number, true or false, or { env = \"VARIABLE\" } naming an environment variable"
)]
pub enum PropertyValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
    /// `{ env = "VARIABLE" }`: the value of an environment variable, read at start.
    Environment {
        env: String,
    },
}

/// A property that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("property \"{property}\" is set by Sluice: {hint}")]
    Reserved { property: String, hint: &'static str },
    #[error("property \"{property}\" reads environment variable {variable}, which is not set")]
    MissingVariable { property: String, variable: String },
}

/// The properties as librdkafka takes them (text), environment variables read, reserved
/// names refused.
pub fn resolve_properties(properties: &KafkaProperties, reserved: &[(&str, &'static str)]) -> Result<Vec<(String, String)>, PropertyError> {
    properties.iter().map(|(property, value)| Ok((property.clone(), resolve_property(property, value, reserved)?))).collect()
}

/// One property's value as text, checked.
pub fn resolve_property(property: &str, value: &PropertyValue, reserved: &[(&str, &'static str)]) -> Result<String, PropertyError> {
    if let Some((_, hint)) = reserved.iter().find(|(name, _)| *name == property) {
        return Err(PropertyError::Reserved { property: property.to_owned(), hint });
    }
    Ok(match value {
        PropertyValue::Text(text) => text.clone(),
        PropertyValue::Integer(number) => number.to_string(),
        PropertyValue::Float(number) => number.to_string(),
        PropertyValue::Flag(flag) => flag.to_string(),
        PropertyValue::Environment { env } => {
            std::env::var(env).map_err(|_| PropertyError::MissingVariable { property: property.to_owned(), variable: env.clone() })?
        }
    })
}

/// A source's `pattern` as a regular expression matching whole topic names from their start
/// (librdkafka anchors it the same way, with a leading '^').
pub fn topic_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    let anchored = if pattern.starts_with('^') { pattern.to_owned() } else { format!("^{pattern}") };
    regex::Regex::new(&anchored)
}

/// Whether `topic` is a legal Kafka topic name.
pub fn topic_name_problem(topic: &str) -> Option<String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 {
        return Some(format!("topic name {topic:?} must have 1 to 249 characters"));
    }
    if matches!(topic, "." | "..") {
        return Some(format!("topic name {topic:?} is not allowed"));
    }
    topic
        .chars()
        .find(|c| !legal(*c))
        .map(|bad| format!("topic name {topic:?} may only use letters, digits, '.', '_' and '-', not {bad:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_text_and_secrets_come_from_the_environment() {
        // SAFETY (test): no other test reads or writes this variable.
        unsafe { std::env::set_var("SLUICE_TEST_KAFKA_SECRET", "s3cret") };
        let properties: KafkaProperties =
            toml::from_str("\"sasl.password\" = { env = \"SLUICE_TEST_KAFKA_SECRET\" }\n\"fetch.min.bytes\" = 10\n\"check.crcs\" = true\n")
                .unwrap();
        let resolved = resolve_properties(&properties, RESERVED_CONSUMER_PROPERTIES).unwrap();
        assert!(resolved.contains(&("sasl.password".into(), "s3cret".into())));
        assert!(resolved.contains(&("fetch.min.bytes".into(), "10".into())));
        assert!(resolved.contains(&("check.crcs".into(), "true".into())));
    }

    #[test]
    fn reserved_and_unset_properties_are_refused() {
        let reserved: KafkaProperties = toml::from_str("\"enable.auto.commit\" = true").unwrap();
        assert!(matches!(resolve_properties(&reserved, RESERVED_CONSUMER_PROPERTIES), Err(PropertyError::Reserved { .. })));
        let unset: KafkaProperties = toml::from_str("\"sasl.password\" = { env = \"SLUICE_TEST_UNSET_VARIABLE\" }").unwrap();
        assert!(matches!(resolve_properties(&unset, &[]), Err(PropertyError::MissingVariable { .. })));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert_eq!(topic_name_problem("orders.v1_x-2"), None);
        assert!(topic_name_problem("bad topic").is_some());
        assert!(topic_name_problem("").is_some());
    }
}
