// Package servingcert gives the guard its own serving certificate, without
// cert-manager, and keeps it without fighting anyone.
//
// One Secret in the guard's namespace, read by name, holds a CA (its key
// too), the caBundle (that CA first, then earlier CAs until they expire) and
// a serving certificate for <service>.<namespace>.svc. Every replica runs a
// Keeper: it watches that one Secret (a watch with a field selector on its
// name; never a list) and serves the current pair from memory, so a
// rotation needs no restart and no volume sync. The elected leader runs a Rotator: it creates the Secret,
// renews the serving certificate at 2/3 of its life and the CA at 2/3 of
// its own, and writes only caBundle into the guard's own webhook
// configurations, by server-side apply under its field manager, when it
// differs. A new CA is published in the caBundle first; serving
// certificates are issued from it only once every webhook configuration
// trusts it and Propagation has passed, so the API server never meets a
// certificate it does not trust.
package servingcert
