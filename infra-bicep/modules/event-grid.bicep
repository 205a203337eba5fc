// The Event Grid topic delivery events are published to (CloudDelivery:Events:EventGrid:Endpoint), taking
// CloudEvents 1.0 as the app sends them. Local (key) auth is disabled: the app publishes with its
// user-assigned identity, which gets "EventGrid Data Sender" on this topic only. Public network access
// stays enabled like the vault's and storage's; subscriptions route the events on.

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags resourceTags

@description('Topic name (3-50 characters: letters, digits, hyphens).')
@minLength(3)
@maxLength(50)
param name string

@description('Name of the app\'s user-assigned identity (in this resource group), the topic\'s publisher.')
param identityName string

// EventGrid Data Sender: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration#eventgrid-data-sender
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, identity.id, eventGridDataSender)
  scope: topic
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
