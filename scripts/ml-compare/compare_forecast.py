#!/usr/bin/env python3
"""Compares Sluice's `forecast` operator with statsmodels' ExponentialSmoothing at fixed parameters.

A deterministic set of series (three keys with trend + season of period 12 + noise, one key with
trend + noise and no season; a minute apart in event time) is written as JSON lines, run through
Sluice (file sources -> forecast -> file sinks, one operator per model) and, per key, through
statsmodels' `ExponentialSmoothing(trend="add", seasonal="add" or None, seasonal_periods=12)`
fitted with the same smoothing parameters (`optimized=False`) and the same simple initial values.
Compares every one-step forecast (statsmodels' `fittedvalues`), the last record's h-step forecasts
(`.forecast(h)`), and every prediction interval (against a plain Python loop of the same
recursions, since Holt-Winters in statsmodels has none); exits non-zero when any differs by more
than 1e-6. Prints accuracy side by side (one-step RMSE, h-step RMSE against held-out points,
interval coverage) and throughput: Sluice's wall-clock for the whole `sluice run`, statsmodels'
fit + forecast (one batch fit per key), and the plain Python loop (streaming, point by point).

    ~/.cache/sluice/ml-venv/bin/python scripts/ml-compare/compare_forecast.py \
        --sluice ~/.cache/sluice/target/release/sluice --plugins build/plugins \
        --workdir /tmp/forecast-compare [--records 2400]
"""

import json
import math
import sys
import time
import warnings
from pathlib import Path

import common

import numpy as np
from scipy.stats import norm
from statsmodels.tsa.exponential_smoothing.initialization import _initialization_simple
from statsmodels.tsa.holtwinters import ExponentialSmoothing

SEED = 20261204
START_MS = 1_699_999_980_000  # a whole minute
STEP_MS = 60_000
PERIOD = 12
HORIZON = 2 * PERIOD
INTERVAL = 0.95
TOLERANCE = 1e-6
# Keys and their model: the seasonal ones go through one operator, the plain one through another.
MODELS = {
    "seasonal": {"keys": ["north", "south", "east"], "alpha": 0.3, "beta": 0.05, "gamma": 0.2, "season_length": PERIOD},
    "plain": {"keys": ["flat"], "alpha": 0.4, "beta": 0.1, "gamma": None, "season_length": 0},
}


def arguments():
    return common.arguments(__doc__.split("\n\n")[0], "forecast", 2400, "points over all keys (default 2400: 600 per key)")


def synthetic_series(length):
    """key -> (points fed to both sides, the HORIZON points after them, held out)."""
    rng = np.random.default_rng(SEED)
    keys = [key for model in MODELS.values() for key in model["keys"]]
    series = {}
    for number, key in enumerate(keys):
        t = np.arange(length + HORIZON)
        seasonal = key in MODELS["seasonal"]["keys"]
        level, slope = 100.0 + 40.0 * number, 0.05 + 0.1 * number
        season = (8.0 + 2.0 * number) * np.sin(2 * np.pi * t / PERIOD + number) if seasonal else 0.0
        values = level + slope * t + season + rng.normal(0.0, 2.0, t.size)
        series[key] = (np.round(values[:length], 6), np.round(values[length:], 6))
    return series


def write_streams(workdir, series):
    """One JSON-lines file per model, its keys' points interleaved in event-time order."""
    for name, model in MODELS.items():
        with open(workdir / f"{name}.jsonl", "w") as stream:
            length = len(series[model["keys"][0]][0])
            for index in range(length):
                for key in model["keys"]:
                    record = {"series": key, "ts": START_MS + index * STEP_MS, "amount": float(series[key][0][index])}
                    stream.write(json.dumps(record) + "\n")


def operator_config(model):
    config = {
        "key": ["series"],
        "value": "amount",
        "alpha": model["alpha"],
        "beta": model["beta"],
        "horizon": HORIZON,
        "interval": INTERVAL,
        "step": "1m",
    }
    if model["season_length"]:
        config.update(gamma=model["gamma"], season_length=model["season_length"])
    return config


