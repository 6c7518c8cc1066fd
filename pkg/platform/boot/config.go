package boot

// Config is what every separately run service reads to connect.
type Config struct {
	// NATSURL is the NATS server of the control plane and the
	// MLPANEL_EVENTS stream.
	NATSURL string `env:"MLPANEL_NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"MLPANEL_LOG_LEVEL" envDefault:"info"`
}

// MongoConfig is what a service with state (projects, deployer, gateway)
// reads on top of Config.
type MongoConfig struct {
	// MongoURI is the MongoDB (or FerretDB) of the services' collections,
	// database "mlpanel".
	MongoURI string `env:"MLPANEL_MONGO_URI" envDefault:"mongodb://127.0.0.1:27017"`
}
