module github.com/mlpanel/mlpanel/services/tracking

go 1.26