def write_pipeline(workdir, plugins):
    plugin = Path(plugins).resolve() / "forecast.wasm"
    if not plugin.exists():
        sys.exit(f"{plugin} is missing: build it with ./scripts/build-plugins.sh forecast")
    parts = ['[pipeline]\nname = "forecast-compare"\n']
    for name, model in MODELS.items():
        config = ", ".join(f"{key} = {json.dumps(value)}" for key, value in operator_config(model).items())
        parts.append(
            f'[[sources]]\nname = "{name}-points"\ntype = "file"\npath = "{name}.jsonl"\ntimestamp_field = "ts"\n\n'
            f'[[operators]]\nname = "{name}-forecast"\nplugin = "{plugin}"\ninputs = ["{name}-points"]\n'
            f"config = {{ {config} }}\n\n"
            f'[[sinks]]\nname = "{name}-out"\ntype = "file"\npath = "{name}-forecasts.jsonl"\nformat = "envelope"\n'
            f'inputs = ["{name}-forecast"]\n'
        )
    parts.append('[dead_letter]\ntype = "file"\npath = "dead-letters.jsonl"\n')
    path = workdir / "pipeline.toml"
    path.write_text("\n".join(parts))
    return path


def run_sluice(binary, pipeline):
    """key -> its output records in event-time order, and the wall-clock seconds of the run."""
    elapsed = common.timed_run(binary, pipeline, pipeline.parent / "dead-letters.jsonl")
    outputs = {}
    for name in MODELS:
        with open(pipeline.parent / f"{name}-forecasts.jsonl") as output:
            for line in output:
                envelope = json.loads(line)
                record = json.loads(envelope["value"])
                outputs.setdefault(record["series"], []).append((envelope["timestamp"], record))
    return {key: [record for _, record in sorted(records, key=lambda pair: pair[0])] for key, records in outputs.items()}, elapsed


def statsmodels_fit(y, model):
    """statsmodels' fit with the given parameters and its simple initial values.

    statsmodels 0.15's holtwinters ExponentialSmoothing offers no initialization_method="simple":
    the same values come from its own `_initialization_simple` (what "estimated" uses on short
    series), passed as initialization_method="known".
    """
    seasonal = "add" if model["season_length"] else None
    level, trend, seasons = _initialization_simple(y, "add", seasonal, model["season_length"] or None)
    smoother = ExponentialSmoothing(
        y,
        trend="add",
        seasonal=seasonal,
        seasonal_periods=model["season_length"] or None,
        initialization_method="known",
        initial_level=level,
        initial_trend=trend,
        initial_seasonal=seasons,
    )
    return smoother.fit(
        smoothing_level=model["alpha"], smoothing_trend=model["beta"], smoothing_seasonal=model["gamma"], optimized=False
    )


def python_loop(y, model):
    """The operator's algorithm point by point in plain Python: its output records as
    (forecast, [(value, lower, upper) per step]) from the point completing the warm-up on."""
    alpha, beta, gamma, m = model["alpha"], model["beta"], model["gamma"] or 0.0, model["season_length"]
    warm_up = 2 * m if m else 2
    z = norm.ppf(0.5 + INTERVAL / 2)
    factors, factor = [], 1.0
    for h in range(1, HORIZON + 1):
        factors.append(factor)
        c = alpha * (1 + h * beta) + (gamma if m and h % m == 0 else 0.0)
        factor += c * c
    records, errors_sum, errors_count = [], 0.0, 0
    level = trend = 0.0
    seasons, phase = [], 0
    for index, value in enumerate(y):
        if index + 1 < warm_up:
            continue
        forecast = None
        if index + 1 == warm_up:
            if m:
                level = sum(y[:m]) / m
                trend = sum((y[m + i] - y[i]) / m for i in range(m)) / m
                seasons = [y[i] - level for i in range(m)]
            else:
                level, trend = y[0], y[1] - y[0]
            replay = y[:warm_up]
        else:
            forecast = level + trend + (seasons[phase] if m else 0.0)
            errors_sum += (value - forecast) ** 2
            errors_count += 1
            replay = [value]
        for point in replay:
            season = seasons[phase] if m else 0.0
            base = level + trend
            new_level = alpha * point - alpha * season + (1 - alpha) * base
            trend = beta * (new_level - level) + (1 - beta) * trend
            if m:
                seasons[phase] = gamma * point - gamma * base + (1 - gamma) * season
                phase = (phase + 1) % m
            level = new_level
        sigma = math.sqrt(errors_sum / errors_count) if errors_count else None
        ahead = []
        for h in range(1, HORIZON + 1):
            value_h = level + h * trend + (seasons[(phase + h - 1) % m] if m else 0.0)
            half = z * sigma * math.sqrt(factors[h - 1]) if sigma is not None else None
            ahead.append((value_h, None if half is None else value_h - half, None if half is None else value_h + half))
        records.append((forecast, ahead))
    return records


