//! The last dead letters of a process, for the console: what went wrong lately, and with which
//! record.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// Dead letters kept.
const KEPT: usize = 50;
/// Longest record text kept, in bytes.
const RECORD_TEXT: usize = 2048;

/// One recent dead letter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentDeadLetter {
    pub at_unix_ms: i64,
    pub pipeline: String,
    /// The operator that refused or failed on the record, or the source.
    pub node: String,
    /// refused, trap, deadline, memory, invalid-output, disabled, late, decode, route.
    pub class: String,
    pub reason: String,
    /// The record's value, as text (cut at 2 KiB).
    pub record: String,
}

impl RecentDeadLetter {
    /// The record's value as text, cut on a character boundary.
    pub fn record_text(value: &[u8]) -> String {
        let text = String::from_utf8_lossy(value);
        let mut end = text.len().min(RECORD_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    }
}

/// The last 50 dead letters, newest last.
#[derive(Debug, Clone, Default)]
pub struct RecentDeadLetters(Arc<Mutex<VecDeque<RecentDeadLetter>>>);

impl RecentDeadLetters {
    pub fn push(&self, letter: RecentDeadLetter) {
        let mut letters = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if letters.len() == KEPT {
            letters.pop_front();
        }
        letters.push_back(letter);
    }

    /// A copy, oldest first.
    pub fn list(&self) -> Vec<RecentDeadLetter> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifty_and_cuts_long_records_on_a_character_boundary() {
        let recent = RecentDeadLetters::default();
        for n in 0..60 {
            recent.push(RecentDeadLetter {
                at_unix_ms: n,
                pipeline: "p".into(),
                node: "op".into(),
                class: "trap".into(),
                reason: format!("#{n}"),
                record: String::new(),
            });
        }
        let list = recent.list();
        assert_eq!(list.len(), 50);
        assert_eq!(list[0].reason, "#10");
        let text = RecentDeadLetter::record_text("é".repeat(2000).as_bytes());
        assert!(text.len() <= 2048 && text.chars().all(|c| c == 'é'));
    }
}
