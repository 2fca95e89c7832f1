//! Test plugin for hot swap: passes records through unchanged, accepts any configuration,
//! snapshots an empty state, and traps in `restore` when given a state. A hot swap to this
//! plugin from a stateful one must be refused, and the version that was running must keep
//! running.

use sluice_sdk::{Batch, Distribution, Operator, Output, State};

pub struct BrokenRestore;

impl Operator for BrokenRestore {
    /// Any configuration is accepted (and ignored).
    type Config = sluice_sdk::serde_json::Value;

    fn init(_config: Self::Config) -> Result<Self, String> {
        Ok(BrokenRestore)
    }

    fn distribution(&self) -> Distribution {
        Distribution::Single
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        for record in batch.iter() {
            out.emit(record);
        }
    }

    fn snapshot(&self) -> State {
        State::empty()
    }

    /// Always traps: the point of this plugin.
    fn restore(&mut self, _state: State) -> Result<(), String> {
        panic!("broken-restore: restore always traps")
    }
}

sluice_sdk::export_operator!(BrokenRestore);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::serde_json::json;
    use sluice_sdk::testing::Harness;

    #[test]
    fn passes_records_through_unchanged_with_any_config() {
        let mut plugin = Harness::<BrokenRestore>::new(json!({"anything": [1, 2], "goes": true})).unwrap();
        let mut batch = Batch::new();
        batch.push(Some(b"k"), b"not json at all", 10, [(&b"h"[..], &b"v"[..])]);
        batch.push(None, br#"{"n": 1}"#, 20, []);
        let out = plugin.process(&batch);
        let records = |batch: &Batch| {
            batch.iter().map(|r| (r.key().map(<[u8]>::to_vec), r.value().to_vec(), r.timestamp(), r.headers().count())).collect::<Vec<_>>()
        };
        assert_eq!(records(&out.batch), records(&batch));
        assert!(out.rejected.is_empty());
        assert_eq!(plugin.snapshot(), State::empty());
    }

    #[test]
    #[should_panic(expected = "broken-restore: restore always traps")]
    fn restore_traps() {
        // (No state, `State::empty()`, never reaches `restore`.)
        let _ = Harness::<BrokenRestore>::restored(json!({}), State { version: 1, bytes: vec![1] });
    }
}
