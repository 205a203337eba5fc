// The queue's storage (bodies, recipient records, wake-up queue) and the Functions host's own storage
// (AzureWebJobsStorage), reached only with Entra ID tokens: shared key access is off, so no connection
// string or account key exists that could leak. https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags resourceTags

@description('Storage account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob container the Flex Consumption platform deploys the app package from.')
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

// The app creates its own containers, tables and queues (OutboundStorage.EnsureCreatedAsync); only the
// deployment container must exist before the first `azd deploy`.
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
