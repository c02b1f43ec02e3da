# METADATA
# title: Learned service-to-service authorization
# description: |
#   Allows a request when its caller was observed calling its callee with the
#   same method on a matching route. The learned grants are data, laid out as
#   data.envoy.authz.grants.<trust domain>.<path segments...>["@callers"][source][method]
#   so that a decision is a few keyed lookups, whatever the number of services.
#   A grant holds "paths", its literal routes as keys, and "templates", its
#   wildcard routes by segment count, then in groups of the same wildcard
#   positions, keyed by their literal segments joined by "/": a request finds
#   its candidates by keyed lookups and matches only the wildcards. Routes
#   an API spec's operations take requests from are in "operations", laid
#   out alike, with what each leaves out.
#   This file is the same for every bundle: observed values never become code.
package envoy.authz

# The decision at OPA-Envoy's default path. A callee is enforced or, while
# it learns, audited: then every request is allowed and those the learned
# policy would deny are marked in the object decision envoy/authz/decision.
# An operator's deny rule wins over both.
default allow := false

allow if {
	granted
	undenied
}

allow if {
	audit
	undenied
}

# Not denied, in one lookup for a known callee that no deny rule names.
undenied if {
	callee := data.envoy.authz.callees[destination]
	not callee.deny
}

undenied if not denied

# An object decision for opa-envoy-plugin: an audited request the policy
# would deny is allowed and marked with a response header.
decision := {"allowed": allow, "response_headers_to_add": would_deny_header} if {
	audit
	not granted
	not denied
} else := {"allowed": allow}

would_deny_header := {"x-authz-policy": "would-deny"}

# Granted: the caller was observed calling the callee with this method on a
# matching route, or an operator's allow rule grants it.
granted if grant.paths[request_path]

# A wildcard route: its segment count, the group of its wildcard positions
# and its literal segments lead to the types of its wildcards. The segments
# are bound to a variable: OPA resolves a reference to a rule at each use.
granted if {
	segs := segments
	some group in grant.templates[format_int(count(segs), 10)]
	some types in group.routes[concat("/", [segs[i] | some i in group.literals])]
	every j, type in types {
		regex.match(wildcard_patterns[type], segs[group.wildcards[j]])
	}
}

# A wildcard route of a callee with an API spec, less what the spec's
# operations take of it (for a route of an operation, those the spec
# matches before it): by their values at the route's wildcards where they
# are literals there, else segment by segment (null where the route's own
# wildcard stands).
granted if {
	segs := segments
	some group in grant.operations[format_int(count(segs), 10)]
	some op in group.operations[concat("/", [segs[i] | some i in group.literals])]
	every j, type in op.types {
		regex.match(wildcard_patterns[type], segs[group.wildcards[j]])
	}
	values := [segs[i] | some i in group.wildcards]
	not op.except[concat("/", values)]

	# Rows are keyed by their literals: a request reads only the rows its
	# values name. Inline, not a function of op: a call hashes its
	# arguments, which would read the whole object at every decision.
	count([r |
		some g in op.except_matching
		some r in g.rows[concat("/", [values[j] | some j in g.at])]
		every j, want in r {
			taken_segment(want, values[j])
		}
	]) == 0
}

taken_segment(want, _) if want == null

taken_segment(want, got) if want == got

taken_segment(want, got) if regex.match(wildcard_patterns[want.type], got)

granted if {
	some i in data.envoy.authz.callees[destination].allow
	operator_allows(data.envoy.authz.overrides.allow[i])
}

# A callee the bundle knows, the common case, fails the first line at once,
# before any rule is read.
granted if {
	not data.envoy.authz.callees[destination]
	some rule in data.envoy.authz.overrides.allow
	valid_id(destination)
	id_matches(rule.callee, id_path(destination))
	operator_allows(rule)
}

# Identities are compared whole, as keys: only the exact SPIFFE IDs that
# were learned ever match. id_path is spelled out: one call fewer on every
# request.
grant := object.get(data.envoy.authz.grants, split(trim_prefix(dst, "spiffe://"), "/"), {})["@callers"][source][input.attributes.request.http.method] if {
	dst := destination
	startswith(dst, "spiffe://")
}

# Identities. When Envoy reports a principal (from the mTLS handshake it
# terminated), Envoy alone names both sides and the forwarded header, which
# a caller may have written itself, is never read: a side Envoy does not
# name has no identity. Only when Envoy reports neither principal do both
# come from the header's current hop.
destination := principal if {
	principal := input.attributes.destination.principal
	principal != ""
} else := ids[0] if {
	not envoy_principal
	ids := xfcc_hop
} else := xfcc_identity("by") if not envoy_principal

