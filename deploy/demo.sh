#!/usr/bin/env bash
# The main job, end to end on this machine: start the otelcol-authz
# distribution with deploy/collector-config.yaml, replay the sample Pixie
# spans over OTLP, then show the published OPA bundle, what it learned and a
# few decisions evaluated by OPA, the review page (its screenshot is
# docs/review-page.png) and authzctl's explanation of two decisions. Run
# through `make demo`.
set -euo pipefail
bin=${1:?usage: demo.sh OTELCOL_BIN OPA_BIN AUTHZCTL_BIN}
opa=${2:?usage: demo.sh OTELCOL_BIN OPA_BIN AUTHZCTL_BIN}
authzctl=${3:?usage: demo.sh OTELCOL_BIN OPA_BIN AUTHZCTL_BIN}
cd "$(dirname "$0")/.."

work=$(mktemp -d)
out=$work/bundles
mkdir -p "$out"
cleanup() {
	[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

export OTLP_GRPC_ENDPOINT=127.0.0.1:${DEMO_OTLP_PORT:-14317}
export OTLP_HTTP_ENDPOINT=127.0.0.1:${DEMO_OTLP_HTTP_PORT:-14318}
export HEALTH_CHECK_ENDPOINT=127.0.0.1:${DEMO_HEALTH_PORT:-13133}
export METRICS_HOST=127.0.0.1 METRICS_PORT=${DEMO_METRICS_PORT:-18888}
export AUTHZ_FLUSH_INTERVAL=2s AUTHZ_OUTPUT_URL=file://$out AUTHZ_STATE_DIR=$work/state
export AUTHZ_OVERRIDES_FILE=$PWD/deploy/demo/overrides.yaml AUTHZ_UNPACKED_DIR=$work/review
export AUTHZ_SERVE_ENDPOINT=127.0.0.1:${DEMO_SERVE_PORT:-18090}

echo "== Starting the collector (log: $work/collector.log)"
"$bin" --config deploy/collector-config.yaml >"$work/collector.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -fs "http://$HEALTH_CHECK_ENDPOINT/" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/collector.log"; exit 1; }
	sleep 0.2
done

echo "== Replaying sample Pixie spans"
go run ./cmd/sendspans -endpoint "$OTLP_GRPC_ENDPOINT" testdata/spans/*.json

bundle=$out/bundle.tar.gz
for _ in $(seq 100); do [[ -s $bundle ]] && break; sleep 0.2; done
[[ -s $bundle ]] || { echo "no bundle was published"; cat "$work/collector.log"; exit 1; }

echo
echo "== Published $bundle"
tar -tzvf "$bundle" 2>/dev/null
echo
echo "== .manifest"
tar -xzOf "$bundle" /.manifest 2>/dev/null
echo
echo "== Served to OPA by the collector (serve): ETag = revision, 304 when unchanged"
etag=$(curl -fsI "http://$AUTHZ_SERVE_ENDPOINT/bundle.tar.gz" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
echo "  GET /bundle.tar.gz                      ETag $etag"
echo "  GET /bundle.tar.gz If-None-Match $etag  $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "http://$AUTHZ_SERVE_ENDPOINT/bundle.tar.gz")"
echo
echo "== Learned grants (caller -> callee  method route)"
"$opa" eval -d deploy/demo/rules.rego -b "$bundle" -f raw 'concat("\n", sort(data.demo.rules))'
echo
echo "== Callees and their modes"
"$opa" eval -b "$bundle" -f raw 'concat("\n", sort([sprintf("%s  %s", [id, c.mode]) | some id, c in data.envoy.authz.callees]))'
echo
echo "== What this revision changed ($work/review/changes.json, first lines)"
for _ in $(seq 50); do [[ -s $work/review/changes.json ]] && break; sleep 0.2; done
head -n 12 "$work/review/changes.json"
echo
echo "== Spans skipped, by reason (collector metrics)"
curl -fs "http://$METRICS_HOST:$METRICS_PORT/metrics" | grep '^otelcol_authz_policy_spans_' || true

echo
echo "== Decisions (data.envoy.authz.allow, as OPA-Envoy asks)"
decide() {
	local what=$1 method=$2 path=$3 xfcc=$4
	printf '{"attributes":{"request":{"http":{"method":"%s","path":"%s","headers":{"x-forwarded-client-cert":"%s"}}}}}' \
		"$method" "$path" "$xfcc" >"$work/input.json"
	local allowed
	allowed=$("$opa" eval -b "$bundle" -i "$work/input.json" -f raw 'data.envoy.authz.allow')
	printf '  %-5s  %-52s %s %s\n' "$([[ $allowed == true ]] && echo ALLOW || echo DENY)" "$what" "$method" "$path"
}
td=spiffe://example.org/ns/bank/sa
decide "frontend -> balances (seen)" GET /balances/4711 "By=$td/balances;Hash=ab12;Subject=\\\"\\\";URI=$td/frontend"
decide "frontend -> payments (seen)" POST /payments "By=$td/payments;URI=$td/frontend"
decide "payments -> backend (seen, query ignored)" GET "/ledger/accounts/5500112233?x=1" "By=$td/backend;URI=$td/payments"
decide "balances -> payments (only ever answered 403)" POST /payments "By=$td/payments;URI=$td/balances"
decide "frontend -> backend (other method)" DELETE /ledger/accounts/5500112233 "By=$td/backend;URI=$td/frontend"
decide "payments -> backend (gRPC, seen)" POST /bank.Ledger/Transfer "By=$td/backend;URI=$td/payments"
decide "frontend -> backend (gRPC, answered grpc-status 7)" POST /bank.Ledger/Transfer "By=$td/backend;URI=$td/frontend"
decide "frontend -> balances (longer path)" GET /balances/4711/admin "By=$td/balances;URI=$td/frontend"
decide "frontend -> balances (not a number)" GET /balances/admin "By=$td/balances;URI=$td/frontend"
decide "evil.org/.../frontend -> balances (foreign domain)" GET /balances/4711 "By=$td/balances;URI=spiffe://evil.org/ns/bank/sa/frontend"
decide "frontend -> balances (operator allow, never seen)" GET /healthz "By=$td/balances;URI=$td/frontend"
decide "frontend -> balances (operator deny in a wildcard)" GET /balances/0 "By=$td/balances;URI=$td/frontend"

echo
echo "== The review page ($work/review/index.html)"
for _ in $(seq 50); do [[ -s $work/review/index.html ]] && break; sleep 0.2; done
chromium=${CHROMIUM:-chromium}
if command -v "$chromium" >/dev/null; then
	"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$work/chromium" --hide-scrollbars --window-size=1400,1000 \
		--screenshot="$PWD/docs/review-page.png" "file://$work/review/index.html" >/dev/null 2>&1
	echo "  screenshot: docs/review-page.png"
else
	echo "  (no chromium: the screenshot docs/review-page.png is not regenerated)"
fi

echo
echo "== authzctl explain: why OPA allows one request and denies another"
echo "\$ authzctl explain --review REVIEW --callee $td/balances --caller $td/frontend --path /balances/4711"
"$authzctl" explain --review "$work/review" --callee "$td/balances" --caller "$td/frontend" --path /balances/4711 || true
echo
echo "\$ authzctl explain --bundle BUNDLE --callee $td/balances --caller $td/frontend --path /balances/4711/admin"
"$authzctl" explain --bundle "$bundle" --callee "$td/balances" --caller "$td/frontend" --path /balances/4711/admin || true
