// CloudDelivery on Azure, for `azd up`: one resource group with the Functions app (Flex Consumption),
// its storage, Key Vault, monitoring and a NAT gateway that gives all outbound SMTP one static address.
// Subscription scope so that azd creates the resource group (the azd template convention).
// README.md beside this file explains the parameters, the two-step reverse DNS flow and the costs.

targetScope = 'subscription'

import { dkimKey, dkimSecretName } from 'modules/types.bicep'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource.')
param location string

@description('Host name this MTA announces in EHLO (RFC 5321 §4.1.1.1); needs an A record to the outbound IP and the matching PTR.')
param ehloHostname string

@description('Sender (From / MAIL FROM) domains this deployment sends for; the outputs list their SPF (and optional TLSRPT / MTA-STS) records.')
param senderDomains string[] = []

@description('Set the outbound IP\'s reverse DNS (PTR) to ehloHostname. Leave false on the first deployment: Azure only accepts it once the A record of ehloHostname resolves to the outbound IP.')
param setReverseDns bool = false

@description('Smarthost (relay) host; empty delivers directly to the recipients\' MX hosts on port 25.')
param smarthostHost string = ''

@description('Smarthost port (587: submission with STARTTLS; 465: implicit TLS).')
@minValue(1)
@maxValue(65535)
param smarthostPort int = 587

@description('Smarthost user name; empty means no authentication.')
param smarthostUserName string = ''

@description('Name of the Key Vault secret holding the smarthost password (store it after the first deployment); empty means none.')
param smarthostPasswordSecretName string = ''

@description('Sender domains relayed through the smarthost; empty relays all senders.')
param smarthostSenderDomains string[] = []

@description('SPF include of the smarthost provider (e.g. spf.provider.example); used in the SPF records of relayed domains.')
param smarthostSpfInclude string = ''

@description('TLSRPT (RFC 8460) organization-name of the reports this deployment sends.')
param tlsRptOrganization string

@description('TLSRPT contact-info of the reports: an e-mail address or URI where report receivers reach you.')
param tlsRptContact string

@description('TLSRPT submitter domain of the reports; empty uses the app\'s default.')
param tlsRptSubmitterDomain string = ''

@description('Where receivers should send TLSRPT reports about mail to the sender domains (a mailto: or https: URI); empty omits the _smtp._tls records from the outputs.')
param tlsRptReportingUri string = ''

@description('MTA-STS policy id for the sender domains\' _mta-sts records (e.g. 20261201T000000); empty omits the MTA-STS records from the outputs.')
param mtaStsPolicyId string = ''

@description('DKIM signing keys; each private key is a Key Vault secret (see README.md).')
param dkimKeys dkimKey[] = []

@description('E-mail address for alert notifications; empty creates the alert rules without an action group.')
param alertEmail string = ''

@description('Alert when the oldest message due for an attempt has waited longer than this (seconds).')
@minValue(60)
param oldestReadyAgeThresholdSeconds int = 1800

@description('Alert when failed + expired recipients exceed this percentage of all recipient outcomes in an hour.')
@minValue(1)
@maxValue(100)
param failureRatioThresholdPercent int = 20

@description('The failure ratio alert ignores hours with fewer recipient outcomes than this.')
@minValue(1)
param failureRatioMinimumRecipients int = 20

@description('Maximum instances the Functions app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per Functions instance in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances for the delivery queue trigger (billed while idle; 0 = scale from zero).')
@minValue(0)
param alwaysReadyInstances int = 0

@description('Create an Event Grid topic (CloudEvents 1.0, Entra ID auth only) for delivery events, with the app\'s identity as its publisher ("EventGrid Data Sender").')
param deployEventGridTopic bool = false

@description('HTTPS URL of a webhook that receives signed delivery events; empty means none.')
param webhookUrl string = ''

@secure()
@description('Signing secret of that webhook (whsec_<base64> or any string); stored in Key Vault, referenced by the app setting.')
param webhookSecret string = ''

@description('DNS resolver of every lookup: deploy = a validating unbound VM in the VNet (DNSSEC, needed for DANE); existing = resolverAddress; none = the platform resolver (no DNSSEC validation, so no DANE) and the resolver self-check off.')
@allowed([
  'deploy'
  'existing'
  'none'
])
param resolverMode string = 'deploy'

@description('For resolverMode existing: a validating resolver the VNet reaches, \'host\' or \'host:port\' (port 53 if omitted).')
param resolverAddress string = ''

@description('For resolverMode deploy: the resolver VM\'s static private IP, inside the resolver subnet (10.20.1.0/28; Azure reserves .0 to .3).')
param resolverIpAddress string = '10.20.1.4'

@description('For resolverMode deploy: the VM size.')
param resolverVmSize string = 'Standard_B2ats_v2'

