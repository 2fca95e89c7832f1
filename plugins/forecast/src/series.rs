//! One key's series: the warm-up before its model exists, the model, and its one-step errors.

use serde::{Deserialize, Serialize};

use crate::config::MAX_SEASON_LENGTH;
use crate::model::{Model, Parameters};

/// What one key has learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The slot of the key's last point: its step on the grid of `step`, or its arrival number.
    pub last_slot: i64,
    pub stage: Stage,
}

/// Before and after the model is initialised.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Stage {
    /// The points so far, by slot from `first_slot` (NaN: no point in that slot; a point is
    /// finite); fewer than the warm-up length, in a buffer reserved once for all of them.
    /// Written as a sequence of optional numbers (null for NaN), as state version 1 always was.
    WarmingUp {
        first_slot: i64,
        #[serde(with = "warm_up_points")]
        points: Vec<f64>,
    },
    Ready {
        model: Model,
        errors: SquaredErrors,
    },
}

/// Equal stages: warm-up points compare by their bits, so that two empty slots (NaN) are equal.
impl PartialEq for Stage {
    fn eq(&self, other: &Stage) -> bool {
        match (self, other) {
            (Stage::WarmingUp { first_slot, points }, Stage::WarmingUp { first_slot: other_slot, points: other_points }) => {
                first_slot == other_slot
                    && points.len() == other_points.len()
                    && points.iter().zip(other_points).all(|(point, other)| point.to_bits() == other.to_bits())
            }
            (Stage::Ready { model, errors }, Stage::Ready { model: other_model, errors: other_errors }) => {
                model == other_model && errors == other_errors
            }
            _ => false,
        }
    }
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
    /// Kept for the warm-up: nothing to emit.
    Absorbed,
    /// Learnt by the model; `forecast` is the one-step forecast made before the point was seen
    /// (`None` for the point that completed the warm-up).
    Learnt { forecast: Option<f64> },
    /// The model (or its squared-error sum) stopped being finite and warms up again from the
    /// next point; `forecast` is the one-step forecast the point was given, as for `Learnt`.
    Reset { forecast: Option<f64> },
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
                let length = parameters.warm_up_length();
                if offset.saturating_add(1) < length {
                    // One allocation of exactly the warm-up's size (all but its last point),
                    // not a doubling buffer: what `config::check_memory` counts.
                    if points.capacity() < length - 1 {
                        points.reserve_exact(length - 1 - points.len());
                    }
                    points.resize(offset, f64::NAN);
                    points.push(y);
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
        if model.is_finite() && errors.sum.is_finite() {
            return observed;
        }
        self.stage = Stage::WarmingUp { first_slot: self.last_slot.saturating_add(1), points: Vec::new() };
        match observed {
            Observed::Learnt { forecast } => Observed::Reset { forecast },
            other => other,
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
fn initialise(points: &[f64], offset: usize, y: f64, parameters: &Parameters) -> (Model, Option<f64>) {
    let length = parameters.warm_up_length();
    let mut window: Vec<f64> = (0..length).map(|slot| points.get(slot).copied().unwrap_or(f64::NAN)).collect();
    if let Some(last) = window.get_mut(offset) {
        *last = y;
    }
    let filled = interpolate(&window, (offset, y));
    let mut model = Model::initial(&filled, parameters);
    for &point in &window {
        if point.is_nan() {
            model.skip(1);
        } else {
            model.learn(point, parameters);
        }
    }
    if offset < length {
        return (model, None);
    }
    model.skip((offset - length) as u64);
    let forecast = model.forecast(1);
    (model, Some(forecast))
}

/// `window` with each missing slot (NaN) filled on the line between the nearest points before
/// and after it (`last` is the newest point, possibly beyond the window).
fn interpolate(window: &[f64], last: (usize, f64)) -> Vec<f64> {
    let mut known = window.iter().enumerate().filter(|(_, point)| !point.is_nan()).map(|(slot, &value)| (slot, value)).chain([last]);
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

/// The warm-up points as state version 1 writes them, a sequence of optional numbers (None for
/// a slot without a point), read straight into the compact buffer.
mod warm_up_points {
    use std::fmt;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use super::MAX_SEASON_LENGTH;

    pub fn serialize<S: Serializer>(points: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(points.iter().map(|&point| (!point.is_nan()).then_some(point)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        deserializer.deserialize_seq(PointsVisitor)
    }

    struct PointsVisitor;

    impl<'de> Visitor<'de> for PointsVisitor {
        type Value = Vec<f64>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a sequence of optional numbers")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Vec<f64>, A::Error> {
            // A warm-up holds fewer than two seasons of points: a larger claimed length is
            // corrupt state, and is not trusted for the allocation.
            let mut points = Vec::new();
            points.reserve_exact(sequence.size_hint().unwrap_or(0).min(2 * MAX_SEASON_LENGTH));
            while let Some(point) = sequence.next_element::<Option<f64>>()? {
                points.push(point.unwrap_or(f64::NAN));
            }
            Ok(points)
        }
    }
}
