#!/usr/bin/env python3
"""Compares Sluice's `cluster` operator with river's `cluster.KMeans` on planted clusters.

A deterministic stream of Gaussian clusters (5 clusters in 4 dimensions by default, shuffled)
is written as JSON lines, run through Sluice (file source -> cluster -> file sink) and through
river on the same stream, in the same order. Prints the adjusted Rand index of each against
the planted labels, and the throughput of each: Sluice's wall-clock for the whole `sluice run`,
river's loop time. Exits non-zero when Sluice's adjusted Rand index is below 0.9.

    ~/.cache/sluice/ml-venv/bin/python scripts/ml-compare/compare_cluster.py \
        --sluice ~/.cache/sluice/target/release/sluice --plugins build/plugins \
        --workdir /tmp/cluster-compare [--records 300000]
"""

import json
import sys
import time
from pathlib import Path

import common

import numpy as np
from river import cluster as river_cluster
from sklearn.metrics import adjusted_rand_score

SEED = 20261204
CLUSTERS = 5
DIMENSIONS = 4
SPREAD = 1.0  # standard deviation of each cluster, per dimension
MIN_SEPARATION = 8.0  # least distance between two planted centres
REQUIRED_ARI = 0.9
RIVER_SEEDS = [42, 1, 2, 3, 4]
START_MS = 1_767_225_600_000


def arguments():
    return common.arguments(__doc__.split("\n\n")[0], "cluster", 300_000, "records in the stream (default 300000)")


def planted_stream(records):
    """(points, labels): `records` points of CLUSTERS Gaussian clusters, shuffled."""
    rng = np.random.default_rng(SEED)
    centres = []
    while len(centres) < CLUSTERS:
        centre = rng.uniform(-12.0, 12.0, DIMENSIONS)
        if all(np.linalg.norm(centre - other) >= MIN_SEPARATION for other in centres):
            centres.append(centre)
    labels = rng.permutation(np.arange(records) % CLUSTERS)
    points = np.array(centres)[labels] + rng.normal(0.0, SPREAD, (records, DIMENSIONS))
    return points, labels


def features():
    return [f"x{dimension}" for dimension in range(DIMENSIONS)]


def write_stream(path, points):
    names = features()
    with open(path, "w") as stream:
        for index, point in enumerate(points):
            record = {"id": index, "ts": START_MS + 10 * index}
            record.update({name: round(float(x), 6) for name, x in zip(names, point)})
            stream.write(json.dumps(record) + "\n")


def write_pipeline(workdir, plugins):
    plugin = Path(plugins).resolve() / "cluster.wasm"
    if not plugin.exists():
        sys.exit(f"{plugin} is missing: build it with ./scripts/build-plugins.sh cluster")
    pipeline = f"""[pipeline]
name = "cluster-compare"

[[sources]]
type = "file"
path = "stream.jsonl"
timestamp_field = "ts"

[[operators]]
name = "segments"
plugin = "{plugin}"
[operators.config]
features = {json.dumps(features())}
k = {CLUSTERS}
seed = 1

[[sinks]]
name = "segmented"
type = "file"
path = "segmented.jsonl"
inputs = ["segments"]

[[sinks]]
name = "centroids"
type = "file"
path = "centroids.jsonl"
inputs = ["segments.centroids"]

[dead_letter]
type = "file"
path = "dead-letters.jsonl"
"""
    path = Path(workdir) / "pipeline.toml"
    path.write_text(pipeline)
    return path


def run_sluice(binary, pipeline, records):
    """Segments by record id, and the wall-clock seconds of the whole run."""
    elapsed = common.timed_run(binary, pipeline, pipeline.parent / "dead-letters.jsonl")
    segments = np.full(records, -1)
    with open(pipeline.parent / "segmented.jsonl") as output:
        for line in output:
            record = json.loads(line)
            segments[record["id"]] = -1 if record["segment"] is None else record["segment"]
    return segments, elapsed


def run_river(points, seed):
    """Segments (each predicted before the point is learnt), and the loop's seconds.

    Centres start at random around the data: mu and sigma are the mean and standard
    deviation of the coordinates of the first 10·k points (what Sluice's seeding sees).
    """
    sample = points[: 10 * CLUSTERS]
    model = river_cluster.KMeans(
        n_clusters=CLUSTERS, halflife=0.1, mu=float(sample.mean()), sigma=float(sample.std()), seed=seed
    )
    names = features()
    # river draws a centre's coordinates lazily, in the iteration order of a set of feature
    # names, which depends on Python's string hash seed: drawing them here, in feature order,
    # makes the run the same in every process.
    for centre in model.centers.values():
        for name in names:
            centre[name]
    rows = [dict(zip(names, map(float, point))) for point in points]
    started = time.perf_counter()
    segments = [model.learn_predict_one(row) for row in rows]
    elapsed = time.perf_counter() - started
    return np.array(segments), elapsed


def main():
    args = arguments()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    points, labels = planted_stream(args.records)
    write_stream(workdir / "stream.jsonl", points)
    pipeline = write_pipeline(workdir, args.plugins)

    # The first run compiles the component into Sluice's cache; the second is the one timed.
    _, cold_seconds = run_sluice(args.sluice, pipeline, args.records)
    sluice_segments, sluice_seconds = run_sluice(args.sluice, pipeline, args.records)
    missing = int((sluice_segments < 0).sum())
    river_segments, river_seconds = run_river(points, RIVER_SEEDS[0])
    other_seeds = [adjusted_rand_score(labels, run_river(points, seed)[0]) for seed in RIVER_SEEDS[1:]]

    sluice_ari = adjusted_rand_score(labels, sluice_segments)
    river_ari = adjusted_rand_score(labels, river_segments)
    sluice_rate = args.records / sluice_seconds
    river_rate = args.records / river_seconds

    print(f"cluster: {args.records} records, {CLUSTERS} planted clusters in {DIMENSIONS} dimensions (sd {SPREAD})")
    print(f"{'':28}{'sluice cluster':>16}{'river KMeans':>16}")
    print(f"{'adjusted Rand index':28}{sluice_ari:>16.4f}{river_ari:>16.4f}")
    print(f"{'throughput (records/s)':28}{sluice_rate:>16,.0f}{river_rate:>16,.0f}")
    print(f"{'seconds':28}{sluice_seconds:>16.3f}{river_seconds:>16.3f}")
    print(f"throughput ratio sluice / river: {sluice_rate / river_rate:.1f}x")
    print("(sluice: wall-clock of the whole `sluice run` over the file, the component already compiled;")
    print(f" the first run, which compiles it unless Sluice's cache holds it, took {cold_seconds:.3f} s;")
    print(" river: the learn_predict_one loop alone, records already parsed)")
    print(
        f"river's adjusted Rand index over seeds {RIVER_SEEDS}: min {min(other_seeds + [river_ari]):.4f}, "
        f"max {max(other_seeds + [river_ari]):.4f} (its centres start at random)"
    )

    failures = []
    if missing:
        failures.append(f"{missing} records missing or unsegmented in Sluice's output")
    if sluice_ari < REQUIRED_ARI:
        failures.append(f"Sluice's adjusted Rand index {sluice_ari:.4f} is below {REQUIRED_ARI}")
    return common.verdict(failures, f"OK: Sluice's adjusted Rand index is at least {REQUIRED_ARI}")


if __name__ == "__main__":
    sys.exit(main())
