# METADATA
# title: Learned service-to-service authorization
# description: |
#   Allows a request when its caller was observed calling its callee with the
#   same method on a matching route. The learned grants are data, laid out as
#   data.envoy.authz.grants.<trust domain>.<path segments...>["@callers"][source][method]
#   so that a decision is a few keyed lookups, whatever the number of services.
#   This file is the same for every bundle: observed values never become code.
package envoy.authz

default allow := false

allow if grant.paths[request_path]

allow if {
	some template in grant.templates[format_int(count(segments), 10)]
	every i, want in template {
		segment_matches(want, segments[i])
	}
}

grant := object.get(data.envoy.authz.grants, id_path(destination), {})["@callers"][source][input.attributes.request.http.method]

# Identities. The principals Envoy takes from the mTLS handshake it terminated
# win over the forwarded header, which a caller may have written itself.
destination := id if {
	id := input.attributes.destination.principal
	id != ""
} else := xfcc_identity("by")

source := id if {
	id := input.attributes.source.principal
	id != ""
} else := xfcc_identity("uri")

spiffe_id := `^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*$`

id_path(id) := split(trim_prefix(id, "spiffe://"), "/") if regex.match(spiffe_id, id)

# The request path without query or fragment, split as the exporter splits it.
request_path := split(split(input.attributes.request.http.path, "?")[0], "#")[0]

segments := split(trim_prefix(request_path, "/"), "/") if startswith(request_path, "/")

segment_matches(want, got) if want == got

segment_matches(want, got) if regex.match(wildcard_patterns[want.type], got)

# What each wildcard type admits; each matches exactly one segment.
wildcard_patterns := {
	"int": `^[0-9]+$`,
	"hex": `^[0-9a-fA-F]+$`,
	"uuid": `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
	"id": `^[A-Za-z0-9._~-]*[0-9][A-Za-z0-9._~-]*$`,
	"token": `^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\.\.[A-Za-z0-9._~-]+)$`,
}

# x-forwarded-client-cert: comma-separated elements of semicolon-separated
# Key=Value pairs; values with , ; or = are double-quoted. The header must
# parse as a whole, and only its last element (the current hop) counts.
xfcc := input.attributes.request.http.headers["x-forwarded-client-cert"]

xfcc_grammar := `^[A-Za-z]+=(?:"(?:[^"\\]|\\.)*"|[^,;"]*)(?:[ \t]*[,;][ \t]*[A-Za-z]+=(?:"(?:[^"\\]|\\.)*"|[^,;"]*))*$`

xfcc_tokens := regex.find_n(`[A-Za-z]+=(?:"(?:[^"\\]|\\.)*"|[^,;"]*)|,`, xfcc, -1) if regex.match(xfcc_grammar, xfcc)

xfcc_commas := [i | some i, token in xfcc_tokens; token == ","]

xfcc_current := array.slice(xfcc_tokens, xfcc_commas[count(xfcc_commas) - 1] + 1, count(xfcc_tokens)) if {
	count(xfcc_commas) > 0
} else := xfcc_tokens

xfcc_keys := {"by": {"by"}, "uri": {"uri", "san"}}

# The one SPIFFE ID under a key of the current hop; none or several is no identity.
xfcc_identity(key) := id if {
	ids := {value |
		some pair in xfcc_current
		name := lower(substring(pair, 0, indexof(pair, "=")))
		name in xfcc_keys[key]
		value := unquote(trim_space(substring(pair, indexof(pair, "=") + 1, -1)))
		startswith(value, "spiffe://")
	}
	count(ids) == 1
	some id in ids
}

unquote(value) := substring(value, 1, count(value) - 2) if {
	startswith(value, `"`)
	endswith(value, `"`)
	count(value) >= 2
} else := value