@description('For resolverMode deploy: version of the Debian 12 gen2 image (az vm image list --publisher Debian --offer debian-12 --sku 12-gen2 --all).')
param resolverImageVersion string = '0.20230612.1409'

@description('For resolverMode deploy: administrator user name on the VM.')
param resolverAdminUsername string = 'clouddelivery'

@description('For resolverMode deploy: OpenSSH public key of the VM\'s administrator (password login is off; the preprovision hook creates one when empty). The VM has no public IP: use az vm run-command, or SSH from inside the VNet.')
param resolverSshPublicKey string = ''

@description('Storage replication; Standard_ZRS survives the loss of one availability zone (where the region has zones).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageRedundancy string = 'Standard_LRS'

@description('Public IPv4 addresses (or CIDR ranges) allowed to reach storage through its public endpoint, e.g. the operator\'s for the clouddelivery CLI; empty keeps public network access disabled (the app uses the private endpoints).')
param operatorIpAddresses string[] = []

@description('Grant principalId the storage data roles (Blob, Queue, Table Data Contributor) so that the clouddelivery CLI works with the signed-in account.')
param grantDeployerDataAccess bool = true

@description('Object ID of the principal running azd (azd sets AZURE_PRINCIPAL_ID); it gets Key Vault Secrets Officer to store the secrets and, with grantDeployerDataAccess, the storage data roles. Empty grants nothing.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

var tags = {
  'azd-env-name': environmentName
}

// 13 characters, stable per subscription, environment and region: keeps global names (storage, vault,
// app) unique without the operator choosing them.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var namePrefix = 'cd-${resourceToken}'
var deploymentContainerName = 'app-package'
// Names the role assignments need are computed here, not taken from module outputs, so that what-if
// can predict the role assignments (linter rule what-if-short-circuiting).
var identityName = '${namePrefix}-app-identity'
var storageAccountName = 'st${resourceToken}'
var keyVaultName = 'kv-${resourceToken}'
var appInsightsName = '${namePrefix}-appi'

// CloudDelivery__Delivery__Resolver is 'ip:port'; a bare host gets DNS's port 53 (RFC 1035 §4.2).
var resolverEndpoint = resolverMode == 'deploy'
  ? '${resolverIpAddress}:53'
  : resolverMode == 'existing' ? (contains(resolverAddress, ':') ? resolverAddress : '${resolverAddress}:53') : ''

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    name: identityName
  }
}

module network 'modules/network.bicep' = {
  name: 'network'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    domainNameLabel: namePrefix
    ehloHostname: ehloHostname
    setReverseDns: setReverseDns
  }
}

module resolver 'modules/resolver.bicep' = if (resolverMode == 'deploy') {
  name: 'resolver'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    subnetId: network.outputs.resolverSubnetId
    privateIpAddress: resolverIpAddress
    clientSubnetPrefix: network.outputs.integrationSubnetPrefix
    vmSize: resolverVmSize
    imageVersion: resolverImageVersion
    adminUsername: resolverAdminUsername
    sshPublicKey: resolverSshPublicKey
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    name: storageAccountName
    deploymentContainerName: deploymentContainerName
    skuName: storageRedundancy
    virtualNetworkId: network.outputs.virtualNetworkId
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    operatorIpAddresses: operatorIpAddresses
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/key-vault.bicep' = {
  name: 'key-vault'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    name: keyVaultName
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsName: appInsightsName
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: resourceGroup
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
    oldestReadyAgeThresholdSeconds: oldestReadyAgeThresholdSeconds
    failureRatioThresholdPercent: failureRatioThresholdPercent
    failureRatioMinimumRecipients: failureRatioMinimumRecipients
    resolverCheckEnabled: resolverMode != 'none'
  }
}

module roleAssignments 'modules/role-assignments.bicep' = {
  name: 'role-assignments'
  scope: resourceGroup
  dependsOn: [
    identity
    storage
    keyVault
    monitoring
  ]
  params: {
    identityName: identityName
    storageAccountName: storageAccountName
    keyVaultName: keyVaultName
    appInsightsName: appInsightsName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    grantDeployerDataAccess: grantDeployerDataAccess
  }
}

module eventGrid 'modules/event-grid.bicep' = if (deployEventGridTopic) {
  name: 'event-grid'
  scope: resourceGroup
  dependsOn: [
    identity
  ]
  params: {
    location: location
    tags: tags
    name: '${namePrefix}-events'
    identityName: identityName
  }
}

var webhookSecretName = 'events-webhook-secret'

