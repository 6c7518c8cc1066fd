// Package deployments holds the team-server deployment (Dockerfiles,
// docker-compose.yml) and the tests that prove it without a Docker engine:
// the compose file and Dockerfiles are parsed and checked, and the services
// run as separate OS processes against standalone NATS and FerretDB.
package deployments
