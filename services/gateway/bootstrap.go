package gateway

// The first admin of a team server.

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlpanel/mlpanel/services/gateway/access"
)

// bootstrapAdmin makes sure a team server has an admin: the token from
// MLPANEL_ADMIN_TOKEN, or else a new one printed once at the first start.
func (g *Gateway) bootstrapAdmin(ctx context.Context) error {
	if g.cfg.AdminToken != "" {
		admin, err := g.ensureUser(ctx, "admin", true)
		if err != nil {
			return err
		}
		hash := access.HashSecret(g.cfg.AdminToken)
		if tok, err := g.access.TokenByHash(ctx, hash); errors.Is(err, access.ErrNotFound) {
			return g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "MLPANEL_ADMIN_TOKEN", Hash: hash, CreatedAt: g.now()})
		} else if err == nil && tok.UserID != admin.ID {
			// The admin user was deleted and made again: the configured
			// token is the new one's.
			if err := g.access.DeleteToken(ctx, tok.UserID, tok.ID); err != nil {
				return err
			}
			return g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "MLPANEL_ADMIN_TOKEN", Hash: hash, CreatedAt: g.now()})
		} else if err != nil {
			return err
		}
		return nil
	}
	n, err := g.access.CountAdmins(ctx)
	if err != nil || n > 0 {
		return err
	}
	admin, err := g.ensureUser(ctx, "admin", true)
	if err != nil {
		return err
	}
	secret := access.NewSecret()
	if err := g.access.AddToken(ctx, access.Token{ID: access.NewID(), User: admin.Name, UserID: admin.ID, Name: "first admin token", Hash: access.HashSecret(secret), CreatedAt: g.now()}); err != nil {
		return err
	}
	// Printed once: only its hash is stored.
	fmt.Fprintf(g.stderr, "\n  mlpanel first admin token (shown once, keep it): %s\n\n", secret)
	return nil
}

func (g *Gateway) ensureUser(ctx context.Context, name string, admin bool) (access.User, error) {
	u := access.User{Name: name, Admin: admin, CreatedAt: g.now()}
	err := g.access.CreateUser(ctx, &u)
	if errors.Is(err, access.ErrDuplicate) {
		return g.access.User(ctx, name)
	}
	return u, err
}