def largest_difference(pairs):
    """The largest |a - b|; infinite when only one of a pair is None (null) or one is NaN."""
    differences = [math.inf if a is None or b is None else abs(a - b) for a, b in pairs if a is not None or b is not None]
    if any(math.isnan(d) for d in differences):
        return math.inf
    return max(differences, default=0.0)


def compare_key(key, y, future, model, records, fit, loop):
    """The figures of one key: differences to the references, and accuracy."""
    m = model["season_length"]
    first = (2 * m if m else 2) - 1
    figures = {"records": (len(records), len(y) - first)}
    values = [(record["value"], y[first + i]) for i, record in enumerate(records)]
    one_step = [(record["forecast"], fit.fittedvalues[first + i]) for i, record in enumerate(records) if record["forecast"] is not None]
    figures["value"] = largest_difference(values)
    figures["one_step"] = largest_difference(one_step)
    last = records[-1]["forecasts"]
    statsmodels_ahead = fit.forecast(HORIZON)
    # statsmodels' forecast() takes the seasonal of the last point's phase from before that point
    # was learnt (model.py, _predict: s[nobs + m - 1:] = [s[(nobs - 1) + j % m] ...]) at steps
    # m, 2m, ...; Sluice uses the updated one, as FPP's formula does. Those steps are compared
    # with the plain loop, and statsmodels' difference there is printed.
    quirk = [h for h in range(1, HORIZON + 1) if m and h % m == 0]
    figures["h_step"] = largest_difference([(last[h - 1]["value"], statsmodels_ahead[h - 1]) for h in range(1, HORIZON + 1) if h not in quirk])
    figures["h_step_quirk_loop"] = largest_difference([(last[h - 1]["value"], loop[-1][1][h - 1][0]) for h in quirk])
    figures["h_step_quirk_statsmodels"] = largest_difference([(last[h - 1]["value"], statsmodels_ahead[h - 1]) for h in quirk])
    bounds = []
    for record, (forecast, ahead) in zip(records, loop):
        bounds.append((record["forecast"], forecast))
        for step, (value, lower, upper) in zip(record["forecasts"], ahead):
            bounds += [(step["value"], value), (step["lower"], lower), (step["upper"], upper)]
    figures["loop"] = largest_difference(bounds) if len(records) == len(loop) else math.inf
    residuals = [record["residual"] for record in records if record["residual"] is not None]
    figures["one_step_rmse"] = (math.sqrt(np.mean(np.square(residuals))), math.sqrt(np.mean(np.square(fit.resid[first + 1 :]))))
    figures["future"] = (np.array([step["value"] for step in last]), np.array(statsmodels_ahead), future)
    inside = [
        step_low <= value <= step_high
        for record, value in zip(records, y[first + 1 :])
        for step_low, step_high in [(record["forecasts"][0]["lower"], record["forecasts"][0]["upper"])]
        if step_low is not None
    ]
    figures["coverage"] = (sum(inside), len(inside))
    return figures


