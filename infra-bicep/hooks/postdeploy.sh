#!/usr/bin/env bash
# azd postdeploy hook: ask the deployed app's health endpoint (GET /api/healthz, function key from
# `az functionapp keys list`) and print what it says about the resolver self-check. Best effort: a cold
# app, a missing az or curl, or a changed JSON shape only produce a message. Always exits 0.
set -u

app="${FUNCTION_APP_NAME:-}"
group="${AZURE_RESOURCE_GROUP:-}"
host="${FUNCTION_APP_HOSTNAME:-}"
manual="az functionapp keys list -g <group> -n <app> --query functionKeys.default -o tsv, then curl -H \"x-functions-key: <key>\" https://<host>/api/healthz"

echo "== Health of ${app:-the app} =="
if [ -z "$app" ] || [ -z "$group" ] || [ -z "$host" ]; then
    echo "FUNCTION_APP_NAME, AZURE_RESOURCE_GROUP or FUNCTION_APP_HOSTNAME is not in the azd environment; check by hand: ${manual}"
    exit 0
fi
for tool in az curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "${tool} not found; check by hand: ${manual}"
        exit 0
    fi
done

key=$(az functionapp keys list -g "$group" -n "$app" --query functionKeys.default -o tsv 2>/dev/null)
if [ -z "$key" ]; then
    echo "Could not read the function key (az functionapp keys list needs a role on the app); check by hand: ${manual}"
    exit 0
fi

# The first request may start an instance (Flex Consumption scales from zero): a few tries, each bounded
# in time and size.
body=""
for attempt in 1 2 3; do
    body=$(curl -sS --max-time 60 --max-filesize 1048576 -H "x-functions-key: ${key}" "https://${host}/api/healthz" 2>/dev/null) && [ -n "$body" ] && break
    body=""
    sleep 10
done
if [ -z "$body" ]; then
    echo "No answer from https://${host}/api/healthz after 3 tries (the app may still be starting); try again later."
    exit 0
fi

# The resolver's state sits under checks -> <check> -> data -> resolver; print its "state" when found.
state=""
if command -v jq >/dev/null 2>&1; then
    # data.resolver.state, else a key such as data.resolverState, else data.resolver as written.
    state=$(printf '%s' "$body" | jq -r '[.. | objects | select(has("resolver")) | .resolver | objects | .state // empty | tostring] + [.. | objects | to_entries[] | select((.key | test("^resolver.?state$"; "i")) and (.value | type) == "string") | .value] + [.. | objects | select(has("resolver")) | .resolver | strings] | first // empty' 2>/dev/null)
fi
if [ -z "$state" ]; then
    state=$(printf '%s' "$body" | grep -o '"resolver"[^}]*' | grep -o '"state" *: *"[^"]*"' | head -n 1 | sed 's/.*: *"\(.*\)"/\1/')
fi
overall=$(printf '%s' "$body" | grep -o '"status" *: *"[^"]*"' | head -n 1 | sed 's/.*: *"\(.*\)"/\1/')
echo "Overall: ${overall:-unknown}"
if [ -n "$state" ]; then
    echo "Resolver self-check: ${state} (validating is what DANE needs)"
else
    echo "The health answer names no resolver state (check disabled, not run yet, or a different shape):"
    printf '%s\n' "$body" | head -c 4096
    echo
fi
exit 0
