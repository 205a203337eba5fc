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

@description('Prefix of the resolver subnet: the validating resolver VM (static address), outbound through the NAT gateway.')
param resolverSubnetPrefix string = '10.20.1.0/28'

@description('Prefix of the subnet holding the storage account\'s private endpoints (blob, queue, table).')
param privateEndpointSubnetPrefix string = '10.20.2.0/27'

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

// The resolver answers DNS (RFC 1035 §4.2: UDP, and TCP for answers that do not fit) to the app's
// integration subnet only; everything else inbound, including the VNet-wide default allow, is denied.
// Operators reach the VM with `az vm run-command`, which goes through the VM agent's outbound channel,
// so no SSH rule is needed.
resource resolverSecurityGroup 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${namePrefix}-resolver-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'allow-dns-udp-from-functions'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Udp'
          sourceAddressPrefix: integrationSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: resolverSubnetPrefix
          destinationPortRange: '53'
        }
      }
      {
        name: 'allow-dns-tcp-from-functions'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: integrationSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: resolverSubnetPrefix
          destinationPortRange: '53'
        }
      }
      {
        name: 'deny-all-other-inbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
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
      {
        name: 'resolver'
        properties: {
          addressPrefix: resolverSubnetPrefix
          // The resolver asks the internet's authoritative servers from the same static IP as the app.
          natGateway: {
            id: natGateway.id
          }
          networkSecurityGroup: {
            id: resolverSecurityGroup.id
          }
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }

  resource integrationSubnet 'subnets' existing = {
    name: 'functions'
  }

  resource resolverSubnet 'subnets' existing = {
    name: 'resolver'
  }

  resource privateEndpointSubnet 'subnets' existing = {
    name: 'private-endpoints'
  }
}

output virtualNetworkId string = virtualNetwork.id
output integrationSubnetId string = virtualNetwork::integrationSubnet.id
output integrationSubnetPrefix string = integrationSubnetPrefix
output resolverSubnetId string = virtualNetwork::resolverSubnet.id
output privateEndpointSubnetId string = virtualNetwork::privateEndpointSubnet.id
output outboundIpAddress string = outboundIp.properties.ipAddress
output outboundIpFqdn string = outboundIp.properties.dnsSettings.fqdn
