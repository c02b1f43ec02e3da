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

routes(grant) := {p | some p, _ in object.get(grant, "paths", {})} | {t |
	some templates in object.get(grant, "templates", {})
	some template in templates
	t := concat("", [sprintf("/%s", [segment(s)]) | some s in template])
}

segment(s) := s if is_string(s)

segment(s) := sprintf("{%s}", [s.type]) if is_object(s)
