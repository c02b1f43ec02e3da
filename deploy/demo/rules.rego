# METADATA
# description: Lists a bundle's learned grants as readable lines, for the demo and for reviews.
package demo

# "caller -> callee  METHOD route", one per learned route.
rules contains line if {
	walk(data.envoy.authz.grants, [path, callers])
	path[count(path) - 1] == "@callers"
	callee := concat("/", array.slice(path, 0, count(path) - 1))
	some caller, methods in callers
	some method, grant in methods
	some route in routes(grant)
	line := sprintf("%s -> spiffe://%s  %s %s", [caller, callee, method, route])
}

routes(grant) := {p | some p, _ in object.get(grant, "paths", {})} | {route |
	some groups in object.get(grant, "templates", {})
	some group in groups
	some key, candidates in group.routes
	some types in candidates
	parts := split(key, "/")
	segments := object.union(
		{i: parts[j] | some j, i in group.literals},
		{i: sprintf("{%s}", [types[j]]) | some j, i in group.wildcards},
	)
	route := concat("", [sprintf("/%s", [segments[i]]) | some i in numbers.range(0, count(segments) - 1)])
}
