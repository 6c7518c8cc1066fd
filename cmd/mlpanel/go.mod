module github.com/mlpanel/mlpanel/cmd/mlpanel

go 1.26
