// Package certs holds the PEM and x509 helpers the guard needs: parsing a
// caBundle with errors a person can act on, verifying a serving certificate
// the way kube-aggregator does, and minting small CAs and serving certificates
// for the guard's own endpoint, tests and the demo.
package certs
