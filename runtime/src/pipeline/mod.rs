//! Running pipelines: tasks, their supervised operators, batching, watermarks, dead letters.

mod batch;
mod checkpoint;
mod control;
mod dead_letter;
mod operator;
mod running;
mod stop;
mod task;
mod tasks;
mod watermark;

pub use batch::{Batcher, SourceBatch};
pub use checkpoint::{CheckpointTarget, OperatorCheckpoint, TaskCheckpoint};
pub use control::{OperatorInfo, PipelineControl, SwapError, SwapRecord, TaskId};
pub use dead_letter::{DeadLetter, DeadLetterSink};
pub use operator::{DeadRecord, Operator, OperatorError, OperatorSpec, Processed};
pub use running::{OperatorSummary, PipelineSummary, RunError, RunningPipeline, StartError, WasmPluginCheck, operator_spec};
pub use stop::StopSignal;
pub use task::{
    DeadLetterMessage, OutputBatch, OutputClosed, SinkMessage, SwapRequest, SwapStep, Task, TaskError, TaskMessage, TaskOrigin,
    TaskOutputs, TaskStats,
};
pub use tasks::{StartedTask, TaskFactory, TaskSettings};
pub use watermark::WatermarkTracker;
