//! Source configurations: where records come from.

use std::path::PathBuf;

use serde::Deserialize;

use super::{DurationText, KafkaSourceConfig, Name, Rate};

/// One `[[sources]]` table; `type` selects the connector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in synthetic e-commerce clickstream.
    Generator(GeneratorConfig),
    /// A file of JSON lines, read once to its end.
    File(FileSourceConfig),
    /// JSON lines from standard input, until it closes.
    Stdin(StdinSourceConfig),
    /// Records of Kafka topics, read by a consumer group; one task per assigned partition.
    Kafka(KafkaSourceConfig),
    /// The Nexmark benchmark's persons, auctions and bids.
    Nexmark(NexmarkConfig),
}

impl SourceConfig {
    /// The source's name: given, or its type.
    pub fn name(&self) -> String {
        let (name, kind) = match self {
            SourceConfig::Generator(config) => (&config.name, "generator"),
            SourceConfig::File(config) => (&config.name, "file"),
            SourceConfig::Stdin(config) => (&config.name, "stdin"),
            SourceConfig::Kafka(config) => (&config.name, "kafka"),
            SourceConfig::Nexmark(config) => (&config.name, "nexmark"),
        };
        name.as_ref().map_or_else(|| kind.to_owned(), ToString::to_string)
    }

    /// Whether the source ends by itself.
    pub fn is_bounded(&self) -> bool {
        match self {
            SourceConfig::Generator(config) => config.count.is_some(),
            SourceConfig::Nexmark(config) => config.count.is_some(),
            SourceConfig::File(_) | SourceConfig::Stdin(_) => true,
            SourceConfig::Kafka(_) => false,
        }
    }
}

/// `type = "generator"`: a deterministic, seeded clickstream of views, carts and orders.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub name: Option<Name>,
    /// Seed of the pseudo-random sequence: same seed, same records.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Records to produce; unbounded when absent.
    pub count: Option<u64>,
    /// Records per second of wall-clock time; as fast as possible when absent.
    pub rate: Option<Rate>,
    /// Event time of the first record, RFC 3339.
    #[serde(default = "default_start_time")]
    pub start_time: String,
    /// Mean event-time distance between consecutive records.
    #[serde(default = "default_event_interval")]
    pub event_interval: DurationText,
    /// Largest random shift of a record's event time backwards (out-of-order data).
    #[serde(default)]
    pub disorder: DurationText,
    /// Number of distinct users.
    #[serde(default = "default_users")]
    pub users: u32,
    /// Number of distinct items in the catalogue.
    #[serde(default = "default_items")]
    pub items: u32,
    /// Anomalies injected at known event times (for testing detectors).
    #[serde(default)]
    pub anomalies: Vec<AnomalyConfig>,
    /// Adds `converted` to every record: a label drawn from a hidden rule with noise, for
    /// learning operators to learn.
    #[serde(default)]
    pub labels: bool,
}

/// An anomaly the generator injects: during `[start, start + duration)` of event time, order
/// prices (of one category, or all) are multiplied by `price_factor`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// RFC 3339 time.
    pub start: String,
    pub duration: DurationText,
    pub category: Option<String>,
    pub price_factor: f64,
}

/// `type = "nexmark"`: the Nexmark benchmark's stream, after the reference generator (Apache
/// Beam's); every key but `name`, `count`, `rate` and `start_time` is one of the reference's
/// `NexmarkConfiguration` settings, with its default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NexmarkConfig {
    pub name: Option<Name>,
    /// Events to produce; unbounded when absent.
    pub count: Option<u64>,
    /// Events per second of wall-clock time; as fast as possible when absent.
    pub rate: Option<Rate>,
    /// Events per second of event time (the reference's `firstEventRate`).
    pub event_rate: Rate,
    /// Event time of the first event, RFC 3339.
    pub start_time: String,
    pub person_proportion: u32,
    pub auction_proportion: u32,
    pub bid_proportion: u32,
    /// 1 in this many bids goes to any auction in flight, the others to a hot one.
    pub hot_auction_ratio: u32,
    pub hot_seller_ratio: u32,
    pub hot_bidder_ratio: u32,
    /// People who still bid and sell: the most recent ones.
    pub active_people: u32,
    /// Auctions a bid may name: the most recent ones.
    pub in_flight_auctions: u32,
    pub avg_person_bytes: u32,
    pub avg_auction_bytes: u32,
    pub avg_bid_bytes: u32,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            name: None,
            count: None,
            rate: None,
            event_rate: Rate::per(10_000.0),
            start_time: default_start_time(),
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            hot_auction_ratio: 2,
            hot_seller_ratio: 4,
            hot_bidder_ratio: 4,
            active_people: 1_000,
            in_flight_auctions: 100,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
        }
    }
}

impl NexmarkConfig {
    /// The stream's shape, its first event at `start_ms` (validation checked every number).
    pub fn shape(&self, start_ms: i64) -> crate::source::nexmark::Shape {
        let ratio = |ratio: u32| i32::try_from(ratio.max(1)).unwrap_or(i32::MAX);
        crate::source::nexmark::Shape {
            person_proportion: i64::from(self.person_proportion.max(1)),
            auction_proportion: i64::from(self.auction_proportion.max(1)),
            bid_proportion: i64::from(self.bid_proportion),
            hot_auction_ratio: ratio(self.hot_auction_ratio),
            hot_seller_ratio: ratio(self.hot_seller_ratio),
            hot_bidder_ratio: ratio(self.hot_bidder_ratio),
            active_people: i64::from(self.active_people.max(1)),
            in_flight_auctions: i64::from(self.in_flight_auctions.max(1)),
            avg_person_bytes: ratio(self.avg_person_bytes),
            avg_auction_bytes: ratio(self.avg_auction_bytes),
            avg_bid_bytes: ratio(self.avg_bid_bytes),
            start_ms,
            event_rate: self.event_rate.per_second(),
        }
    }
}

fn default_seed() -> u64 {
    1
}

fn default_start_time() -> String {
    "2026-01-01T00:00:00Z".into()
}

fn default_event_interval() -> DurationText {
    DurationText::from_millis(10)
}

fn default_users() -> u32 {
    1_000
}

fn default_items() -> u32 {
    500
}

/// `type = "file"`: JSON lines from a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub name: Option<Name>,
    /// Relative to the pipeline file.
    pub path: PathBuf,
    /// JSON field holding the event time (milliseconds or RFC 3339); ingestion time otherwise.
    pub timestamp_field: Option<String>,
}

/// `type = "stdin"`: JSON lines from standard input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    pub name: Option<Name>,
    /// JSON field holding the event time (milliseconds or RFC 3339); ingestion time otherwise.
    pub timestamp_field: Option<String>,
}
