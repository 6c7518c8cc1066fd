module github.com/mlpanel/mlpanel/tests/e2e

go 1.26
