//! Test plugin: passes records through unchanged, and misbehaves on records that carry a
//! marker: it panics (`trap_on`), loops forever (`spin_on`) or allocates without bound
//! (`allocate_on`), or breaks the WIT contract by rejecting a record outside the batch
//! (`reject_outside_on`) or passing on one outside it (`pass_outside_on`) or to an output it
//! did not declare (`pass_to_undeclared_on`), or rejects it with a reason of a million bytes
//! (`long_reason_on`), or emits it cut to half its bytes, no longer JSON (`garble_on`). Its snapshot can trap once it has passed records
//! (`trap_in_snapshot_after`). Its state counts the records it passed, so recovery can be checked.
//! With `pass_by_position`, it passes every record on by position and then sends a copy of
//! each, marked, to the main output and the first record again to side output `copies`.
//! With `copies = N` it emits each record N times; with `refuse_batches_over = N` it rejects
//! every record of a batch of more than N records.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Batch, Distribution, Operator, Output, Passed as PassedRecord, VersionedState};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MisbehaveConfig {
    /// Panic when the payload contains this text.
    pub trap_on: Option<String>,
    /// Loop forever when the payload contains this text.
    pub spin_on: Option<String>,
    /// Allocate until memory runs out when the payload contains this text.
    pub allocate_on: Option<String>,
    /// Reject a position past the end of the batch when the payload contains this text.
    pub reject_outside_on: Option<String>,
    /// Reject the record with a reason of a million bytes when the payload contains this text.
    pub long_reason_on: Option<String>,
    /// Emit the record cut to the first half of its bytes (no longer JSON) when the payload
    /// contains this text.
    pub garble_on: Option<String>,
    /// Pass on a position past the end of the batch when the payload contains this text.
    pub pass_outside_on: Option<String>,
    /// Pass the record on to an output it did not declare when the payload contains this text.
    pub pass_to_undeclared_on: Option<String>,
    /// Pass every record on by position, then copy each, marked with a `copy` header, to the
    /// main output, and the batch's first record by position to side output `copies`.
    #[serde(default)]
    pub pass_by_position: bool,
    /// Trap in `snapshot` once this many records have passed.
    pub trap_in_snapshot_after: Option<u64>,
    /// Refuse to initialise, with this message.
    pub refuse_init: Option<String>,
    /// Emit each record this many times (1 when absent).
    pub copies: Option<u32>,
    /// Reject every record of a batch of more records than this.
    pub refuse_batches_over: Option<usize>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Passed {
    count: u64,
}

impl VersionedState for Passed {
    const VERSION: u32 = 1;
}

pub struct Misbehave {
    config: MisbehaveConfig,
    passed: Passed,
}

impl Operator for Misbehave {
    type Config = MisbehaveConfig;

    fn init(config: MisbehaveConfig) -> Result<Self, String> {
        match &config.refuse_init {
            Some(message) => Err(message.clone()),
            None => Ok(Misbehave { config, passed: Passed::default() }),
        }
    }

    fn distribution(&self) -> Distribution {
        // Counts every record it passes: one instance sees them all.
        Distribution::Single
    }

    fn side_outputs(&self) -> Vec<String> {
        if self.config.pass_by_position { vec!["copies".into()] } else { Vec::new() }
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        // Counted at the start of every call, failed ones included: the host records a call's
        // additions only if it succeeds.
        sluice_sdk::host::counter_add("given", batch.len() as u64);
        if self.config.pass_by_position {
            return self.pass_by_position(batch, out);
        }
        if let Some(most) = self.config.refuse_batches_over.filter(|most| batch.len() > *most) {
            for record in batch.iter() {
                out.reject(record.index(), format!("a batch of {} records, more than {most}", batch.len()));
            }
            return;
        }
        for record in batch.iter() {
            self.misbehave_on(record.value());
            if self.marked(&self.config.reject_outside_on, record.value()) {
                out.reject(batch.len() + 7, "a position outside the batch");
                continue;
            }
            if self.marked(&self.config.long_reason_on, record.value()) {
                out.reject(record.index(), "x".repeat(1 << 20));
                continue;
            }
            if self.marked(&self.config.garble_on, record.value()) {
                let value = record.value();
                out.batch.push(record.key(), &value[..value.len() / 2], record.timestamp(), record.headers());
                continue;
            }
            let index = record.index() as u32;
            if self.marked(&self.config.pass_outside_on, record.value()) {
                out.passed.push(PassedRecord { index: index + batch.len() as u32, port: 0 });
                continue;
            }
            if self.marked(&self.config.pass_to_undeclared_on, record.value()) {
                out.passed.push(PassedRecord { index, port: 5 });
                continue;
            }
            for _ in 0..self.config.copies.unwrap_or(1) {
                self.passed.count += 1;
                let passed = self.passed.count.to_string();
                let headers = record.headers().chain([(&b"passed"[..], passed.as_bytes())]);
                out.batch.push(record.key(), record.value(), record.timestamp(), headers);
            }
        }
    }

    fn snapshot(&self) -> sluice_sdk::State {
        if self.config.trap_in_snapshot_after.is_some_and(|after| self.passed.count >= after) {
            panic!("snapshot traps after {} records", self.passed.count);
        }
        sluice_sdk::State::encode(&self.passed)
    }

    fn restore(&mut self, state: sluice_sdk::State) -> Result<(), String> {
        self.passed = state.decode()?;
        Ok(())
    }
}

impl Misbehave {
    /// Every record by position, a marked copy of each, and the first again on `copies`.
    fn pass_by_position(&mut self, batch: &Batch, out: &mut Output) {
        out.passed.extend((0..batch.len() as u32).map(|index| PassedRecord { index, port: 0 }));
        out.passed.extend(batch.get(0).map(|_| PassedRecord { index: 0, port: 1 }));
        for record in batch.iter() {
            let headers = record.headers().chain([(&b"copy"[..], &b"yes"[..])]);
            out.batch.push(record.key(), record.value(), record.timestamp(), headers);
        }
    }

    fn marked(&self, marker: &Option<String>, value: &[u8]) -> bool {
        marker.as_ref().is_some_and(|m| contains(value, m.as_bytes()))
    }

    fn misbehave_on(&self, value: &[u8]) {
        let marked = |marker: &Option<String>| self.marked(marker, value);
        if marked(&self.config.trap_on) {
            panic!("poisoned record: {}", String::from_utf8_lossy(value));
        }
        if marked(&self.config.spin_on) {
            spin();
        }
        if marked(&self.config.allocate_on) {
            hog_memory();
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len().max(1)).any(|window| window == needle)
}

#[allow(clippy::empty_loop)]
fn spin() {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn hog_memory() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

sluice_sdk::export_operator!(Misbehave);
