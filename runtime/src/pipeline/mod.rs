//! Running pipelines: tasks, their supervised operators, batching, watermarks, dead letters.

mod batch;
mod control;
mod dead_letter;
mod operator;
mod running;
mod stop;
mod task;
mod watermark;

pub use batch::{Batcher, SourceBatch};
pub use control::{OperatorInfo, PipelineControl, SwapError, SwapRecord};
pub use dead_letter::{DeadLetter, DeadLetterSink};
pub use operator::{DeadRecord, Operator, OperatorError, OperatorSpec, Processed};
pub use running::{OperatorSummary, PipelineSummary, RunError, RunningPipeline, StartError, WasmPluginCheck, operator_spec};
pub use stop::StopSignal;
pub use task::{SwapRequest, SwapStep, Task, TaskError, TaskMessage, TaskOutputs, TaskStats};
pub use watermark::WatermarkTracker;
