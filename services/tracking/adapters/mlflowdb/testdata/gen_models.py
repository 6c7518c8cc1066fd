"""Fills the model registry of an MLflow SQLite database through MLflow's
own store code (no server): models whose names differ in case and hold
LIKE's wildcards, versions in every stage (the latest of each stage is a
model's latest_versions), deleted versions (MLflow keeps them as
Deleted_Internal), tags, aliases, descriptions, and a prompt (which the
searches leave out). Deterministic for one seed.

usage: gen_models.py <db path> <models> <max versions per model> <seed>
With max versions 0 every model gets exactly 5 (the benchmark's shape).
"""
import random
import sys

from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

path, n, per, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
store = SqlAlchemyStore("sqlite:///" + path)

stems = ["iris", "Iris", "wine", "model_a", "modelXa", "50%off", "cnn", "CNN"]
stages = ["None", "Staging", "Production", "Archived"]
for i in range(n):
    name = f"{stems[i % len(stems)]}-{i:04d}" if per else f"model-{i:05d}"
    tags = [RegisteredModelTag("team", rnd.choice(["vision", "nlp"]))] if rnd.random() < 0.5 else []
    store.create_registered_model(name, tags=tags, description=rnd.choice([None, "", "a model"]))
    versions = per and rnd.randrange(0, per + 1) or 5
    for v in range(1, versions + 1):
        vtags = [ModelVersionTag("validated", rnd.choice(["yes", "no"]))] if rnd.random() < 0.4 else []
        store.create_model_version(name, f"/models/{name}/{v}", tags=vtags,
                                   description=rnd.choice([None, "v"]) if per else None)
        if per and rnd.random() < 0.5:
            store.transition_model_version_stage(name, str(v), rnd.choice(stages[1:]), False)
    if per and versions:
        if rnd.random() < 0.5:
            store.set_registered_model_alias(name, "champion", str(rnd.randrange(1, versions + 1)))
        if rnd.random() < 0.3:
            store.set_registered_model_alias(name, "b-side", str(rnd.randrange(1, versions + 1)))
        if rnd.random() < 0.2:
            store.delete_model_version(name, str(versions))
if per:
    store.create_registered_model("a-prompt", tags=[RegisteredModelTag("mlflow.prompt.is_prompt", "true")])
    store.create_model_version("a-prompt", "/prompts/1", tags=[ModelVersionTag("mlflow.prompt.is_prompt", "true")])
