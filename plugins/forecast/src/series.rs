//! One key's series: the warm-up before its model exists, the model, and its one-step errors.

use serde::{Deserialize, Serialize};

use crate::model::{Model, Parameters};

/// What one key has learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The slot of the key's last point: its step on the grid of `step`, or its arrival number.
    pub last_slot: i64,
    pub stage: Stage,
}

/// Before and after the model is initialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stage {
    /// The points so far, by slot from `first_slot` (`None`: no point in that slot); fewer than
    /// the warm-up length.
    WarmingUp {
        first_slot: i64,
        points: Vec<Option<f64>>,
    },
    Ready {
        model: Model,
        errors: SquaredErrors,
    },
}

/// The one-step errors since initialisation, for the variance of the forecasts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SquaredErrors {
    pub count: u64,
    pub sum: f64,
}

impl SquaredErrors {
    fn add(&mut self, error: f64) {
        self.count += 1;
        self.sum += error * error;
    }

    /// σ²: the mean of the squared one-step errors; `None` before the first.
    pub fn variance(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// What a point did to its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    /// Kept for the warm-up (or the model was reset): nothing to emit.
    Absorbed,
    /// Learnt by the model; `forecast` is the one-step forecast made before the point was seen
    /// (`None` for the point that completed the warm-up).
    Learnt { forecast: Option<f64> },
    /// The model stopped being finite and warms up again from the next point.
    Reset,
}

impl Series {
    /// A series whose first point is in `slot`.
    pub fn new(slot: i64) -> Series {
        Series { last_slot: slot.saturating_sub(1), stage: Stage::WarmingUp { first_slot: slot, points: Vec::new() } }
    }

    /// Whether the series is still warming up.
    pub fn warming_up(&self) -> bool {
        matches!(self.stage, Stage::WarmingUp { .. })
    }

    /// The model, once initialised.
    pub fn model(&self) -> Option<(&Model, &SquaredErrors)> {
        match &self.stage {
            Stage::Ready { model, errors } => Some((model, errors)),
            Stage::WarmingUp { .. } => None,
        }
    }

    /// Learns the point `y` in `slot`, which must be after `last_slot`; skipped slots advance the
    /// model without learning.
    pub fn observe(&mut self, slot: i64, y: f64, parameters: &Parameters) -> Observed {
        let skipped = distance(self.last_slot, slot).saturating_sub(1);
        self.last_slot = slot;
        let observed = match &mut self.stage {
            Stage::WarmingUp { first_slot, points } => {
                let offset = usize::try_from(distance(*first_slot, slot)).unwrap_or(usize::MAX);
                if offset.saturating_add(1) < parameters.warm_up_length() {
                    points.resize(offset, None);
                    points.push(Some(y));
                    return Observed::Absorbed;
                }
                let (model, forecast) = initialise(points, offset, y, parameters);
                self.stage = Stage::Ready { model, errors: SquaredErrors::default() };
                Observed::Learnt { forecast }
            }
            Stage::Ready { model, .. } => {
                model.skip(skipped);
                Observed::Learnt { forecast: Some(model.forecast(1)) }
            }
        };
        self.learn_after_warm_up(observed, y, parameters)
    }

    /// Learns `y` (unless the warm-up replay learnt it already) and checks the model stayed finite.
    fn learn_after_warm_up(&mut self, observed: Observed, y: f64, parameters: &Parameters) -> Observed {
        let Stage::Ready { model, errors } = &mut self.stage else { return observed };
        if let Observed::Learnt { forecast: Some(forecast) } = observed {
            errors.add(y - forecast);
            model.learn(y, parameters);
        }
        if model.is_finite() {
            observed
        } else {
            self.stage = Stage::WarmingUp { first_slot: self.last_slot.saturating_add(1), points: Vec::new() };
            Observed::Reset
        }
    }
}

/// `to - from` in slots, 0 if not after.
fn distance(from: i64, to: i64) -> u64 {
    u64::try_from(i128::from(to) - i128::from(from)).unwrap_or(0)
}

/// Initialises the model from the warm-up points and the point `y` at `offset` (at or after the
/// warm-up's last slot), and replays the warm-up: statsmodels runs its recursions from the first
/// point. Slots without a point are filled by linear interpolation for the initial values, and
/// skipped (no learning) in the replay. Returns the model and, if `y` lies after the warm-up, the
/// one-step forecast made for it (which the caller then learns).
fn initialise(points: &[Option<f64>], offset: usize, y: f64, parameters: &Parameters) -> (Model, Option<f64>) {
    let length = parameters.warm_up_length();
    let mut window: Vec<Option<f64>> = (0..length).map(|slot| points.get(slot).copied().flatten()).collect();
    if let Some(last) = window.get_mut(offset) {
        *last = Some(y);
    }
    let filled = interpolate(&window, (offset, y));
    let mut model = Model::initial(&filled, parameters);
    for point in &window {
        match point {
            Some(value) => model.learn(*value, parameters),
            None => model.skip(1),
        }
    }
    if offset < length {
        return (model, None);
    }
    model.skip((offset - length) as u64);
    let forecast = model.forecast(1);
    (model, Some(forecast))
}

/// `window` with each missing slot filled on the line between the nearest points before and
/// after it (`last` is the newest point, possibly beyond the window).
fn interpolate(window: &[Option<f64>], last: (usize, f64)) -> Vec<f64> {
    let mut known = window.iter().enumerate().filter_map(|(slot, point)| point.map(|value| (slot, value))).chain([last]);
    let mut next = known.next().unwrap_or(last);
    let mut before = next;
    let mut filled = Vec::with_capacity(window.len());
    for slot in 0..window.len() {
        while next.0 < slot {
            match known.next() {
                Some(point) => (before, next) = (next, point),
                None => break,
            }
        }
        // Past the newest point or before the first (neither happens with a point in slot 0):
        // the nearest value carries.
        if next.0 <= slot || before.0 >= slot || before.0 == next.0 {
            filled.push(if next.0 <= slot { next.1 } else { before.1 });
            continue;
        }
        let share = (slot - before.0) as f64 / (next.0 - before.0) as f64;
        filled.push(before.1 + share * (next.1 - before.1));
    }
    filled
}
