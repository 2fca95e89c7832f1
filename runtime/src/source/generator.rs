//! The built-in generator: a deterministic, seeded e-commerce clickstream.
//!
//! Same seed and settings, same records: views, clicks, carts and orders of users on items of
//! a catalogue (category, price), some users arriving through marketing campaigns. Event
//! times advance by `event_interval` per record, shifted back by up to `disorder`. Configured
//! anomalies multiply order prices during known spans of event time.
//!
//! Record n is a function of the seed and n alone (its randomness is drawn from a SplitMix64
//! stream seeded by both), so the records can be made in shares on several threads (share i
//! makes records i, i + shares, ...) and a run resumed from a checkpoint starts right at its
//! position: the records are the same however many shares make them.

use std::time::Instant;

use serde::Serialize;

use super::pace::{first_of_share, pace};
use super::{SourceError, SourceOutput};
use crate::config::{AnomalyConfig, GeneratorConfig};
use crate::event_time::parse_rfc3339_millis;

/// The product categories of generated orders (what an anomaly's `category` may name).
pub const CATEGORIES: [&str; 8] = ["books", "electronics", "fashion", "garden", "grocery", "health", "sports", "toys"];
const CAMPAIGNS: [&str; 4] = ["spring-sale", "newsletter", "retargeting", "influencer"];

/// A configured generator.
pub struct Generator {
    name: String,
    seed: u64,
    count: Option<u64>,
    rate: Option<f64>,
    start_ms: i64,
    interval_ms: i64,
    disorder_ms: i64,
    users: u32,
    items: u32,
    anomalies: Vec<Anomaly>,
    labels: bool,
}

/// An anomaly in milliseconds of event time.
struct Anomaly {
    start: i64,
    end: i64,
    category: Option<String>,
    price_factor: f64,
}

impl Anomaly {
    fn new(config: &AnomalyConfig) -> Result<Anomaly, String> {
        let start = parse_rfc3339_millis(&config.start).map_err(|error| format!("anomaly start: {error}"))?;
        Ok(Anomaly {
            start,
            end: start.saturating_add(config.duration.millis()),
            category: config.category.clone(),
            price_factor: config.price_factor,
        })
    }

    fn applies(&self, timestamp: i64, category: &str) -> bool {
        (self.start..self.end).contains(&timestamp) && self.category.as_deref().is_none_or(|only| only == category)
    }
}

/// One generated record, as its JSON payload.
#[derive(Serialize)]
struct Click<'a> {
    event_id: u64,
    event_type: &'a str,
    user_id: String,
    item_id: String,
    category: &'a str,
    price: f64,
    quantity: u32,
    campaign: &'a str,
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    converted: Option<bool>,
}

impl Generator {
    pub fn new(name: String, config: &GeneratorConfig) -> Result<Generator, SourceError> {
        let invalid = |message: String| SourceError::Invalid { source_name: name.clone(), message };
        let start_ms = parse_rfc3339_millis(&config.start_time).map_err(|error| invalid(format!("start_time: {error}")))?;
        let anomalies = config.anomalies.iter().map(Anomaly::new).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        Ok(Generator {
            name,
            seed: config.seed,
            count: config.count,
            rate: config.rate.map(|rate| rate.per_second()),
            start_ms,
            interval_ms: config.event_interval.millis(),
            disorder_ms: config.disorder.millis(),
            users: config.users.max(1),
            items: config.items.max(1),
            anomalies,
            labels: config.labels,
        })
    }

    /// Produces share `share` of `shares` (records `share`, `share + shares`, ...) until
    /// `count` is reached or the pipeline stops; a resumed share starts at the first record its
    /// checkpoint does not cover.
    pub fn run(self, share: usize, shares: usize, output: &mut SourceOutput) -> Result<(), SourceError> {
        let (share, step) = (share as u64, shares.max(1) as u64);
        let resume_from = output.resume_from();
        // The first record of this share at or after the checkpoint's position.
        let mut sequence = first_of_share(resume_from, share, step);
        let first = sequence;
        let started = Instant::now();
        let mut value = Vec::with_capacity(256);
        while self.count.is_none_or(|count| sequence < count) && !output.stop.is_raised() {
            if !pace(self.rate, (sequence - first) / step, shares, started, output) {
                break;
            }
            value.clear();
            let (user, timestamp) = self.record(sequence, &mut value);
            if output.emit(Some(user.as_bytes()), &value, timestamp, sequence).is_err() {
                return Ok(());
            }
            sequence += step;
        }
        tracing::debug!(source = %self.name, share, "generator share finished");
        Ok(())
    }

