//! The signal that asks a pipeline's sources to stop so that it can drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Raised once; every clone sees it. Sources check it between records.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
