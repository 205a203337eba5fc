// Log Analytics + workspace-based Application Insights with local (instrumentation key) authentication
// disabled: ingestion needs an Entra ID token with Monitoring Metrics Publisher, so the connection string
// alone is not a credential. https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication
// Plus the operator's workbook over the app's telemetry (names in docs of the telemetry contract).

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags resourceTags

@description('Name prefix for the monitoring resources.')
param namePrefix string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Days Log Analytics keeps data (30 is included in the ingestion price).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

// Workbook resource names must be GUIDs; stable per App Insights resource so redeploying updates it.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsights.id, 'clouddelivery-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'CloudDelivery outbound mail'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: replace(loadTextContent('../workbook.json'), '__APP_INSIGHTS_ID__', appInsights.id)
  }
}

output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
output workspaceId string = workspace.id
output workbookId string = workbook.id
