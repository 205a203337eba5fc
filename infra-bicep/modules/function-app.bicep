// The Functions app on the Flex Consumption plan (Linux, per-execution billing, VNet integration).
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan
// Every app setting is a name, a plain non-secret value, or a Key Vault reference: storage, telemetry and
// Key Vault are all reached with the user-assigned identity's Entra ID tokens.

import { dkimKey, dkimSecretName, resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resources (the site gets azd-service-name on top).')
param tags resourceTags

@description('Name of the Function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Resource ID of the user-assigned identity.')
param identityId string

@description('Client ID of the user-assigned identity.')
param identityClientId string

@description('Storage account name.')
param storageAccountName string

@description('Blob endpoint of the storage account (https://<name>.blob.<suffix>/).')
param storageBlobEndpoint string

@description('Queue endpoint of the storage account.')
param storageQueueEndpoint string

@description('Blob container holding the deployment package.')
param deploymentContainerName string

@description('Key Vault URI (https://<name>.vault.azure.net/).')
param keyVaultUri string

@description('Application Insights connection string (not a secret: ingestion also needs the identity\'s token).')
param appInsightsConnectionString string

@description('Integration subnet (delegated to Microsoft.App/environments, NAT gateway attached).')
param integrationSubnetId string

@description('EHLO host name.')
param ehloHostname string

@description('TLSRPT (RFC 8460) organization-name of the reports this app sends.')
param tlsRptOrganization string

@description('TLSRPT contact-info of the reports (an e-mail address or URI).')
param tlsRptContact string

@description('TLSRPT submitter domain; empty uses the app\'s default.')
param tlsRptSubmitterDomain string

@description('Smarthost host; empty delivers directly to MX hosts.')
param smarthostHost string

@description('Smarthost port.')
param smarthostPort int

@description('Smarthost user name; empty means no authentication.')
param smarthostUserName string

@description('Key Vault secret holding the smarthost password; empty means no password.')
param smarthostPasswordSecretName string

@description('Sender domains that use the smarthost; empty means all senders.')
param smarthostSenderDomains string[]

@description('DKIM signing keys.')
param dkimKeys dkimKey[]

@description('Event Grid topic endpoint for delivery events; empty means none.')
param eventGridEndpoint string

@description('HTTPS URL of the events webhook; empty means none.')
param webhookUrl string

@description('Key Vault secret holding the webhook signing secret.')
param webhookSecretName string

@description('Maximum instances Flex Consumption scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory per instance in MB (2048 or 4096).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int

@description('Always-ready instances for the queue trigger (0: none; each one is billed while idle).')
@minValue(0)
param alwaysReadyInstances int

@description('DNS resolver (ip:port) of every lookup; empty leaves the platform resolver.')
param resolver string

@description('Whether the app checks at start-up and periodically that its resolver validates DNSSEC.')
param resolverCheckEnabled bool

@description('Log Analytics workspace receiving the app\'s FunctionAppLogs.')
param logAnalyticsWorkspaceId string

var keyVaultReference = 'SecretUri=${keyVaultUri}secrets/'

var baseSettings = [
  // Host storage by identity; the absence of an AzureWebJobsStorage connection string is deliberate.
  // https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
  { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  // The queue trigger's connection (DeliveryFunctions: Connection = "CloudDeliveryStorage").
  { name: 'CloudDeliveryStorage__queueServiceUri', value: storageQueueEndpoint }
  { name: 'CloudDeliveryStorage__credential', value: 'managedidentity' }
  { name: 'CloudDeliveryStorage__clientId', value: identityClientId }
  // Application Insights with Entra ID ingestion (local auth is disabled on the component).
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
  { name: 'CloudDelivery__Telemetry__Exporter', value: 'azuremonitor' }
  // The app's own storage and identity (telemetry contract).
  { name: 'CloudDelivery__Storage__AccountName', value: storageAccountName }
  { name: 'CloudDelivery__Storage__EndpointSuffix', value: environment().suffixes.storage }
  // The queue trigger reads its queue name from this setting (%CloudDelivery:Storage:WakeUpQueue%), so the
  // host must have it; the runtime moves a message that fails maxDequeueCount times to '<queue>-poison',
  // which is where the app looks for poison.
  { name: 'CloudDelivery__Storage__WakeUpQueue', value: 'cd-wakeups' }
  { name: 'CloudDelivery__Storage__PoisonQueue', value: 'cd-wakeups-poison' }
  { name: 'CloudDelivery__ManagedIdentityClientId', value: identityClientId }
  { name: 'CloudDelivery__Hostname', value: ehloHostname }
  // Each instance takes its share of the budgets many domains share: at most this many deliver at once.
  { name: 'CloudDelivery__Shaping__InstanceCount', value: string(maximumInstanceCount) }
  { name: 'CloudDelivery__TlsRpt__OrganizationName', value: tlsRptOrganization }
  { name: 'CloudDelivery__TlsRpt__ContactInfo', value: tlsRptContact }
]

var submitterSettings = empty(tlsRptSubmitterDomain)
  ? []
  : [
      { name: 'CloudDelivery__TlsRpt__SubmitterDomain', value: tlsRptSubmitterDomain }
    ]

var smarthostSettings = empty(smarthostHost)
  ? []
  : concat(
      [
        { name: 'CloudDelivery__Smarthost__Host', value: smarthostHost }
        { name: 'CloudDelivery__Smarthost__Port', value: string(smarthostPort) }
        { name: 'CloudDelivery__Smarthost__SenderDomains', value: join(smarthostSenderDomains, ',') }
      ],
      empty(smarthostUserName) ? [] : [{ name: 'CloudDelivery__Smarthost__UserName', value: smarthostUserName }],
      empty(smarthostPasswordSecretName)
        ? []
        : [
            {
              name: 'CloudDelivery__Smarthost__Password'
              value: '@Microsoft.KeyVault(${keyVaultReference}${smarthostPasswordSecretName})'
            }
          ]
    )

// CloudDelivery__Dkim__Keys__<n>__Domain|Selector|Algorithm|PrivateKeyPem (DkimConfiguration.cs).
var dkimSettings = flatten(map(range(0, length(dkimKeys)), index => [
  { name: 'CloudDelivery__Dkim__Keys__${index}__Domain', value: dkimKeys[index].domain }
  { name: 'CloudDelivery__Dkim__Keys__${index}__Selector', value: dkimKeys[index].selector }
  { name: 'CloudDelivery__Dkim__Keys__${index}__Algorithm', value: dkimKeys[index].algorithm }
  {
    name: 'CloudDelivery__Dkim__Keys__${index}__PrivateKeyPem'
    value: '@Microsoft.KeyVault(${keyVaultReference}${dkimSecretName(dkimKeys[index])})'
  }
]))

// CloudDelivery__Events__EventGrid__Endpoint and CloudDelivery__Events__Webhooks__0__* (EventSinkOptions.cs).
var eventSinkSettings = concat(
  empty(eventGridEndpoint) ? [] : [{ name: 'CloudDelivery__Events__EventGrid__Endpoint', value: eventGridEndpoint }],
  empty(webhookUrl)
    ? []
    : [
        { name: 'CloudDelivery__Events__Webhooks__0__Url', value: webhookUrl }
        {
          name: 'CloudDelivery__Events__Webhooks__0__Secret'
          value: '@Microsoft.KeyVault(${keyVaultReference}${webhookSecretName})'
        }
      ]
)

// CloudDelivery__Delivery__Resolver and CloudDelivery__Delivery__ResolverCheck__Enabled (DeliveryOptions).
var resolverSettings = concat(
  empty(resolver) ? [] : [{ name: 'CloudDelivery__Delivery__Resolver', value: resolver }],
  resolverCheckEnabled ? [] : [{ name: 'CloudDelivery__Delivery__ResolverCheck__Enabled', value: 'false' }]
)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity, not a system-assigned one.
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: integrationSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: concat(baseSettings, submitterSettings, smarthostSettings, dkimSettings, eventSinkSettings, resolverSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyInstances > 0
          ? [
              {
                name: 'function:DeliverDomain'
                instanceCount: alwaysReadyInstances
              }
            ]
          : []
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
    }
  }
}

// No publishing with basic (user name/password) credentials: azd deploys with the operator's Entra ID token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// FunctionAppLogs: the host's and the functions' logs as the platform sees them (start-up failures such
// as an unresolved Key Vault reference included), next to what Application Insights gets from the worker.
resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'log-analytics'
  scope: site
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'FunctionAppLogs', enabled: true }
    ]
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
