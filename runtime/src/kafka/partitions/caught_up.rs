//! Whether quiet source partitions are caught up, asked of the brokers off the consumer's
//! thread: a partition is caught up when the consumer's position is at its high watermark.
//! One question per partition is in flight at a time, so a slow or frozen broker neither
//! blocks consumption nor piles up requests; an unanswered question confirms nothing.

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;

use super::PartitionId;
use crate::kafka::KafkaClientError;

/// Longest wait for one answer; a broker slower than this confirms nothing.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// A question: is `id` at its end, given the consumer's `position` when it was asked?
struct Question {
    id: PartitionId,
    position: i64,
    asked_at: Instant,
}

/// An answer: the partition was caught up when asked (`asked_at`), or not (or no answer came).
pub struct Answer {
    pub id: PartitionId,
    pub asked_at: Instant,
    pub caught_up: bool,
}

/// The asking side, kept by the consumer's thread.
pub struct CaughtUpProbe {
    questions: SyncSender<Question>,
    answers: Receiver<Answer>,
    in_flight: HashSet<PartitionId>,
}

impl CaughtUpProbe {
    /// Starts the thread that asks, with a metadata client made from `config`.
    pub fn start(config: &ClientConfig) -> Result<CaughtUpProbe, KafkaClientError> {
        let client = crate::kafka::admin::metadata_consumer(config)?;
        let (questions, incoming) = mpsc::sync_channel::<Question>(1024);
        let (answering, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("sluice-caught-up".into())
            .spawn(move || {
                for question in incoming {
                    let high = client.fetch_watermarks(&question.id.0, question.id.1, ANSWER_LIMIT).map(|(_, high)| high);
                    let caught_up = high.is_ok_and(|high| question.position >= high);
                    if answering.send(Answer { id: question.id, asked_at: question.asked_at, caught_up }).is_err() {
                        return;
                    }
                }
            })
            .map_err(|error| KafkaClientError::Checkpoint(format!("cannot start the caught-up probe: {error}")))?;
        Ok(CaughtUpProbe { questions, answers, in_flight: HashSet::new() })
    }

    /// Asks about `id` at `position`, unless a question about it is still unanswered.
    pub fn ask(&mut self, id: &PartitionId, position: i64) {
        if self.in_flight.contains(id) {
            return;
        }
        match self.questions.try_send(Question { id: id.clone(), position, asked_at: Instant::now() }) {
            Ok(()) => {
                self.in_flight.insert(id.clone());
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }

    /// The answers that came since the last call.
    pub fn answers(&mut self) -> Vec<Answer> {
        let answers: Vec<Answer> = self.answers.try_iter().collect();
        for answer in &answers {
            self.in_flight.remove(&answer.id);
        }
        answers
    }
}