source := principal if {
	principal := input.attributes.source.principal
	principal != ""
} else := ids[1] if {
	not envoy_principal
	ids := xfcc_hop
} else := xfcc_identity("uri") if not envoy_principal

envoy_principal if input.attributes.source.principal != ""

envoy_principal if input.attributes.destination.principal != ""

id_path(id) := split(substring(id, count("spiffe://"), -1), "/") if startswith(id, "spiffe://")

# A SPIFFE ID in the canonical form the exporter learns and its patterns
# match: identities the bundle does not list are checked before an
# operator's allow rule or the unseen callees' mode applies to them.
valid_id(id) if {
	count(id) <= 2048
	regex.match(`^spiffe://[a-z0-9_-](?:[a-z0-9._-]*[a-z0-9_-])?(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$`, id)
}

# The request path without its query, split as the exporter splits it. A
# fragment is never sent; a raw "#" matches no learned segment. A gRPC call
# names its method by the whole path, /<package>.<Service>/<Method>: a query
# is no part of it, so a gRPC request's path is taken whole. A path
# without a query is the same either way.
request_path := path if {
	path := input.attributes.request.http.path
	not contains(path, "?")
} else := input.attributes.request.http.path if {
	grpc
} else := split(input.attributes.request.http.path, "?")[0]

# The same, for deny rules whatever the content type; spelled out again
# above, since one more rule on every request's path costs.
path_without_query := split(input.attributes.request.http.path, "?")[0]

grpc if startswith(lower(input.attributes.request.http.headers["content-type"]), "application/grpc")

segments := split(trim_prefix(path, "/"), "/") if {
	path := request_path
	startswith(path, "/")
}

# The path as a server may read it, for deny rules: without its query
# (whatever content type the caller chose), decoded as a path ("+" stays a
# plus sign), with empty and "." segments dropped, so that /cart//0,
# /cart/./0, /cart/%30 and /cart/0/ are all /cart/0; a rule's route with
# escaped literals is also listed decoded. A path that still names ".."
# once decoded (also before path parameters, "..;x"), holds a backslash
# or does not decode could lead anywhere: every deny rule for its callee,
# caller and method forbids it.
decoded_path := urlquery.decode(replace(path_without_query, "+", "%2B"))

deny_segments := [s | some s in split(decoded_path, "/"); not {"", "."}[s]]

# The same without each segment's path parameters, as a server that drops
# them reads /cart;v=1/0: /cart/0.
param_segments := [n | some s in deny_segments; n := split(s, ";")[0]; not {"", "."}[n]]

unreadable_path if not decoded_path

