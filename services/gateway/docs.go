package gateway

import (
	"embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.yaml
var specFS embed.FS

// mountDocs serves the OpenAPI document.
func (g *Gateway) mountDocs(e *gin.Engine) {
	e.GET("/openapi.yaml", func(c *gin.Context) {
		b, _ := specFS.ReadFile("openapi.yaml")
		c.Data(http.StatusOK, "application/yaml", b)
	})
}
