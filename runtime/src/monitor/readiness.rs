//! Whether the process is ready for work, as a load balancer or an orchestrator asks it
//! (`GET /ready`): a pipeline runs and is not stopping. `/health` says only that the process
//! answers.

use std::sync::{Arc, Mutex, PoisonError};

use crate::pipeline::StopSignal;

/// The process's readiness, shared by the command that runs pipelines and the listeners.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<Mutex<Phase>>);

#[derive(Clone, Default, Debug)]
enum Phase {
    /// Plugins compiling, brokers awaited: nothing runs yet.
    #[default]
    Starting,
    /// A pipeline runs until its stop signal is raised.
    Running(StopSignal),
    /// The pipeline ended or stops to restart with a changed definition.
    Ended,
}

impl Readiness {
    /// A pipeline started; it is ready while `stop` is not raised.
    pub fn running(&self, stop: StopSignal) {
        *self.phase() = Phase::Running(stop);
    }

    /// The pipeline ended (or drains before a restart, which calls `running` again).
    pub fn ended(&self) {
        *self.phase() = Phase::Ended;
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), &'static str> {
        match &*self.phase() {
            Phase::Starting => Err("the pipeline is starting (plugins compiling, brokers awaited)"),
            Phase::Running(stop) if stop.is_raised() => Err("the pipeline is stopping: it drains what it has read"),
            Phase::Running(_) => Ok(()),
            Phase::Ended => Err("the pipeline has ended, or is restarting with a changed definition"),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_a_pipeline_runs_and_is_not_stopping() {
        let readiness = Readiness::default();
        assert!(readiness.check().is_err_and(|why| why.contains("starting")));
        let stop = StopSignal::default();
        readiness.running(stop.clone());
        assert_eq!(readiness.check(), Ok(()));
        stop.raise();
        assert!(readiness.check().is_err_and(|why| why.contains("stopping")));
        readiness.ended();
        assert!(readiness.check().is_err_and(|why| why.contains("ended")));
    }
}
