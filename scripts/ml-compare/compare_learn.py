#!/usr/bin/env python3
"""Compares Sluice's `learn` operator with river's online linear models, test-then-train.

A deterministic stream (3 numeric features of very different scales, 2 categorical features, a
binary label from a hidden logistic rule with noise, and a numeric target from a hidden linear
rule with noise) is written as JSON lines and run through Sluice (file source -> learn -> file
sinks) twice: as a classifier of the label and as a regressor of the target. river learns the
same stream in the same order with the same setup, progressive validation (predict_one, then
learn_one):

    classification: (Select(x1, x2, x3) | StandardScaler()) + (Select(c1, c2) | OneHotEncoder())
                    | LogisticRegression(optimizer=optim.SGD(0.01))
    regression:     the same features | LinearRegression(optimizer=optim.SGD(0.01))

and Sluice's `learn` is configured alike (`standardize = true`, numeric = [x1, x2, x3],
categorical = [c1, c2], SGD with learning_rate 0.01, the intercept stepping by 0.01 as river's
default intercept_lr). The progressive log-loss and ROC AUC (classification) and MAE and RMSE
(regression) over the whole stream are computed from both sets of predictions with the same
scikit-learn functions. Prints them side by side with their relative differences, the largest
per-record difference of the predictions, and the throughput of each: Sluice's wall-clock for the
whole `sluice run` over the file, river's predict/learn loop alone. Exits non-zero when a metric
differs by more than 2 %.

    ~/.cache/sluice/ml-venv/bin/python scripts/ml-compare/compare_learn.py \\
        --sluice ~/.cache/sluice/target/release/sluice --plugins build/plugins \\
        --workdir /tmp/learn-compare [--records 100000]
"""

import json
import math
import sys
import time
from pathlib import Path

import common

import numpy as np
from river import compose, linear_model, optim, preprocessing
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

SEED = 20261204
START_MS = 1_767_225_600_000
NUMERIC = ["x1", "x2", "x3"]
CATEGORICAL = ["c1", "c2"]
LEARNING_RATE = 0.01
TOLERANCE = 0.02  # largest relative difference of a metric


def arguments():
    return common.arguments(__doc__.split("\n\n")[0], "learn", 100_000, "records in the stream (default 100000)")


def planted_stream(records):
    """The records as dicts: features, a noisy logistic label `y`, a noisy linear target `target`."""
    rng = np.random.default_rng(SEED)
    x1 = rng.normal(0.0, 1.0, records)  # unit scale
    x2 = rng.normal(50.0, 10.0, records)  # offset and ten times wider
    x3 = rng.exponential(300.0, records)  # skewed, hundreds
    c1_levels = ["a", "b", "c", "d", "e"]
    c2_levels = [f"s{n}" for n in range(20)]
    c1 = rng.integers(0, len(c1_levels), records)
    c2 = rng.integers(0, len(c2_levels), records)
    c1_effect = np.array([0.8, -0.6, 0.0, 0.4, -1.0])
    c2_effect = rng.normal(0.0, 0.5, len(c2_levels))
    z1, z2, z3 = x1, (x2 - 50.0) / 10.0, (x3 - 300.0) / 300.0
    logit = 1.2 * z1 - 0.8 * z2 + 0.6 * z3 + c1_effect[c1] + c2_effect[c2] - 0.3
    labels = rng.uniform(size=records) < 1.0 / (1.0 + np.exp(-logit))
    target = 10.0 + 2.0 * z1 - 1.5 * z2 + 0.7 * z3 + 2.0 * c1_effect[c1] + c2_effect[c2] + rng.normal(0.0, 0.5, records)
    rows = []
    for n in range(records):
        rows.append(
            {
                "id": n,
                "ts": START_MS + 100 * n,
                "x1": round(float(x1[n]), 6),
                "x2": round(float(x2[n]), 6),
                "x3": round(float(x3[n]), 6),
                "c1": c1_levels[c1[n]],
                "c2": c2_levels[c2[n]],
                "y": bool(labels[n]),
                "target": round(float(target[n]), 6),
            }
        )
    return rows


def write_stream(path, rows):
    with open(path, "w") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")


def write_pipeline(workdir, plugins, task, label):
    plugin = Path(plugins).resolve() / "learn.wasm"
    if not plugin.exists():
        sys.exit(f"{plugin} is missing: build it with ./scripts/build-plugins.sh learn")
    # One model learns the stream in order, as river does: one instance (the operator's
    # distribution is single anyway), and parallelism 1 keeps the file's order end to end.
    pipeline = f"""[pipeline]
name = "learn-compare-{task}"
parallelism = 1

[[sources]]
type = "file"
path = "stream.jsonl"
timestamp_field = "ts"

[[operators]]
name = "model"
plugin = "{plugin}"
[operators.config]
task = "{task}"
label = "{label}"
numeric = {json.dumps(NUMERIC)}
categorical = {json.dumps(CATEGORICAL)}
standardize = true
optimizer = "sgd"
learning_rate = {LEARNING_RATE}

[[sinks]]
name = "predicted"
type = "file"
path = "{task}-predicted.jsonl"
inputs = ["model"]

[[sinks]]
name = "quality"
type = "file"
path = "{task}-report.jsonl"
inputs = ["model.report"]

[dead_letter]
type = "file"
path = "{task}-dead-letters.jsonl"
"""
    path = Path(workdir) / f"{task}.toml"
    path.write_text(pipeline)
    return path


