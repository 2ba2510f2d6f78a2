#!/usr/bin/env bash
# smoke-test.sh URL — checks a running llmproxy end to end: liveness,
# readiness, the model list, a chat completion, a streamed one and a
# storage round trip (put, get, delete). Exits non-zero at the first
# failure, saying which check failed.
#
# Environment:
#   LLMPROXY_API_KEY  the key to send (default: the dev key of the embedded config)
#   SMOKE_MODEL       the model to chat with (default: echo)
#   SMOKE_STORAGE     {type}/{instance} of a storage instance, or "none" (default: local/dev)
#   SMOKE_BUCKET      a bucket the key may write (default: uploads)
#   SMOKE_TIMEOUT     seconds per request (default: 30)
set -euo pipefail

url=${1:?usage: smoke-test.sh URL}
url=${url%/}
key=${LLMPROXY_API_KEY:-sk-llmproxy-dev}
model=${SMOKE_MODEL:-echo}
storage=${SMOKE_STORAGE:-local/dev}
bucket=${SMOKE_BUCKET:-uploads}
timeout=${SMOKE_TIMEOUT:-30}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0

fail() {
	echo "FAIL $1" >&2
	[[ -s $tmp/body ]] && { head -c 2000 "$tmp/body" >&2; echo >&2; }
	echo "smoke test: $passed passed, 1 failed" >&2
	exit 1
}
ok() {
	passed=$((passed + 1))
	echo "ok   $1"
}

# request METHOD PATH [curl args...]: the body goes to $tmp/body, the
# status is printed.
request() {
	local method=$1 path=$2
	shift 2
	curl -sS -o "$tmp/body" -w '%{http_code}' --max-time "$timeout" -X "$method" \
		-H "Authorization: Bearer $key" "$@" "$url$path" || echo 000
}

code=$(request GET /healthz)
[[ $code == 200 ]] || fail "liveness: GET /healthz answered $code"
ok "liveness (/healthz)"

code=$(request GET /readyz)
[[ $code == 200 ]] || fail "readiness: GET /readyz answered $code"
grep -Eq '"status":"(ready|degraded)"' "$tmp/body" || fail "readiness: unexpected body"
ok "readiness (/readyz: $(grep -Eo '"status":"[a-z_]+"' "$tmp/body" | head -1))"

code=$(request GET /v1/models)
[[ $code == 200 ]] || fail "models: GET /v1/models answered $code"
grep -q "\"id\":\"$model\"" "$tmp/body" || fail "models: $model is not listed"
ok "models ($model listed)"

word="smoke$RANDOM$RANDOM"
chat=$(printf '{"model":"%s","messages":[{"role":"user","content":"say %s"}],"max_tokens":16}' "$model" "$word")
code=$(request POST /v1/chat/completions -H 'Content-Type: application/json' --data-binary "$chat")
[[ $code == 200 ]] || fail "chat: POST /v1/chat/completions answered $code"
grep -q '"object":"chat.completion"' "$tmp/body" || fail "chat: not a chat.completion"
grep -q '"content":"[^"]' "$tmp/body" || fail "chat: empty answer"
ok "chat completion"

stream=$(printf '{"model":"%s","stream":true,"messages":[{"role":"user","content":"say %s"}],"max_tokens":16}' "$model" "$word")
code=$(request POST /v1/chat/completions -H 'Content-Type: application/json' -N --data-binary "$stream")
[[ $code == 200 ]] || fail "stream: answered $code"
chunks=$(grep -c '^data: {' "$tmp/body" || true)
((chunks > 0)) || fail "stream: no chunk"
grep -q '"error"' "$tmp/body" && fail "stream: ended with an error event"
[[ $(grep '^data: ' "$tmp/body" | tail -1) == "data: [DONE]" ]] || fail "stream: did not end with data: [DONE]"
ok "streamed chat completion ($chunks chunks)"

if [[ $storage != none ]]; then
	object="smoke-test/$word.txt"
	printf 'llmproxy smoke test %s\n' "$word" >"$tmp/object"
	code=$(request PUT "/-$storage/put/$bucket/$object" --data-binary @"$tmp/object")
	[[ $code == 200 || $code == 201 ]] || fail "storage: put answered $code"
	code=$(request GET "/-$storage/get/$bucket/$object")
	[[ $code == 200 ]] || fail "storage: get answered $code"
	cmp -s "$tmp/body" "$tmp/object" || fail "storage: the object read back differs"
	code=$(request DELETE "/-$storage/delete/$bucket/$object")
	[[ $code == 200 || $code == 204 ]] || fail "storage: delete answered $code"
	code=$(request GET "/-$storage/get/$bucket/$object")
	[[ $code == 404 ]] || fail "storage: the deleted object still answers $code"
	ok "storage round trip ($storage, $bucket)"
fi

echo "smoke test: $passed passed, 0 failed"
