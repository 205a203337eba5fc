// The queue's storage (bodies, recipient records, wake-up queue) and the Functions host's own storage
// (AzureWebJobsStorage), reached only with Entra ID tokens: shared key access is off, so no connection
// string or account key exists that could leak. https://learn.microsoft.com/azure/storage/common/shared-key-authorization-prevent
//
// Reached privately: blob, queue and table each have a private endpoint in the VNet, and the
// privatelink.<service>.<suffix> zones linked to the VNet make the account's usual host names resolve to
// those endpoints inside it (Azure's resolver answers from linked zones). Flex Consumption sends all of
// the app's outbound traffic through its integration subnet, the host's storage and the deployment
// package included, so the public endpoint can stay closed. It opens only to the operator's addresses
// (operatorIpAddresses), for the CLI. https://learn.microsoft.com/azure/storage/common/storage-private-endpoints

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

@description('Replication: Standard_ZRS keeps the account available when one zone of the region fails.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string

@description('Virtual network the private DNS zones are linked to.')
param virtualNetworkId string

@description('Subnet of the private endpoints.')
param privateEndpointSubnetId string

@description('Public IPv4 addresses or CIDR ranges allowed through the public endpoint (the operator\'s CLI); empty closes it.')
param operatorIpAddresses string[]

@description('Log Analytics workspace receiving the services\' resource logs and transaction metrics.')
param logAnalyticsWorkspaceId string

// The three services the app and the Functions host use (files is unused).
var privateServices = [
  'blob'
  'queue'
  'table'
]

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // 'Disabled' ignores every network rule; only 'Enabled' with defaultAction Deny honours ipRules.
    publicNetworkAccess: empty(operatorIpAddresses) ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: 'Deny'
      // Trusted Azure services that hold a role on the account (RBAC still decides).
      bypass: 'AzureServices'
      ipRules: [
        for address in operatorIpAddresses: {
          value: address
          action: 'Allow'
        }
      ]
    }
  }
}

resource privateDnsZones 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for service in privateServices: {
    name: 'privatelink.${service}.${environment().suffixes.storage}'
    location: 'global'
    tags: tags
  }
]

resource privateDnsZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (service, index) in privateServices: {
    parent: privateDnsZones[index]
    name: 'vnet'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: virtualNetworkId
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for service in privateServices: {
    name: '${name}-${service}-pe'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: privateEndpointSubnetId
      }
      privateLinkServiceConnections: [
        {
          name: service
          properties: {
            privateLinkServiceId: storage.id
            groupIds: [
              service
            ]
          }
        }
      ]
    }
  }
]

// The zone group writes the endpoint's A record into its zone (and removes it with the endpoint).
resource privateDnsZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (service, index) in privateServices: {
    parent: privateEndpoints[index]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: service
          properties: {
            privateDnsZoneId: privateDnsZones[index].id
          }
        }
      ]
    }
  }
]

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

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' = {
  parent: storage
  name: 'default'
}

// Resource logs of every data-plane request (who, from where, which operation, the result) and the
// transaction metrics, per service. https://learn.microsoft.com/azure/storage/blobs/monitor-blob-storage
var storageDiagnostics = {
  workspaceId: logAnalyticsWorkspaceId
  logs: [
    { category: 'StorageRead', enabled: true }
    { category: 'StorageWrite', enabled: true }
    { category: 'StorageDelete', enabled: true }
  ]
  metrics: [
    { category: 'Transaction', enabled: true }
  ]
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'log-analytics'
  scope: blobService
  properties: storageDiagnostics
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'log-analytics'
  scope: queueService
  properties: storageDiagnostics
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'log-analytics'
  scope: tableService
  properties: storageDiagnostics
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
