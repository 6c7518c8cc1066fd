module github.com/mlpanel/mlpanel/services/deployer

go 1.26
