// Outbound path of every SMTP connection: the Flex Consumption app is integrated into a subnet whose NAT
// gateway owns one Standard static public IP, so all outbound traffic leaves from that one address, the
// address SPF, PTR and receivers' reputation systems see.
// NAT gateway: https://learn.microsoft.com/azure/nat-gateway/nat-overview
// Flex Consumption VNet integration (subnet delegated to Microsoft.App/environments):
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#enable-virtual-network-integration

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags resourceTags

@description('Name prefix for the network resources.')
param namePrefix string

@description('Unique DNS label of the public IP (<label>.<region>.cloudapp.azure.com); Azure requires one before it accepts a reverse FQDN.')
param domainNameLabel string

@description('The EHLO host name; becomes the reverse DNS (PTR) of the outbound IP when setReverseDns is true.')
param ehloHostname string

@description('Set the PTR record. Azure accepts a reverse FQDN only when its forward lookup already resolves to this IP, so this is the second deployment step, after the A record is published.')
param setReverseDns bool

@description('Address space of the virtual network.')
param addressPrefix string = '10.20.0.0/16'

@description('Prefix of the integration subnet (Flex Consumption needs at least a /28; a /24 leaves room to scale out).')
param integrationSubnetPrefix string = '10.20.0.0/24'

@description('NAT idle timeout in minutes. A receiver may take minutes to answer DATA (RFC 5321 §4.5.3.2.6 allows 10), so the 4-minute default could cut a live SMTP session.')
@minValue(4)
@maxValue(120)
param natIdleTimeoutMinutes int = 15

resource outboundIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: '${namePrefix}-outbound-ip'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
    dnsSettings: setReverseDns
      ? {
          domainNameLabel: domainNameLabel
          reverseFqdn: '${ehloHostname}.'
        }
      : {
          domainNameLabel: domainNameLabel
        }
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: '${namePrefix}-nat'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: natIdleTimeoutMinutes
    publicIpAddresses: [
      {
        id: outboundIp.id
      }
    ]
  }
}

resource virtualNetwork 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: '${namePrefix}-vnet'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'functions'
        properties: {
          addressPrefix: integrationSubnetPrefix
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

output integrationSubnetId string = virtualNetwork.properties.subnets[0].id
output outboundIpAddress string = outboundIp.properties.ipAddress
output outboundIpFqdn string = outboundIp.properties.dnsSettings.fqdn