def run_sluice(binary, pipeline, task, records):
    """The prediction of each record by id, the last global report, and the run's wall-clock seconds."""
    elapsed = common.timed_run(binary, pipeline, pipeline.parent / f"{task}-dead-letters.jsonl")
    predictions = np.full(records, np.nan)
    with open(pipeline.parent / f"{task}-predicted.jsonl") as output:
        for line in output:
            record = json.loads(line)
            predictions[record["id"]] = np.nan if record["prediction"] is None else record["prediction"]
    reports = [json.loads(line) for line in open(pipeline.parent / f"{task}-report.jsonl")]
    last_global = [report for report in reports if report["model"] == "global"][-1]
    return predictions, last_global, elapsed


def river_features():
    numeric = compose.Select(*NUMERIC) | preprocessing.StandardScaler()
    categorical = compose.Select(*CATEGORICAL) | preprocessing.OneHotEncoder(drop_zeros=True)
    return numeric + categorical


def run_river(rows, task):
    """river's progressive predictions (predict_one, then learn_one), and the loop's seconds."""
    if task == "classification":
        model = river_features() | linear_model.LogisticRegression(optimizer=optim.SGD(LEARNING_RATE))
        label = "y"
    else:
        model = river_features() | linear_model.LinearRegression(optimizer=optim.SGD(LEARNING_RATE))
        label = "target"
    pairs = [({name: row[name] for name in NUMERIC + CATEGORICAL}, row[label]) for row in rows]
    predictions = np.empty(len(pairs))
    started = time.perf_counter()
    if task == "classification":
        for n, (x, y) in enumerate(pairs):
            predictions[n] = model.predict_proba_one(x).get(True, 0.0)
            model.learn_one(x, y)
    else:
        for n, (x, y) in enumerate(pairs):
            predictions[n] = model.predict_one(x)
            model.learn_one(x, y)
    elapsed = time.perf_counter() - started
    return predictions, elapsed


def metrics(task, truth, predictions):
    if task == "classification":
        clipped = np.clip(predictions, 1e-15, 1 - 1e-15)
        return {"log-loss": log_loss(truth, clipped, labels=[False, True]), "ROC AUC": roc_auc_score(truth, predictions)}
    return {"MAE": mean_absolute_error(truth, predictions), "RMSE": math.sqrt(mean_squared_error(truth, predictions))}


def compare(args, workdir, rows, task, label):
    """Runs both on one task, prints the table, returns the failures."""
    pipeline = write_pipeline(workdir, args.plugins, task, label)
    # The first run compiles the component into Sluice's cache; the second is the one timed.
    _, _, cold_seconds = run_sluice(args.sluice, pipeline, task, len(rows))
    sluice_predictions, report, sluice_seconds = run_sluice(args.sluice, pipeline, task, len(rows))
    river_predictions, river_seconds = run_river(rows, task)
    truth = np.array([row[label] for row in rows])
    failures = []
    missing = int(np.isnan(sluice_predictions).sum())
    if missing:
        failures.append(f"{task}: {missing} records missing or without a prediction in Sluice's output")
        return failures
    sluice_metrics = metrics(task, truth, sluice_predictions)
    river_metrics = metrics(task, truth, river_predictions)
    model = "LogisticRegression" if task == "classification" else "LinearRegression"
    print(f"\n{task}: {len(rows)} records, progressive validation over the whole stream")
    print(f"{'':26}{'sluice learn':>16}{'river ' + model:>26}{'rel. diff':>12}")
    for name in sluice_metrics:
        ours, theirs = sluice_metrics[name], river_metrics[name]
        difference = abs(ours - theirs) / abs(theirs)
        print(f"{name:26}{ours:>16.6f}{theirs:>26.6f}{difference:>12.1e}")
        if not difference <= TOLERANCE:
            failures.append(f"{task}: {name} differs by {100 * difference:.3f} % (more than {100 * TOLERANCE:.0f} %)")
    sluice_rate, river_rate = len(rows) / sluice_seconds, len(rows) / river_seconds
    print(f"{'throughput (records/s)':26}{sluice_rate:>16,.0f}{river_rate:>26,.0f}")
    print(f"{'seconds':26}{sluice_seconds:>16.3f}{river_seconds:>26.3f}")
    print(f"throughput ratio sluice / river: {sluice_rate / river_rate:.1f}x")
    print(f"largest per-record difference of the predictions: {np.max(np.abs(sluice_predictions - river_predictions)):.3g}")
    rolling = ", ".join(f"{key} {value:.4f}" for key, value in report.items() if isinstance(value, float))
    print(f"Sluice's last report of the global model (last {report['horizon']} records): {rolling}")
    print(f"(the first run, which compiles the component unless Sluice's cache holds it, took {cold_seconds:.3f} s)")
    return failures


def main():
    args = arguments()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = planted_stream(args.records)
    write_stream(workdir / "stream.jsonl", rows)
    print(f"learn: {args.records} records; numeric {NUMERIC} (scales 1, 10, 300), categorical {CATEGORICAL} (5 and 20 values)")
    print("sluice: wall-clock of the whole `sluice run` over the file (read, parse, learn, write), component compiled;")
    print("river: the predict_one/learn_one loop alone, records already parsed into dicts")
    failures = compare(args, workdir, rows, "classification", "y")
    failures += compare(args, workdir, rows, "regression", "target")
    return common.verdict(failures, f"\nOK: every metric within {100 * TOLERANCE:.0f} % of river's")


if __name__ == "__main__":
    sys.exit(main())
