// Log alerts on the app's metrics in Application Insights (customMetrics; names from the telemetry
// contract). Scheduled query rules: https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-create-log-alert-rule

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags resourceTags

@description('Name prefix for the alert resources.')
param namePrefix string

@description('Resource ID of the Application Insights component the rules query.')
param appInsightsId string

@description('Where alert e-mails go; empty creates no action group and the rules only show in the portal.')
param alertEmail string

@description('Alert when the oldest ready message has waited longer than this many seconds.')
@minValue(60)
param oldestReadyAgeThresholdSeconds int

@description('Alert when failed + expired recipients exceed this percentage of all recipient outcomes in the window.')
@minValue(1)
@maxValue(100)
param failureRatioThresholdPercent int

@description('Fewer recipient outcomes than this in the window never raise the failure ratio alert (1 failure of 1 is not a trend).')
@minValue(1)
param failureRatioMinimumRecipients int

@description('Create the resolver self-check alert (false when the app uses no resolver of its own and the check is off).')
param resolverCheckEnabled bool

var sendEmail = !empty(alertEmail)

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (sendEmail) {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'mailalerts'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actions = sendEmail
  ? {
      actionGroups: [
        actionGroup.id
      ]
    }
  : {
      actionGroups: []
    }

// The gauges are sampled every 5 minutes (the sampler's timer shares the sweepers' wake-up; each snapshot is
// exported every minute for 15 minutes), so a 15-minute window evaluated every 5 minutes always holds values
// and tolerates a missed sample without flapping.
resource poisonQueueAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-queue'
  location: location
  tags: tags
  properties: {
    displayName: 'CloudDelivery: poison queue is not empty'
    description: 'Wake-up messages failed processing repeatedly and were moved to the poison queue; their domains are not being delivered.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "clouddelivery.queue.messages" and tostring(customDimensions.queue) == "poison" | summarize PoisonMessages = max(valueMax)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'PoisonMessages'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource oldestReadyAgeAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-oldest-ready-age'
  location: location
  tags: tags
  properties: {
    displayName: 'CloudDelivery: messages wait too long for delivery'
    description: 'The oldest message that is due for an attempt has waited longer than ${oldestReadyAgeThresholdSeconds} s: workers are not keeping up or not running.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "clouddelivery.queue.oldest_ready_age" | summarize OldestReadyAgeSeconds = max(valueMax)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'OldestReadyAgeSeconds'
          operator: 'GreaterThan'
          threshold: oldestReadyAgeThresholdSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource failureRatioAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failure-ratio'
  location: location
  tags: tags
  properties: {
    displayName: 'CloudDelivery: high share of failed recipients'
    description: 'Failed + expired recipients are more than ${failureRatioThresholdPercent}% of all recipient outcomes in the last hour.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "clouddelivery.recipients" | extend result = tostring(customDimensions.result) | summarize outcomes = sum(valueSum), failedOrExpired = sumif(valueSum, result in ("failed", "expired")) | where outcomes >= ${failureRatioMinimumRecipients} | extend FailurePercent = 100.0 * failedOrExpired / outcomes'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'FailurePercent'
          operator: 'GreaterThan'
          threshold: failureRatioThresholdPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

// clouddelivery.resolver.checks counts the app's checks that its resolver sets the AD bit on a signed
// answer and refuses a bogus one (RFC 4035 §3.2.3, §5.5); result = validating | not-validating |
// unreachable. Any check that is not "validating" means DANE is off (no authentic answer) or lookups fail.
// No alert on silence: the app scales to zero, and an idle app checks nothing.
resource resolverCheckAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = if (resolverCheckEnabled) {
  name: '${namePrefix}-resolver-check'
  location: location
  tags: tags
  properties: {
    displayName: 'CloudDelivery: the resolver does not validate DNSSEC or does not answer'
    description: 'A resolver self-check in the last 15 minutes was not-validating or unreachable: DANE cannot apply (no answer is authentic) or lookups fail and mail is deferred. Check the resolver VM (az vm run-command invoke … --scripts "systemctl status unbound") or CloudDelivery__Delivery__Resolver.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "clouddelivery.resolver.checks" | extend result = tostring(customDimensions.result) | summarize FailedChecks = sumif(valueSum, result != "validating")'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'FailedChecks'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output actionGroupId string = sendEmail ? actionGroup.id : ''
output alertRuleIds string[] = concat(
  [
    poisonQueueAlert.id
    oldestReadyAgeAlert.id
    failureRatioAlert.id
  ],
  resolverCheckEnabled ? [resolverCheckAlert.id] : []
)
