//! Test plugin: a pass-through operator built against the previous WIT package,
//! `sluice:plugin@0.1.0` (a copy in `wit/`). Sluice must refuse it, naming the version it was
//! built for and the one it needs.

wit_bindgen::generate!({ path: "wit", world: "operator" });

struct PassThrough;

impl Guest for PassThrough {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Batch) -> Output {
        Output { batch, rejected: Vec::new() }
    }

    fn on_watermark(_watermark: i64) -> Batch {
        Batch { bytes: Vec::new(), events: Vec::new(), headers: Vec::new() }
    }

    fn snapshot() -> State {
        State { version: 0, bytes: Vec::new() }
    }

    fn restore(_state: State) -> Result<(), String> {
        Ok(())
    }
}

export!(PassThrough);
