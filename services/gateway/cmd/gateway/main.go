// Command gateway runs the HTTP gateway as its own process against
// MLPANEL_NATS_URL and MLPANEL_MONGO_URI (users, tokens, members, audit).
package main

import (
	"context"

	"github.com/mlpanel/mlpanel/pkg/platform/boot"
	"github.com/mlpanel/mlpanel/pkg/platform/conf"
	"github.com/mlpanel/mlpanel/services/gateway"
)

func main() { boot.Main("gateway", run) }

func run(ctx context.Context) error {
	var r conf.Reader
	cfg := gateway.ConfigFromEnv(&r)
	c, err := boot.Connect(ctx, "gateway", &r, true)
	if err != nil {
		return err
	}
	defer c.Close()
	return gateway.New(cfg, c.NATS, c.DB, c.Log).Run(ctx)
}
