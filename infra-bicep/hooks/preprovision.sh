#!/usr/bin/env bash
# azd preprovision hook: the resolver VM (RESOLVER_MODE deploy, the default) has password login off, and
# Azure refuses a Linux VM with neither a password nor an SSH key. When RESOLVER_SSH_PUBLIC_KEY is empty,
# create a key pair for this azd environment under ~/.ssh and store its public half in the environment.
# Never fails the deployment: if it cannot make a key it says so, and the provisioning error will too.
set -u

mode="${RESOLVER_MODE:-deploy}"
if [ "$mode" != "deploy" ] || [ -n "${RESOLVER_SSH_PUBLIC_KEY:-}" ]; then
    exit 0
fi

key="${HOME}/.ssh/clouddelivery-${AZURE_ENV_NAME:-default}-resolver"
if [ ! -f "${key}.pub" ]; then
    if ! command -v ssh-keygen >/dev/null 2>&1; then
        echo "preprovision: ssh-keygen not found; set RESOLVER_SSH_PUBLIC_KEY (azd env set RESOLVER_SSH_PUBLIC_KEY \"\$(cat ~/.ssh/id_rsa.pub)\") or RESOLVER_MODE none/existing." >&2
        exit 0
    fi
    mkdir -p "${HOME}/.ssh" && chmod 700 "${HOME}/.ssh"
    if ! ssh-keygen -q -t rsa -b 4096 -N "" -C "clouddelivery resolver (${AZURE_ENV_NAME:-default})" -f "$key"; then
        echo "preprovision: could not create ${key}; set RESOLVER_SSH_PUBLIC_KEY yourself." >&2
        exit 0
    fi
fi
if azd env set RESOLVER_SSH_PUBLIC_KEY "$(cat "${key}.pub")"; then
    echo "preprovision: the resolver VM's administrator key is ${key} (public half in RESOLVER_SSH_PUBLIC_KEY)."
else
    echo "preprovision: azd env set failed; set RESOLVER_SSH_PUBLIC_KEY to the contents of ${key}.pub." >&2
fi
exit 0
