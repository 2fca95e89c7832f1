//! The built-in generator: a deterministic, seeded e-commerce clickstream.
//!
//! Same seed and settings, same records: views, clicks, carts and orders of users on items of
//! a catalogue (category, price), some users arriving through marketing campaigns. Event
//! times advance by `event_interval` per record, shifted back by up to `disorder`. Configured
//! anomalies multiply order prices during known spans of event time.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{SourceError, SourceOutput};
use crate::config::{AnomalyConfig, GeneratorConfig};

const CATEGORIES: [&str; 8] = ["books", "electronics", "fashion", "garden", "grocery", "health", "sports", "toys"];
const CAMPAIGNS: [&str; 4] = ["spring-sale", "newsletter", "retargeting", "influencer"];
/// Longest sleep between checks of the stop signal and the batch linger.
const PACE_SLICE: Duration = Duration::from_millis(20);

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
        let start = rfc3339_millis(&config.start).map_err(|error| format!("anomaly start {:?}: {error}", config.start))?;
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

fn rfc3339_millis(text: &str) -> Result<i64, humantime::TimestampError> {
    let time = humantime::parse_rfc3339_weak(text)?;
    Ok(time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
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
}

impl Generator {
    pub fn new(name: String, config: &GeneratorConfig) -> Result<Generator, SourceError> {
        let invalid = |message: String| SourceError::Invalid { source_name: name.clone(), message };
        let start_ms =
            rfc3339_millis(&config.start_time).map_err(|error| invalid(format!("start_time {:?}: {error}", config.start_time)))?;
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
        })
    }

    /// Produces records until `count` is reached or the pipeline stops.
    pub fn run(self, output: &mut SourceOutput) -> Result<(), SourceError> {
        let mut random = ChaCha8Rng::seed_from_u64(self.seed);
        let mut started = Instant::now();
        // Records a checkpoint covers are generated again (to reach the same random state)
        // but not paced: the rate applies from the first record sent on.
        let mut first_live: Option<u64> = None;
        let mut sequence = 0u64;
        let mut value = Vec::with_capacity(256);
        while self.count.is_none_or(|count| sequence < count) && !output.stop.is_raised() {
            if !output.covers(sequence) {
                let first = *first_live.get_or_insert_with(|| {
                    started = Instant::now();
                    sequence
                });
                if !self.pace(sequence - first, started, output) {
                    break;
                }
            }
            value.clear();
            let (user, timestamp) = self.record(sequence, &mut random, &mut value);
            if output.emit(Some(user.as_bytes()), &value, timestamp, sequence).is_err() {
                return Ok(());
            }
            sequence += 1;
        }
        tracing::debug!(source = %self.name, records = sequence, "generator finished");
        Ok(())
    }

    /// Waits until the `sequence`-th record since `started` is due at the configured rate, in short slices so that
    /// a stop is noticed and a lingering batch is sent. False if the pipeline stops meanwhile.
    fn pace(&self, sequence: u64, started: Instant, output: &mut SourceOutput) -> bool {
        let Some(rate) = self.rate else { return true };
        let due = Duration::try_from_secs_f64(sequence as f64 / rate).unwrap_or(Duration::MAX);
        loop {
            let elapsed = started.elapsed();
            if due <= elapsed + Duration::from_millis(1) {
                return true;
            }
            if output.stop.is_raised() || output.flush_lingering().is_err() {
                return false;
            }
            std::thread::sleep((due - elapsed).min(PACE_SLICE));
        }
    }

    /// Writes record `sequence` as JSON into `value`; returns its user (the key) and event time.
    fn record(&self, sequence: u64, random: &mut ChaCha8Rng, value: &mut Vec<u8>) -> (String, i64) {
        let user = skewed(random, self.users);
        let item = skewed(random, self.items);
        let attributes = mix(u64::from(item) ^ self.seed.rotate_left(17));
        let roll: f64 = random.random();
        let (event_type, quantity) = match roll {
            r if r < 0.70 => ("view", 1),
            r if r < 0.82 => ("click", 1),
            r if r < 0.94 => ("cart", random.random_range(1..=3)),
            _ => ("order", random.random_range(1..=3)),
        };
        let campaign_slot = mix(u64::from(user) ^ self.seed) % (CAMPAIGNS.len() as u64 * 2);
        let disorder = if self.disorder_ms > 0 { random.random_range(0..=self.disorder_ms) } else { 0 };
        let offset = i64::try_from(sequence).unwrap_or(i64::MAX).saturating_mul(self.interval_ms);
        let timestamp = self.start_ms.saturating_add(offset).saturating_sub(disorder);
        let category = CATEGORIES[(attributes % CATEGORIES.len() as u64) as usize];
        let mut price = 2.0 + ((attributes >> 8) % 19_800) as f64 / 100.0;
        if event_type == "order" {
            let factor: f64 =
                self.anomalies.iter().filter(|anomaly| anomaly.applies(timestamp, category)).map(|anomaly| anomaly.price_factor).product();
            price = (price * factor * 100.0).round() / 100.0;
        }
        let click = Click {
            event_id: sequence,
            event_type,
            user_id: format!("u{user}"),
            item_id: format!("i{item}"),
            category,
            price,
            quantity,
            campaign: CAMPAIGNS.get(campaign_slot as usize).copied().unwrap_or("organic"),
            ts: timestamp,
        };
        // Serialising a struct of strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *value, &click);
        (click.user_id, timestamp)
    }
}

/// A number below `bound`, small numbers more likely (popular users and items).
fn skewed(random: &mut ChaCha8Rng, bound: u32) -> u32 {
    let uniform: f64 = random.random();
    ((uniform * uniform * f64::from(bound)) as u32).min(bound - 1)
}

/// SplitMix64 finaliser: stable pseudo-random attributes from an id.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
