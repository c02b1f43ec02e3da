# METADATA
# title: Each OPA-Envoy sidecar polls its own callee's bundle
# description: |
#   The discovery bundle published with output.per_callee, beside the bundles.
#   OPA evaluates it at each sidecar, with the sidecar's environment, for the
#   configuration of the bundle the sidecar polls: its callee's own once the
#   exporter published it (data.authz.discovery.callees), until then
#   unseen.tar.gz, the full bundle without grants, which decides for a callee
#   it does not know as the full bundle does and is never more permissive.
#   The callee is spiffe://$TRUST_DOMAIN/ns/$POD_NAMESPACE/sa/$POD_SERVICE_ACCOUNT;
#   without those variables there is no configuration, and so no bundle.
package authz.discovery

boot := opa.runtime().config.discovery

env := opa.runtime().env

callee := concat("/", [env.TRUST_DOMAIN, "ns", env.POD_NAMESPACE, "sa", env.POD_SERVICE_ACCOUNT])

# The bundles lie beside the discovery bundle, on the same service.
prefix := trim_suffix(boot.resource, "discovery.tar.gz")

resource := concat("", [prefix, "callees/", callee, "/bundle.tar.gz"]) if {
	data.authz.discovery.callees[callee]
} else := concat("", [prefix, "unseen.tar.gz"]) if callee

# The discovery bundle's own polling and signature verification apply to
# the bundle it configures.
config := {"bundles": {"authz": object.union({"service": boot.service, "resource": resource}, options)}}

options := {k: v | some k in {"polling", "signing"}; v := boot[k]}
