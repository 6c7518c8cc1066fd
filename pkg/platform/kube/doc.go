// Package kube runs the panel's servers (MLflow tracking servers and
// model servers) on a Kubernetes cluster: each is a Deployment of one
// replica with its Service (and a PersistentVolumeClaim for its data), all
// labelled with the project they belong to and owned by the project's
// anchor object, so `kubectl get all -l mlpanel.io/project=<id>` lists a
// project's objects and deleting the anchor garbage-collects them.
package kube