    /// Writes record `sequence` as JSON into `value`; returns its user (the key) and event time.
    fn record(&self, sequence: u64, value: &mut Vec<u8>) -> (String, i64) {
        let mut random = SplitMix64::for_record(self.seed, sequence);
        let user = skewed(&mut random, self.users);
        let item = skewed(&mut random, self.items);
        let attributes = mix(u64::from(item) ^ self.seed.rotate_left(17));
        let roll = random.unit();
        let (event_type, quantity) = match roll {
            r if r < 0.70 => ("view", 1),
            r if r < 0.82 => ("click", 1),
            r if r < 0.94 => ("cart", 1 + random.below(3) as u32),
            _ => ("order", 1 + random.below(3) as u32),
        };
        let campaign_slot = mix(u64::from(user) ^ self.seed) % (CAMPAIGNS.len() as u64 * 2);
        let disorder = if self.disorder_ms > 0 { random.below(self.disorder_ms as u64 + 1) as i64 } else { 0 };
        let offset = i64::try_from(sequence).unwrap_or(i64::MAX).saturating_mul(self.interval_ms);
        let timestamp = self.start_ms.saturating_add(offset).saturating_sub(disorder);
        let category = CATEGORIES[(attributes % CATEGORIES.len() as u64) as usize];
        let mut price = 2.0 + ((attributes >> 8) % 19_800) as f64 / 100.0;
        if event_type == "order" {
            let factor: f64 =
                self.anomalies.iter().filter(|anomaly| anomaly.applies(timestamp, category)).map(|anomaly| anomaly.price_factor).product();
            price = (price * factor * 100.0).round() / 100.0;
        }
        let campaign = CAMPAIGNS.get(campaign_slot as usize).copied().unwrap_or("organic");
        // Drawn last, so that the other fields are the same with and without labels.
        let converted = self.labels.then(|| random.unit() < conversion_probability(event_type, campaign, category, price, quantity));
        let click = Click {
            event_id: sequence,
            event_type,
            user_id: format!("u{user}"),
            item_id: format!("i{item}"),
            category,
            price,
            quantity,
            campaign,
            ts: timestamp,
            converted,
        };
        // Serialising a struct of strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *value, &click);
        (click.user_id, timestamp)
    }
}

/// The hidden rule behind the `converted` label: a logistic function of the record's fields.
/// The label is drawn from it, so it is noisy: no model can predict every label.
pub fn conversion_probability(event_type: &str, campaign: &str, category: &str, price: f64, quantity: u32) -> f64 {
    let stage = match event_type {
        "click" => 1.2,
        "cart" => 2.2,
        "order" => 4.5,
        _ => 0.0,
    };
    let source = match campaign {
        "retargeting" => 1.0,
        "newsletter" => 0.5,
        "influencer" => -0.4,
        _ => 0.0,
    };
    let shelf = match category {
        "books" | "toys" => 0.6,
        "electronics" => -0.3,
        _ => 0.0,
    };
    let logit = -3.0 + stage + source + shelf - 0.008 * price + 0.25 * f64::from(quantity);
    1.0 / (1.0 + (-logit).exp())
}

/// A number below `bound`, small numbers more likely (popular users and items).
fn skewed(random: &mut SplitMix64, bound: u32) -> u32 {
    let uniform = random.unit();
    ((uniform * uniform * f64::from(bound)) as u32).min(bound - 1)
}

/// The random numbers of one record: a SplitMix64 stream seeded by the generator's seed and
/// the record's sequence number.
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_record(seed: u64, sequence: u64) -> SplitMix64 {
        SplitMix64(mix(seed) ^ sequence.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0.wrapping_sub(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in [0, 1), with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform below `bound` (> 0); the bias of a 64-bit modulo is negligible for the small
    /// bounds used here.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// SplitMix64 finaliser: stable pseudo-random attributes from an id.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
