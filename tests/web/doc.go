// Package web drives the web panel in a real headless Chromium (chromedp)
// against a whole panel started in this process with auth on, real
// `mlflow server` and `mlflow models serve` processes and real Python
// MLflow clients, and tests GET /events over real HTTP.
package web
