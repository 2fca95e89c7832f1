//! How well the model forecasts: exact series, and the coverage of its prediction intervals.

use sluice_sdk::serde_json::{Value, json};

use super::{Noise, close, number, operator, points, run};

/// The forecasts of `record`, step by step, as (value, lower, upper).
fn ahead(record: &Value) -> Vec<(f64, f64, f64)> {
    let forecasts = record["forecasts"].as_array().cloned().unwrap_or_default();
    forecasts.iter().map(|step| (number(&step["value"]), number(&step["lower"]), number(&step["upper"]))).collect()
}

/// A line: the simple initialisation (level y₀, trend y₁ − y₀) forecasts y₀ as y₁, as
/// statsmodels does, and the recursions then converge on the line.
#[test]
fn holts_linear_method_converges_on_a_line() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.8, "beta": 0.5, "horizon": 3}));
    let line = |t: usize| 3.0 + 2.0 * t as f64;
    let out = run(&mut forecast, &points("a", &(0..60).map(line).collect::<Vec<_>>(), 0));
    assert_eq!(out.len(), 59, "the first point is absorbed, the second completes the warm-up");
    assert!(number(&out[1]["residual"]).abs() > 0.01, "the replayed first point moved the level off the line");
    for (record, t) in out.iter().zip(1..).skip(40) {
        assert!(close(number(&record["forecast"]), line(t), 1e-9), "point {t}: {record}");
        for (step, (value, lower, upper)) in ahead(record).into_iter().enumerate() {
            assert!(close(value, line(t + step + 1), 1e-9), "point {t}, step {}", step + 1);
            assert!(lower < value && value < upper, "the early errors still count in σ²");
        }
    }
}

/// Trend and season without noise: the simple initialisation is off (its seasonals hold the
/// first season's share of the trend), but the recursions correct it within a few dozen seasons.
#[test]
fn a_pure_seasonal_and_trend_series_is_forecast_nearly_exactly() {
    let pattern = [3.0, -1.0, 4.0, -1.0, -5.0, 0.0];
    let truth = |t: usize| 50.0 + 0.7 * t as f64 + pattern[t % 6];
    let config = json!({"key": ["k"], "value": "y", "alpha": 0.5, "beta": 0.3, "gamma": 0.5, "season_length": 6, "horizon": 12});
    let mut forecast = operator(config);
    let series: Vec<f64> = (0..300).map(truth).collect();
    let out = run(&mut forecast, &points("a", &series, 0));
    assert_eq!(out.len(), 300 - 11, "two seasons of warm-up, the last of which is emitted");
    let early = number(&out[1]["residual"]).abs();
    assert!(early > 0.01, "the initial seasonals are off at first: {early}");
    for (record, t) in out.iter().zip(11..).skip(out.len() - 6) {
        assert!(close(number(&record["forecast"]), truth(t), 1e-5), "point {t}: {record}");
    }
    let last = out.last().cloned().unwrap_or_default();
    for (step, (value, _, _)) in ahead(&last).into_iter().enumerate() {
        assert!(close(value, truth(300 + step), 1e-5), "step {}: {value} instead of {}", step + 1, truth(300 + step));
    }
}

/// Data drawn from the additive Holt-Winters model itself (ETS(A,A,A), with ETS β = α·β*): the
/// h-step intervals then hold 95 % of the points h steps later, for every h, and widen with h.
#[test]
fn intervals_widen_with_the_horizon_and_cover_95_percent_of_model_noise() {
    let (alpha, beta, gamma, m, horizon) = (0.3, 0.2, 0.2, 4, 6);
    let mut noise = Noise(7);
    let (mut level, mut trend, mut seasonals) = (100.0, 0.1, [2.0, -1.0, 3.0, -4.0]);
    let series: Vec<f64> = (0..20_000)
        .map(|t| {
            let error = noise.gaussian();
            let y = level + trend + seasonals[t % m] + error;
            level += trend + alpha * error;
            trend += alpha * beta * error;
            seasonals[t % m] += gamma * error;
            y
        })
        .collect();
    let config = json!({"value": "y", "alpha": alpha, "beta": beta, "gamma": gamma, "season_length": m, "horizon": horizon});
    let out = run(&mut operator(config), &points("a", &series, 0));
    let first = 2 * m - 1;
    let mut covered = vec![0usize; horizon];
    let mut counted = 0;
    for (position, record) in out.iter().enumerate().skip(500) {
        let t = first + position;
        if t + horizon >= series.len() {
            break;
        }
        counted += 1;
        for (step, (_, lower, upper)) in ahead(record).into_iter().enumerate() {
            covered[step] += usize::from((lower..=upper).contains(&series[t + step + 1]));
        }
    }
    for (step, covered) in covered.iter().enumerate() {
        let coverage = *covered as f64 / counted as f64;
        assert!((0.935..=0.965).contains(&coverage), "step {}: coverage {coverage}", step + 1);
    }
    let widths: Vec<f64> = ahead(&out[out.len() - 1]).iter().map(|(_, lower, upper)| upper - lower).collect();
    assert!(widths.windows(2).all(|pair| pair[0] < pair[1]), "{widths:?}");
}

/// A season plus Gaussian noise (not drawn from the model): the one-step intervals, from the
/// mean squared one-step error, still hold about 95 % of the next points.
#[test]
fn one_step_intervals_cover_95_percent_of_gaussian_noise() {
    let mut noise = Noise(11);
    let series: Vec<f64> =
        (0..10_000).map(|t| 20.0 + 5.0 * (t as f64 * std::f64::consts::TAU / 12.0).sin() + 2.0 * noise.gaussian()).collect();
    let config = json!({"value": "y", "alpha": 0.1, "beta": 0.01, "gamma": 0.1, "season_length": 12, "interval": 0.95});
    let out = run(&mut operator(config), &points("a", &series, 0));
    let mut inside = 0;
    for pair in out[200..].windows(2) {
        let (_, lower, upper) = ahead(&pair[0])[0];
        inside += usize::from((lower..=upper).contains(&number(&pair[1]["value"])));
    }
    let coverage = inside as f64 / (out.len() - 201) as f64;
    assert!((0.93..=0.97).contains(&coverage), "coverage {coverage}");
}
