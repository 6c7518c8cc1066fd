module github.com/mlpanel/mlpanel/services/projects

go 1.26

require go.mongodb.org/mongo-driver/v2 v2.10.0 // indirect