module webhookSecretStore 'modules/webhook-secret.bicep' = if (!empty(webhookUrl)) {
  name: 'webhook-secret'
  scope: resourceGroup
  dependsOn: [
    keyVault
  ]
  params: {
    keyVaultName: keyVaultName
    secretName: webhookSecretName
    secretValue: webhookSecret
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: resourceGroup
  // The host reads storage and Key Vault references at its first start: grant the roles before it exists.
  dependsOn: [
    roleAssignments
    webhookSecretStore
    // The resolver's address is known up front; create it first so the app's first self-check finds it.
    resolver
  ]
  params: {
    location: location
    tags: tags
    name: '${namePrefix}-func'
    planName: '${namePrefix}-plan'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    keyVaultUri: keyVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.connectionString
    integrationSubnetId: network.outputs.integrationSubnetId
    ehloHostname: ehloHostname
    tlsRptOrganization: tlsRptOrganization
    tlsRptContact: tlsRptContact
    tlsRptSubmitterDomain: tlsRptSubmitterDomain
    smarthostHost: smarthostHost
    smarthostPort: smarthostPort
    smarthostUserName: smarthostUserName
    smarthostPasswordSecretName: smarthostPasswordSecretName
    smarthostSenderDomains: smarthostSenderDomains
    dkimKeys: dkimKeys
    eventGridEndpoint: deployEventGridTopic ? eventGrid!.outputs.endpoint : ''
    webhookUrl: webhookUrl
    webhookSecretName: empty(webhookUrl) ? '' : webhookSecretName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyInstances: alwaysReadyInstances
    resolver: resolverEndpoint
    resolverCheckEnabled: resolverMode != 'none'
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

var outboundIp = network.outputs.outboundIpAddress

// A sender domain's mail leaves from the outbound IP unless the smarthost relays it (all domains when
// smarthostSenderDomains is empty); relayed mail must pass SPF at the provider's addresses instead.
// SPF syntax: RFC 7208 §4.6.1 and §5.
var relaysEverything = !empty(smarthostHost) && empty(smarthostSenderDomains)
var spfRelayMechanism = empty(smarthostSpfInclude) ? ' include:<your smarthost provider\'s SPF domain>' : ' include:${smarthostSpfInclude}'

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output KEY_VAULT_NAME string = keyVault.outputs.name
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output OUTBOUND_IP string = outboundIp
// Not named RESOLVER_ADDRESS: azd writes outputs back into the environment, which would overwrite that input.
@description('The resolver the app uses (ip:port), empty for resolverMode none.')
output RESOLVER_ENDPOINT string = resolverEndpoint

@description('Publish this A record first: the EHLO host name must resolve to the outbound IP.')
output DNS_A_RECORD string = '${ehloHostname}. 3600 IN A ${outboundIp}'

@description('What the reverse lookup must return once setReverseDns is true (check with: dig -x <ip> +short).')
output DNS_PTR_CHECK string = setReverseDns
  ? 'dig -x ${outboundIp} +short must print ${ehloHostname}.'
  : 'PTR not set yet: publish the A record, then azd env set SET_REVERSE_DNS true && azd provision; afterwards dig -x ${outboundIp} +short must print ${ehloHostname}.'

@description('SPF TXT record per sender domain.')
output DNS_SPF_RECORDS string[] = [
  for domain in senderDomains: relaysEverything || contains(smarthostSenderDomains, domain)
    ? '${domain}. 3600 IN TXT "v=spf1${spfRelayMechanism} -all"'
    : '${domain}. 3600 IN TXT "v=spf1 ip4:${outboundIp} -all"'
]

@description('DKIM TXT record name per key; p= is the public key of the private key stored in Key Vault, which only the operator has.')
output DNS_DKIM_RECORDS string[] = [
  for key in dkimKeys: '${key.selector}._domainkey.${key.domain}. 3600 IN TXT "v=DKIM1; k=${key.algorithm == 'ed25519-sha256' ? 'ed25519' : 'rsa'}; p=<base64 public key of Key Vault secret ${dkimSecretName(key)}>"'
]

@description('TLSRPT (RFC 8460 §3) records for the sender domains, when tlsRptReportingUri is set.')
output DNS_TLSRPT_RECORDS string[] = empty(tlsRptReportingUri)
  ? []
  : map(senderDomains, domain => '_smtp._tls.${domain}. 3600 IN TXT "v=TLSRPTv1; rua=${tlsRptReportingUri}"')

@description('MTA-STS (RFC 8461 §3) records for the sender domains\' inbound mail, when mtaStsPolicyId is set; mta-sts.<domain> must serve /.well-known/mta-sts.txt over HTTPS, which this deployment does not host.')
output DNS_MTASTS_RECORDS string[] = empty(mtaStsPolicyId)
  ? []
  : flatten(map(senderDomains, domain => [
      '_mta-sts.${domain}. 3600 IN TXT "v=STSv1; id=${mtaStsPolicyId}"'
      'mta-sts.${domain}. 3600 IN CNAME <host serving https://mta-sts.${domain}/.well-known/mta-sts.txt>.'
    ]))
