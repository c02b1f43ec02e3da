# METADATA
# title: Learned service-to-service authorization
# description: |
#   Allows a request when its caller was observed calling its callee with the
#   same method on a matching route. The learned grants are data, laid out as
#   data.envoy.authz.grants.<trust domain>.<path segments...>["@callers"][source][method]
#   so that a decision is a few keyed lookups, whatever the number of services.
#   This file is the same for every bundle: observed values never become code.
package envoy.authz

# The decision at OPA-Envoy's default path. In audit mode (a learning
# period) every request is allowed; use the decision path
# envoy/authz/decision to see which ones the learned policy would deny.
default allow := false

allow if learned

allow if data.envoy.authz.mode == "audit"

# An object decision for opa-envoy-plugin: in audit mode a request the
# learned policy would deny is allowed and marked with a response header.
decision := {"allowed": allow, "response_headers_to_add": would_deny_header} if {
	not learned
	data.envoy.authz.mode == "audit"
} else := {"allowed": allow}

would_deny_header := {"x-authz-policy": "would-deny"}

# The learned policy: the caller was observed calling the callee with this
# method on a matching route.
default learned := false

learned if grant.paths[request_path]

learned if {
	some template in grant.templates[format_int(count(segments), 10)]
	every i, want in template {
		segment_matches(want, segments[i])
	}
}

# Identities are compared whole, as keys: only the exact SPIFFE IDs that
# were learned ever match.
grant := object.get(data.envoy.authz.grants, id_path(destination), {})["@callers"][source][input.attributes.request.http.method]

# Identities. When Envoy reports a principal (from the mTLS handshake it
# terminated), Envoy alone names both sides and the forwarded header, which
# a caller may have written itself, is never read: a side Envoy does not
# name has no identity. Only when Envoy reports neither principal do both
# come from the header's current hop.
destination := input.attributes.destination.principal if {
	input.attributes.destination.principal != ""
} else := xfcc_identity("by") if not envoy_principal

source := input.attributes.source.principal if {
	input.attributes.source.principal != ""
} else := xfcc_identity("uri") if not envoy_principal

envoy_principal if input.attributes.source.principal != ""

envoy_principal if input.attributes.destination.principal != ""

id_path(id) := split(substring(id, count("spiffe://"), -1), "/") if startswith(id, "spiffe://")

# The request path without its query, split as the exporter splits it. A
# fragment is never sent; a raw "#" matches no learned segment. A gRPC call
# names its method by the whole path, /<package>.<Service>/<Method>: a query
# is no part of it, so a gRPC request's path is taken whole.
request_path := input.attributes.request.http.path if {
	grpc
} else := split(input.attributes.request.http.path, "?")[0]

grpc if startswith(lower(input.attributes.request.http.headers["content-type"]), "application/grpc")

segments := split(trim_prefix(request_path, "/"), "/") if startswith(request_path, "/")

segment_matches(want, got) if want == got

segment_matches(want, got) if regex.match(wildcard_patterns[want.type], got)

# What each wildcard type admits; each matches exactly one segment.
wildcard_patterns := {
	"int": `^[0-9]+$`,
	"hex": `^[0-9a-fA-F]*[0-9][0-9a-fA-F]*$`,
	"uuid": `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
	"id": `^[A-Za-z0-9._~-]*[0-9][A-Za-z0-9._~-]*$`,
	"token": `^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+)$`,
}

# x-forwarded-client-cert: comma-separated elements of semicolon-separated
# Key=Value pairs; values with , ; or = are double-quoted. The header must
# parse as a whole, and only its last element (the current hop) counts.
xfcc := input.attributes.request.http.headers["x-forwarded-client-cert"]

xfcc_grammar := `^[ \t]*[A-Za-z]+=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*)(?:[ \t]*[,;][ \t]*[A-Za-z]+=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*))*[ \t]*$`

xfcc_pairs := regex.find_all_string_submatch_n(`([A-Za-z]+)=("(?:[^"\\]|\\[\s\S])*"|[^,;"]*)|,`, xfcc, -1) if regex.match(xfcc_grammar, xfcc)

# Index of the current hop's first pair: after the last element separator.
xfcc_current := i + 1 if {
	commas := [j | some j, pair in xfcc_pairs; pair[0] == ","]
	count(commas) > 0
	i := max(commas)
} else := 0

xfcc_keys := {"by": "by", "uri": "uri", "san": "uri"}

# The SPIFFE IDs of the current hop, by key ("by" or "uri").
xfcc_ids[key] contains id if {
	some pair in array.slice(xfcc_pairs, xfcc_current, count(xfcc_pairs))
	key := xfcc_keys[lower(pair[1])]
	id := xfcc_value(pair[2])
	startswith(lower(id), "spiffe://")
}

# A value as the exporter reads it: a quoted one without its quotes, an
# unquoted one without the blanks before the next separator.
xfcc_value(raw) := substring(raw, 1, count(raw) - 2) if {
	startswith(raw, `"`)
} else := trim_right(raw, " \t")

# Exactly one identity under a key; none or several is no identity.
xfcc_identity(key) := id if {
	count(xfcc_ids[key]) == 1
	some id in xfcc_ids[key]
}
