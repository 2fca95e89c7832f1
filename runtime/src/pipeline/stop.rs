//! The signal that asks a pipeline's sources to stop so that it can drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Raised once; every clone sees it. Sources check it between records. A child signal is
/// also raised by its parent: Ctrl-C stops the process, a restart only the old pipeline.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl StopSignal {
    /// A signal raised by itself or by `self`.
    pub fn child(&self) -> StopSignal {
        StopSignal { own: Arc::default(), parent: Some(self.own.clone()) }
    }

    pub fn raise(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.own.load(Ordering::SeqCst) || self.parent.as_ref().is_some_and(|parent| parent.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::StopSignal;

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_reverse() {
        let process = StopSignal::default();
        let first = process.child();
        first.raise();
        assert!(first.is_raised() && !process.is_raised());
        let second = process.child();
        assert!(!second.is_raised());
        process.raise();
        assert!(second.is_raised());
    }
}