unreadable_path if contains(decoded_path, `\`)

unreadable_path if {
	some s in deny_segments
	split(s, ";")[0] == ".."
}

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

# Envoy writes one proxy's element as By, then Hash, Cert, Chain, Subject,
# URI and DNS. A header that is one such element, with one By and one URI
# (or SAN), each an unquoted SPIFFE ID, gives the current hop's [By, URI]
# in one anchored match. Any other header is read pair by pair below,
# which finds the same two in this one.
xfcc_hop := [by, uri] if {
	[[_, by, uri]] := regex.find_all_string_submatch_n(`^(?i:by)=((?i:spiffe://)[^,;"\s]*)(?:;(?i:hash|cert|chain|subject|dns)=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*))*;(?i:uri|san)=((?i:spiffe://)[^,;"\s]*)(?:;(?i:hash|cert|chain|subject|dns)=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*))*$`, input.attributes.request.http.headers["x-forwarded-client-cert"], 1)
}

xfcc_grammar := `^[ \t]*[A-Za-z]+=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*)(?:[ \t]*[,;][ \t]*[A-Za-z]+=(?:"(?:[^"\\]|\\[\s\S])*"|[^,;"]*))*[ \t]*$`

xfcc_pairs := regex.find_all_string_submatch_n(`([A-Za-z]+)=("(?:[^"\\]|\\[\s\S])*"|[^,;"]*)|,`, xfcc, -1) if regex.match(xfcc_grammar, xfcc)

# Index of the current hop's first pair: after the last element separator.
# A set comprehension, guarded by one separator, is cheaper than an array.
xfcc_current := max({j | some j, pair in xfcc_pairs; pair[0] == ","}) + 1 if {
	some pair in xfcc_pairs
	pair[0] == ","
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
	ids := xfcc_ids[key]
	count(ids) == 1
	some id in ids
}

# data.envoy.authz.callees is each callee the bundle knows: its mode and
# the indexes of the operator rules that name it. It is read by direct
# reference, one lookup each, on the paths every request takes.
audit if data.envoy.authz.callees[destination].mode == "audit"

# unseen_audit says whether any unseen callee can be audited at all (by
# unseen_callees or a modes rule): without it the unseen path is skipped.
audit if {
	data.envoy.authz.unseen_audit
	unseen
	unseen_mode == "audit"
}

# A callee the bundle does not know (deployed since the last flush). A
# caller must not be able to pick such a name to be audited: only the
# identity Envoy itself reports for the callee counts, and only within the
# trust domains learned.
unseen if {
	destination == input.attributes.destination.principal
	not data.envoy.authz.callees[destination]
	valid_id(destination)
	trusted_domain(id_path(destination)[0])
}

trusted_domain(_) if count(data.envoy.authz.trust_domains) == 0

trusted_domain(td) if data.envoy.authz.trust_domains[td]

# The operator's modes, first match first, then the default for unseen
# callees.
unseen_mode := data.envoy.authz.modes[first_mode].mode if {
	first_mode := min({i |
		some i, rule in data.envoy.authz.modes
		some pattern in rule.callees
		id_matches(pattern, id_path(destination))
	})
} else := data.envoy.authz.unseen_callees

# An operator's deny rule: never granted, never audited.
denied if {
	some i in data.envoy.authz.callees[destination].deny
	operator_denies(data.envoy.authz.overrides.deny[i])
}

# As for allow rules, a known callee fails the first line at once.
denied if {
	not data.envoy.authz.callees[destination]
	some rule in data.envoy.authz.overrides.deny
	denies_callee(rule.callee)
	operator_denies(rule)
}

operator_allows(rule) if {
	valid_id(source)
	clean_path
	id_matches(rule.caller, id_path(source))
	some method in {"*", input.attributes.request.http.method}
	rule.methods[method]
	some r in rule.routes
	request_route(r)
}

operator_denies(rule) if {
	denies_caller(rule.caller)
	some method in {"*", input.attributes.request.http.method}
	rule.methods[method]
	some r in rule.routes
	denied_route(r)
}

denied_route(r) if request_route(r)

denied_route(r) if route_matches(r, deny_segments)

denied_route(r) if {
	contains(decoded_path, ";")
	route_matches(r, param_segments)
}

denied_route(_) if unreadable_path

# An operator's allow rule admits only a path with no other spelling: no
# "." or ".." segment, nothing percent-encoded, no backslash and no empty
# segment but a trailing one, also before a segment's path parameters
# ("..;x"). Its {id} and /** never reach a route by a detour
# (/debug/../balances/0, /debug/..;/balances/0).
clean_path if {
	every i, s in segments {
		clean_segment(i, s)
	}
}

clean_segment(_, s) if {
	not {"", ".", ".."}[split(s, ";")[0]]
	not contains(s, "%")
	not contains(s, `\`)
}

clean_segment(i, "") if i == count(segments) - 1

# "*" in a deny rule is anyone, with an identity or without one: the side
# is no argument, since a call with an undefined argument is undefined.
# Deny patterns match any identity the policy can split, canonical or not.
denies_callee(pattern) if anyone(pattern)

denies_callee(pattern) if id_matches(pattern, id_path(destination))

denies_caller(pattern) if anyone(pattern)

denies_caller(pattern) if id_matches(pattern, id_path(source))

anyone(pattern) if {
	count(pattern.segments) == 0
	pattern.rest
}

# An identity pattern over an identity's trust domain and path segments:
# "*" is one segment, a trailing "**" (rest) any further ones.
id_matches(pattern, segs) if {
	not pattern.rest
	count(pattern.segments) == count(segs)
	every i, want in pattern.segments {
		pattern_segment(want, segs[i])
	}
}

id_matches(pattern, segs) if {
	pattern.rest
	count(segs) >= count(pattern.segments)
	every i, want in pattern.segments {
		pattern_segment(want, segs[i])
	}
}

pattern_segment(want, got) if want == got

pattern_segment("*", got) if got != ""

# An operator's route: literal and typed segments as in learned templates,
# "any" for any non-empty segment, and a trailing "/**" (rest) for any
# further segments; "/**" alone is every path, whatever its form.
request_route(r) if route_matches(r, segments)

request_route(r) if {
	r.rest
	count(r.segments) == 0
}

route_matches(r, segs) if {
	not r.rest
	count(r.segments) == count(segs)
	every i, want in r.segments {
		route_segment(want, segs[i])
	}
}

route_matches(r, segs) if {
	r.rest
	count(segs) >= count(r.segments)
	every i, want in r.segments {
		route_segment(want, segs[i])
	}
}

route_segment(want, got) if segment_matches(want, got)

route_segment(want, got) if {
	want.type == "any"
	got != ""
}
