// Parameter shapes shared by main.bicep and the modules.

@export()
@description('A DKIM signing key (RFC 6376). The private key (PEM) lives in Key Vault; the app receives it through a Key Vault reference.')
type dkimKey = {
  @description('Signing domain (d=), the From domain of the messages it signs.')
  domain: string

  @description('Selector (s=); the public key is published at <selector>._domainkey.<domain>.')
  selector: string

  @description('rsa-sha256 or ed25519-sha256 (RFC 8463).')
  algorithm: ('rsa-sha256' | 'ed25519-sha256')

  @description('Key Vault secret holding the PEM private key; default see dkimSecretName.')
  secretName: string?
}

@export()
@description('Resource tags (azd-env-name and friends).')
type resourceTags = {
  *: string
}

@export()
@description('The Key Vault secret holding a DKIM key\'s private key: its secretName, else dkim-<selector>-<domain>, dots as hyphens (secret names allow only letters, digits and hyphens).')
func dkimSecretName(key dkimKey) string => key.?secretName ?? 'dkim-${replace(key.selector, '.', '-')}-${replace(key.domain, '.', '-')}'
