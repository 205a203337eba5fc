// The app's one identity: storage, Application Insights ingestion and Key Vault references all use it.
// User-assigned rather than system-assigned so its role assignments exist before the app first starts
// (a system-assigned identity is only created with the site, so the host would start without access).

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Name of the user-assigned managed identity.')
param name string

@description('Tags for the resource.')
param tags resourceTags

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
