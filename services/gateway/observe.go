package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// observe returns the middleware that identifies and measures requests.
func (g *Gateway) observe() []gin.HandlerFunc { return nil }

// mountOps serves the operational endpoints.
func (g *Gateway) mountOps(e *gin.Engine) {
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
}
