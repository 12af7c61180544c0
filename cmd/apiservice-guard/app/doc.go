// Package app holds the apiservice-guard command line: the cobra commands
// serve and check, their flags, and the wiring from flags to the webhook,
// the policy engine and the cluster views. Flags live only here.
package app
