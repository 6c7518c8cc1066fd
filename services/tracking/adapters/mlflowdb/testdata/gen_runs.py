"""Fills an MLflow SQLite database for the differential test through
MLflow's own store code (no server): experiments, runs with metrics
(NaN and infinities too), params, tags, names, statuses, deleted runs,
dataset inputs with contexts and start times that tie, so the tie-breaks
of MLflow's order are exercised. Deterministic for one seed.

usage: gen_runs.py <db path or database URL> <runs> <seed>
"""
import math
import random
import sys

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
client = MlflowClient(tracking_uri=path if "://" in path else "sqlite:///" + path)

exps = [client.create_experiment(name) for name in ("alpha", "Beta", "gamma", "to-delete")]
names = ["run-a", "Run-A", "run_b", "sweep-1", "sweep-10", "sweep-2", "x%y", "final"]
statuses = ["FINISHED", "FAILED", "KILLED", "RUNNING"]
lrs = ["0.01", "0.1", "0.001", "1e-3", "0.01 "]
models = ["cnn", "CNN", "mlp", "rnn", "Transformer"]
values = [0.0, 0.1, 0.5, 0.9, 0.95, 1.0, -1.0, 2.5, float("nan"), float("inf"), float("-inf")]
base = 1_700_000_000_000
run_ids = []
for i in range(n):
    exp = exps[rnd.randrange(len(exps))]
    start = base + rnd.randrange(40) * 1000  # ties on start_time are common
    tags = {}
    if rnd.random() < 0.6:
        tags["team"] = rnd.choice(["vision", "nlp", "Vision", "ops"])
    if rnd.random() < 0.3:
        tags["mlflow.note.content"] = rnd.choice(["good", "bad run", ""])
    run = client.create_run(exp, start_time=start, tags=tags, run_name=rnd.choice(names) if rnd.random() < 0.9 else None)
    rid = run.info.run_id
    run_ids.append(rid)
    metrics, params = [], []
    for key in ("accuracy", "loss", "f1"):
        if rnd.random() < 0.75:
            for step in range(rnd.randrange(1, 4)):
                metrics.append(Metric(key, rnd.choice(values), start + step, step))
    if rnd.random() < 0.8:
        params.append(Param("lr", rnd.choice(lrs)))
    if rnd.random() < 0.7:
        params.append(Param("model", rnd.choice(models)))
    if rnd.random() < 0.5:
        params.append(Param("epochs", str(rnd.randrange(1, 20))))
    client.log_batch(rid, metrics=metrics, params=params, tags=[RunTag("idx", str(i))])
    if rnd.random() < 0.1:
        ds = Dataset(name=rnd.choice(["iris", "wine", "Iris"]), digest=rnd.choice(["abc123", "def456"]),
                     source_type="local", source="/data")
        ctx = rnd.choice(["training", "eval", "Training"])
        client.log_inputs(rid, [DatasetInput(ds, tags=[InputTag("mlflow.data.context", ctx)])])
    status = rnd.choice(statuses)
    if status != "RUNNING":
        end = start + rnd.randrange(1, 100000) if rnd.random() < 0.9 else None
        client.set_terminated(rid, status=status, end_time=end)
    if rnd.random() < 0.08:
        client.delete_run(rid)
client.delete_experiment(exps[-1])
print(",".join(exps))
