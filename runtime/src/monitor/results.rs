//! The live results of `console` sinks: the latest records of each, bounded, for the web
//! console's table and chart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which fields the console charts: `y` over `x`, one line per value of `series`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartConfig {
    pub x: Option<String>,
    pub y: Option<String>,
    pub series: Option<String>,
}

/// The latest records of one console sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultBoard {
    pub pipeline: String,
    pub sink: String,
    pub keep: usize,
    pub chart: ChartConfig,
    /// Records received in all.
    pub total: u64,
    /// The latest `keep` records, oldest first (JSON; other payloads as strings).
    pub rows: VecDeque<Row>,
}

/// One record of a board, shared: a reader copies a pointer a record under the sinks' lock,
/// not the record (a board keeps up to 100,000).
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Arc<Value>);

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Every console sink's board, by sink name.
#[derive(Debug, Clone, Default)]
pub struct ResultBoards(Arc<Mutex<BTreeMap<String, ResultBoard>>>);

impl ResultBoards {
    /// Opens (or, after a restart, clears) the board of `sink`.
    pub fn open(&self, pipeline: &str, sink: &str, keep: usize, chart: ChartConfig) {
        let board = ResultBoard { pipeline: pipeline.into(), sink: sink.into(), keep, chart, total: 0, rows: VecDeque::new() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(sink.into(), board);
    }

    /// Forgets the boards of `pipeline`'s console sinks: it stops to restart, and the run after
    /// opens those it still has (a sink a reload removed leaves no board behind).
    pub fn close_pipeline(&self, pipeline: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, board| board.pipeline != pipeline);
    }

    /// Adds records (payloads) to `sink`'s board, forgetting the oldest beyond its bound.
    /// They are parsed before the lock is taken: readers never wait for parsing.
    pub fn add<'a>(&self, sink: &str, values: impl Iterator<Item = &'a [u8]>) {
        let rows: Vec<Row> = values
            .map(|value| serde_json::from_slice(value).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned())))
            .map(|value| Row(Arc::new(value)))
            .collect();
        let mut boards = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(board) = boards.get_mut(sink) else { return };
        for row in rows {
            if board.rows.len() == board.keep {
                board.rows.pop_front();
            }
            board.rows.push_back(row);
            board.total += 1;
        }
    }

    /// A copy of every board with the records it keeps (its sink's `keep`; the console asks
    /// once a second: the lock the sinks write through is held only to copy the pointers).
    pub fn list(&self) -> Vec<ResultBoard> {
        let boards = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        boards
            .values()
            .map(|board| ResultBoard {
                pipeline: board.pipeline.clone(),
                sink: board.sink.clone(),
                keep: board.keep,
                chart: board.chart.clone(),
                total: board.total,
                rows: board.rows.iter().cloned().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_keeps_its_latest_records_and_counts_all() {
        let boards = ResultBoards::default();
        boards.open("p", "many", 5000, ChartConfig::default());
        boards.add("many", (0..6000).map(|_| &b"{}"[..]));
        let many = boards.list().into_iter().find(|board| board.sink == "many").expect("board");
        assert_eq!((many.total, many.rows.len()), (6000, 5000), "every record `keep` asks for is listed");

        boards.open("p", "live", 3, ChartConfig::default());
        let records: Vec<Vec<u8>> = (0..5).map(|n| format!("{{\"n\":{n}}}").into_bytes()).chain([b"plain".to_vec()]).collect();
        boards.add("live", records.iter().map(Vec::as_slice));
        let board = &boards.list().into_iter().find(|board| board.sink == "live").expect("board");
        assert_eq!(board.total, 6);
        assert_eq!(
            board.rows.iter().map(|row| (*row.0).clone()).collect::<Vec<Value>>(),
            vec![serde_json::json!({"n": 3}), serde_json::json!({"n": 4}), Value::String("plain".into())]
        );
        assert_eq!(serde_json::to_value(&board.rows[0]).expect("JSON"), serde_json::json!({"n": 3}), "a row is its record");
    }

    #[test]
    fn a_pipeline_stopped_to_restart_leaves_no_board_behind() {
        let boards = ResultBoards::default();
        boards.open("p", "live", 3, ChartConfig::default());
        boards.open("other", "elsewhere", 3, ChartConfig::default());
        boards.close_pipeline("p");
        let left: Vec<String> = boards.list().into_iter().map(|board| board.sink).collect();
        assert_eq!(left, ["elsewhere"]);
        boards.add("live", [&b"{}"[..]].into_iter());
        assert_eq!(boards.list().len(), 1, "records of a closed board go nowhere");
    }
}