def main():
    warnings.simplefilter("ignore")
    args = arguments()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    keys = sum(len(model["keys"]) for model in MODELS.values())
    length = max(args.records // keys, 2 * PERIOD + 2)
    series = synthetic_series(length)
    write_streams(workdir, series)
    pipeline = write_pipeline(workdir, args.plugins)

    # The first run compiles the component into Sluice's cache; the second is the one timed.
    _, cold_seconds = run_sluice(args.sluice, pipeline)
    outputs, sluice_seconds = run_sluice(args.sluice, pipeline)

    fits, loops, statsmodels_seconds, loop_seconds = {}, {}, 0.0, 0.0
    for model in MODELS.values():
        for key in model["keys"]:
            y = series[key][0]
            started = time.perf_counter()
            fits[key] = statsmodels_fit(y, model)
            fits[key].forecast(HORIZON)
            statsmodels_seconds += time.perf_counter() - started
            points = [float(value) for value in y]
            started = time.perf_counter()
            loops[key] = python_loop(points, model)
            loop_seconds += time.perf_counter() - started

    failures = []
    print(f"forecast: {keys} keys x {length} points (season {PERIOD} on {len(MODELS['seasonal']['keys'])} keys, none on 1), horizon {HORIZON}")
    print(f"{'key':8}{'records':>10}{'value':>10}{'one-step':>10}{'h-step':>10}{'h=m,2m*':>10}{'loop':>10}{'sm h=m*':>10}")
    totals = {"one_step": 0.0, "h_step": 0.0, "h_step_quirk_loop": 0.0, "loop": 0.0, "value": 0.0}
    accuracy = []
    for model in MODELS.values():
        for key in model["keys"]:
            y, future = series[key]
            records = outputs.get(key, [])
            if not records:
                failures.append(f"no output for key {key}")
                continue
            figures = compare_key(key, [float(v) for v in y], future, model, records, fits[key], loops[key])
            emitted, expected = figures["records"]
            if emitted != expected:
                failures.append(f"key {key}: {emitted} records emitted, {expected} expected")
            for name in totals:
                totals[name] = max(totals[name], figures[name])
            print(
                f"{key:8}{emitted:>10}{figures['value']:>10.1e}{figures['one_step']:>10.1e}{figures['h_step']:>10.1e}"
                f"{figures['h_step_quirk_loop']:>10.1e}{figures['loop']:>10.1e}{figures['h_step_quirk_statsmodels']:>10.2g}"
            )
            accuracy.append((key, figures))
    print("(max |Sluice - reference|: one-step vs statsmodels fittedvalues, h-step vs statsmodels .forecast(h) at steps")
    print(" not multiples of 12; h=m,2m* vs the plain loop; loop: every forecast and interval bound vs the plain loop;")
    print(" sm h=m*: statsmodels' own difference at steps 12, 24, where its forecast() reuses a pre-update seasonal)")
    print()
    print(f"{'':34}{'sluice forecast':>18}{'statsmodels':>14}")
    for key, figures in accuracy:
        sluice_ahead, statsmodels_ahead, future = figures["future"]
        sluice_rmse = math.sqrt(float(np.mean((sluice_ahead - future) ** 2)))
        statsmodels_rmse = math.sqrt(float(np.mean((statsmodels_ahead - future) ** 2)))
        sluice_one_step, statsmodels_one_step = figures["one_step_rmse"]
        print(f"{key + ' one-step RMSE':34}{sluice_one_step:>18.4f}{statsmodels_one_step:>14.4f}")
        print(f"{key + f' {HORIZON}-step RMSE (held out)':34}{sluice_rmse:>18.4f}{statsmodels_rmse:>14.4f}")
        inside, counted = figures["coverage"]
        print(f"{key + ' 95% one-step coverage':34}{inside / counted:>18.3f}{'(none)':>14}")
    points = keys * length
    sluice_rate, statsmodels_rate, loop_rate = points / sluice_seconds, points / statsmodels_seconds, points / loop_seconds
    print()
    print(f"{'throughput (records/s)':34}{'seconds':>10}{'records/s':>14}{'sluice / it':>14}")
    print(f"{'sluice run (whole pipeline)':34}{sluice_seconds:>10.3f}{sluice_rate:>14,.0f}{1.0:>14.1f}")
    print(f"{'statsmodels fit+forecast (batch)':34}{statsmodels_seconds:>10.3f}{statsmodels_rate:>14,.0f}{sluice_rate / statsmodels_rate:>14.1f}")
    print(f"{'plain Python loop (streaming)':34}{loop_seconds:>10.3f}{loop_rate:>14,.0f}{sluice_rate / loop_rate:>14.1f}")
    print("(sluice: wall-clock of the whole `sluice run` over the files, the component already compiled, startup")
    print(f" included; the first run, which also compiled it, took {cold_seconds:.3f} s. statsmodels: one fit over each")
    print(" whole series, not streaming: a fit per point would repeat it per point. loop: the operator's per-point algorithm)")

    for name, largest in totals.items():
        if not largest <= TOLERANCE:
            failures.append(f"largest {name} difference {largest:.3g} exceeds {TOLERANCE}")
    return common.verdict(failures, f"OK: every difference is within {TOLERANCE}")


if __name__ == "__main__":
    sys.exit(main())
