"""Train an iris classifier and record everything about it in MLflow.

A small ML project to copy: it trains scikit-learn on the iris data that
ships with scikit-learn (nothing is downloaded), and logs to the MLflow
tracking server named by MLFLOW_TRACKING_URI (for mlpanel, a project's
mlflowUri):

- params (epochs, learning rate, regularisation, seed, split),
- metrics per epoch (train/test accuracy and log loss, step = epoch),
- an artifact folder with nested files (reports/...),
- the model with its signature and an input example, registered in the
  model registry under --model-name (a new version on every run).

Usage:
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \
        python examples/train.py [--experiment NAME] [--model-name NAME] [--epochs N]

The last line printed is `run_id=<id>`, so scripts can pick it up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default=os.environ.get("EXPERIMENT_NAME", "iris"),
                   help="experiment to log into; created when missing (default: iris)")
    p.add_argument("--model-name", default=os.environ.get("MODEL_NAME", "iris-classifier"),
                   help="registered model name (default: iris-classifier); empty skips registering")
    p.add_argument("--epochs", type=int, default=int(os.environ.get("EPOCHS", "10")),
                   help="training epochs, one metric step each (default: 10)")
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--alpha", type=float, default=0.0001, help="L2 regularisation")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--run-name", default=None)
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        print("MLFLOW_TRACKING_URI is not set: point it at a project's mlflowUri", file=sys.stderr)
        return 2

    data = load_iris(as_frame=True)
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=args.seed, stratify=y)
    classes = np.unique(y)

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=args.run_name) as run:
        mlflow.log_params({
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "alpha": args.alpha,
            "seed": args.seed,
            "test_size": 0.25,
            "model": "StandardScaler+SGDClassifier(log_loss)",
        })
        mlflow.set_tag("example", "iris")

        # Scale once, then train the classifier epoch by epoch (partial_fit),
        # so every epoch gets a metric step; the logged model is the whole
        # pipeline, so it takes raw measurements.
        scaler = StandardScaler().fit(X_train)
        Xs_train, Xs_test = scaler.transform(X_train), scaler.transform(X_test)
        clf = SGDClassifier(loss="log_loss", alpha=args.alpha, learning_rate="constant",
                              eta0=args.learning_rate, random_state=args.seed)
        for epoch in range(args.epochs):
            clf.partial_fit(Xs_train, y_train, classes=classes)
            mlflow.log_metrics({
                "train_accuracy": accuracy_score(y_train, clf.predict(Xs_train)),
                "test_accuracy": accuracy_score(y_test, clf.predict(Xs_test)),
                "train_loss": log_loss(y_train, clf.predict_proba(Xs_train), labels=classes),
                "test_loss": log_loss(y_test, clf.predict_proba(Xs_test), labels=classes),
            }, step=epoch)
        model = Pipeline([("scale", scaler), ("classify", clf)])
        accuracy = accuracy_score(y_test, model.predict(X_test))
        mlflow.log_metric("accuracy", accuracy)

        predictions = model.predict(X_test)
        with tempfile.TemporaryDirectory() as tmp:
            reports = Path(tmp, "reports")
            (reports / "data" / "samples").mkdir(parents=True)
            (reports / "summary.json").write_text(json.dumps({
                "accuracy": accuracy,
                "epochs": args.epochs,
                "classes": [str(n) for n in data.target_names],
            }, indent=2) + "\n")
            out = X_test.copy()
            out["target"] = y_test
            out["predicted"] = predictions
            out.to_csv(reports / "data" / "predictions.csv", index=False)
            X_train.head(10).to_csv(reports / "data" / "samples" / "train_head.csv", index=False)
            (reports / "data" / "samples" / "README.txt").write_text(
                "The first ten training rows, as the model saw them.\n")
            mlflow.log_artifacts(str(reports), artifact_path="reports")

            signature = infer_signature(X_train, model.predict(X_train))
            input_example = X_train.head(5)
            # MLflow 3 stores a logged model outside the run's artifacts
            # (models:/m-<id>); keep a copy in the run too, so browsing the
            # run's artifacts shows the model folder with its MLmodel file.
            local_model = Path(tmp, "model")
            mlflow.sklearn.save_model(model, str(local_model), signature=signature,
                                      input_example=input_example)
            mlflow.log_artifacts(str(local_model), artifact_path="model")

        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=input_example,
            registered_model_name=args.model_name or None)
        print(f"model_uri={info.model_uri}")
        if args.model_name:
            print(f"registered_model={args.model_name} version={info.registered_model_version}")
        print(f"accuracy={accuracy:.4f}")
        print(f"run_id={run.info.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
