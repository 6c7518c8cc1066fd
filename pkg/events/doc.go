// Package events is the one small contract every mlpanel service shares:
// subject names, the CloudEvents 1.0 envelope published on JetStream, the
// MLPANEL_EVENTS stream, and the request/reply convention of the control
// plane (a status code and a message that the gateway maps 1:1 to HTTP).
//
// It deliberately knows nothing about projects, deployments or HTTP, so a
// subscriber written by another team can import it without pulling in the
// services.
package events
