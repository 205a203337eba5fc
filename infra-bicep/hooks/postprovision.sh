#!/usr/bin/env bash
# azd postprovision hook: print the DNS records to publish, from the template's outputs that azd puts in
# the environment (DNS_A_RECORD, DNS_SPF_RECORDS, …; arrays arrive as JSON), in zone-file form, in the
# order that works: A record first, PTR second (Azure sets it only once the A record resolves), then
# SPF, DKIM, TLSRPT and MTA-STS. Reads nothing from the network. Always exits 0: printing advice must
# never fail a deployment.
set -u

# Each string of a JSON array of strings on its own line (azd stores array outputs as JSON). Plain bash,
# so the hook needs neither jq nor python; \uXXXX escapes are left as written (the records are ASCII).
json_strings() {
    local text=$1 length=${#1} index=0 char value="" inside=0
    while [ "$index" -lt "$length" ]; do
        char=${text:index:1}
        if [ "$inside" -eq 1 ]; then
            if [ "$char" = "\\" ]; then
                index=$((index + 1))
                char=${text:index:1}
                case "$char" in
                    n) value+=$'\n' ;;
                    t) value+=$'\t' ;;
                    u) value+="\\u" ;;
                    *) value+=$char ;;
                esac
            elif [ "$char" = '"' ]; then
                printf '%s\n' "$value"
                value=""
                inside=0
            else
                value+=$char
            fi
        elif [ "$char" = '"' ]; then
            inside=1
        fi
        index=$((index + 1))
    done
}

# print_records TITLE VARIABLE: the records of one output, or why there are none.
print_records() {
    local title=$1 name=$2 value
    value=${!name-}
    echo
    echo "; ${title}"
    if [ -z "$value" ]; then
        echo "; (${name} is not in the azd environment: run azd env get-values after azd provision)"
        return
    fi
    local records
    records=$(json_strings "$value")
    if [ -z "$records" ]; then
        echo "; none (${name} is empty)"
    else
        printf '%s\n' "$records"
    fi
}

echo "== DNS records to publish (zone-file form; see README.md \"DNS records to publish\") =="
echo
echo "; 1. A record of the EHLO host name -> the outbound IP ${OUTBOUND_IP:-<unknown>}"
echo "${DNS_A_RECORD:-; (DNS_A_RECORD is not in the azd environment)}"
echo
echo "; 2. Reverse DNS (PTR): Azure sets it only after the A record resolves"
echo "; ${DNS_PTR_CHECK:-(DNS_PTR_CHECK is not in the azd environment)}"
if [ "${SET_REVERSE_DNS:-false}" != "true" ]; then
    echo "; then: azd env set SET_REVERSE_DNS true && azd provision"
fi
print_records "3. SPF (RFC 7208), one per sender domain" DNS_SPF_RECORDS
print_records "4. DKIM (RFC 6376): p= is the public half of the key you stored in Key Vault" DNS_DKIM_RECORDS
print_records "5. TLSRPT (RFC 8460), when TLSRPT_REPORTING_URI is set" DNS_TLSRPT_RECORDS
print_records "6. MTA-STS (RFC 8461), when MTASTS_POLICY_ID is set" DNS_MTASTS_RECORDS

echo
echo "== Resolver =="
if [ -n "${RESOLVER_ENDPOINT:-}" ]; then
    echo "The app sends every DNS lookup to ${RESOLVER_ENDPOINT} (RESOLVER_MODE ${RESOLVER_MODE:-deploy}); its self-check state is printed after azd deploy."
else
    echo "RESOLVER_MODE none: the platform resolver, which does not validate DNSSEC, so DANE never applies."
fi

echo
echo "== Next =="
echo "clouddelivery status --account ${STORAGE_ACCOUNT_NAME:-<storage account>}   # needs the storage data roles and your IP in OPERATOR_IP_ADDRESSES"
exit 0
