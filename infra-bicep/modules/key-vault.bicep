// Secrets the app reads through Key Vault references (smarthost password, DKIM private keys). Access is
// by Azure RBAC only (no access policies).
// Public network access stays enabled: the platform resolves Key Vault references before the app runs and
// the operator writes secrets from their own machine; locking the vault to the VNet would need a private
// endpoint and a private DNS zone (extra hourly cost) for a vault that holds a handful of secrets readable
// only by principals with a role on it. Set publicNetworkAccess to 'Disabled' and add a private endpoint if
// your policy requires it.

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags resourceTags

@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Log Analytics workspace receiving the vault\'s audit log.')
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Purge protection cannot be turned off again; it keeps a deleted DKIM key recoverable for 90 days.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// AuditEvent: every secret read and write, with the caller's identity and address.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'AuditEvent', enabled: true }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
