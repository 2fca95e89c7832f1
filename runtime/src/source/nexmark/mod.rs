//! The Nexmark source: the benchmark's stream of persons, auctions and bids in the 1:3:46
//! proportion (`docs/nexmark.md` says which reference it follows and where it differs).
//!
//! Event n is a function of n and the configuration alone (drawn from `java.util.Random`
//! seeded with n, as the reference does), so shares on several threads make events
//! `share, share + shares, ...` and a resumed run starts at its checkpoint's position: the
//! stream is the same however many shares make it.

mod events;
mod object;
mod random;

use std::time::Instant;

use sluice_sdk::fields::ObjectWriter;

pub use events::{Auction, Bid, Event, FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID, Padding, Person, Shape};

use super::pace::{first_of_share, pace};
use super::{SourceError, SourceOutput};
use crate::config::NexmarkConfig;
use crate::event_time::parse_rfc3339_millis;

/// A configured Nexmark source.
pub struct NexmarkSource {
    name: String,
    shape: Shape,
    count: Option<u64>,
    rate: Option<f64>,
}

impl NexmarkSource {
    pub fn new(name: String, config: &NexmarkConfig) -> Result<NexmarkSource, SourceError> {
        let start_ms = parse_rfc3339_millis(&config.start_time)
            .map_err(|error| SourceError::Invalid { source_name: name.clone(), message: format!("start_time: {error}") })?;
        Ok(NexmarkSource { name, shape: config.shape(start_ms), count: config.count, rate: config.rate.map(|rate| rate.per_second()) })
    }

    /// Produces share `share` of `shares` until `count` events are made or the pipeline stops.
    pub fn run(self, share: usize, shares: usize, output: &mut SourceOutput) -> Result<(), SourceError> {
        let (share, step) = (share as u64, shares.max(1) as u64);
        let resume_from = output.resume_from();
        let mut number = first_of_share(resume_from, share, step);
        let first = number;
        let started = Instant::now();
        let mut object = ObjectWriter::new();
        let mut key = itoa::Buffer::new();
        let mut event = Event::make(&self.shape, 0);
        while self.count.is_none_or(|count| number < count) && !output.stop.is_raised() {
            if !pace(self.rate, (number - first) / step, shares, started, output) {
                break;
            }
            let padding = event.remake_but_extra(&self.shape, i64::try_from(number).unwrap_or(i64::MAX));
            event.write_object_padded(padding, &mut object);
            let key = key.format(event.key());
            if output.emit_object(Some(key.as_bytes()), &object, event.date_time(), number).is_err() {
                return Ok(());
            }
            number += step;
        }
        tracing::debug!(source = %self.name, share, "nexmark share finished");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
