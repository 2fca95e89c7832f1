//! The core of a running pipeline: tasks and their supervised operators, event time,
//! checkpoints, keyed exchanges as tasks see them, and the control that swaps operators.
//! How these are wired together for one pipeline is in `crate::topology`.

mod batch;
mod checkpoint;
mod control;
mod dead_letter;
mod event_order;
mod exchange;
mod journal;
mod key;
mod lineage;
mod operator;
mod rounds;
mod sequences;
mod stop;
mod task;
mod tasks;
mod upstreams;
mod watermark;

pub use batch::{Batcher, Origin, SourceBatch};
pub use checkpoint::{CheckpointTarget, OperatorCheckpoint, TaskCheckpoint};
pub use control::{CarriedOver, OperatorInfo, PipelineControl, SwapError, SwapRecord, TaskId};
pub use dead_letter::{DeadLetter, NO_EVENT_TIME};
pub use event_order::{EventTimeOrder, HeldRecord, ReadAt};
pub use exchange::{ExchangeOutput, ExchangeRouting, LocalExchange, SourcePositions, Unroutable};
pub use key::{KeySelector, murmur2, partition_of};
pub use operator::{
    DeadRecord, ENCODINGS, Isolation, Operator, OperatorError, OperatorSpec, OutputReaders, Processed, StateHandover, declared_info,
};
pub use rounds::{CoordinatorTarget, RoundReport, RoundRequest, ShareRounds};
pub use stop::StopSignal;
pub use task::{
    Barrier, DeadLetterMessage, OutputBatch, OutputClosed, SinkMessage, SwapRequest, SwapStep, Task, TaskError, TaskMessage, TaskOrigin,
    TaskOutputs, TaskParts, TaskStats, flush_sinks,
};
pub use tasks::{
    ExchangeWiring, NoExchanges, SharedOutputs, StartedTask, TASK_QUEUE, TaskFactory, TaskSettings, TaskStart, TaskStartError,
};
pub use upstreams::{UpstreamNames, Upstreams};
pub use watermark::{Arrival, WatermarkGenerator};
