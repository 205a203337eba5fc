// The validating resolver the app sends every DNS lookup to (CloudDelivery__Delivery__Resolver).
// Azure's own resolver (168.63.129.16) does not validate DNSSEC, so without this no answer is "authentic"
// and DANE (RFC 7672 §2.2) never applies. One small Debian 12 VM running Debian's unbound, with a static
// private address in its own subnet, no public IP, and outbound through the NAT gateway.
//
// Cloud-init (customData) installs unbound and dns-root-data from Debian's archive at first boot, writes
// the repository's DNSSEC policy (../resolver/unbound.conf) verbatim and a site file naming what the
// policy leaves out: the interface, who may ask, the root trust anchor (RFC 5011 rollover by unbound).
// Azure never changes customData of an existing VM ("Changing property 'customData' is not allowed"):
// a changed policy reaches a running resolver through `az vm run-command invoke` or by deleting the VM
// and provisioning again (infra-bicep/README.md, "Validating resolver").
//
// One VM is one point of failure: while it is down or rebooting, lookups fail, and the app treats that
// as a temporary failure (mail is deferred and retried, never sent unverified).

import { resourceTags } from 'types.bicep'

@description('Azure region.')
param location string

@description('Tags for the resources.')
param tags resourceTags

@description('Name prefix for the resolver resources.')
param namePrefix string

@description('The resolver subnet (NAT gateway attached, NSG allowing DNS from the integration subnet only).')
param subnetId string

@description('Static private IPv4 address of the resolver inside the resolver subnet.')
param privateIpAddress string

@description('Prefix of the app\'s integration subnet: the only clients unbound answers (access-control).')
param clientSubnetPrefix string

@description('VM size; unbound needs little CPU and the policy\'s caches fit in 1 GiB.')
param vmSize string

@description('Version of the Debian 12 (gen2) marketplace image, pinned so that a re-provision does not change the OS under a running resolver.')
param imageVersion string

@description('Administrator user name on the VM.')
param adminUsername string

@description('OpenSSH public key of the administrator (ssh-rsa …); password authentication is off.')
param sshPublicKey string

// Paths of Debian's unbound package: it reads /etc/unbound/unbound.conf, which includes
// /etc/unbound/unbound.conf.d/*.conf; the unbound service keeps the root trust anchor in
// /var/lib/unbound/root.key, seeded from dns-root-data.
var policy = loadTextContent('../resolver/unbound.conf')
var policyPath = '/etc/unbound/clouddelivery/unbound.conf'
var siteFile = format(
  '''# CloudDelivery resolver site settings (written by cloud-init; the policy is the repository's file).
include: "{0}"
server:
    interface: 0.0.0.0
    access-control: {1} allow
    auto-trust-anchor-file: "/var/lib/unbound/root.key"
    # The VNet has no IPv6 egress: asking over IPv6 would only time out.
    do-ip6: no
''',
  policyPath,
  clientSubnetPrefix
)

// The site file is written outside unbound's directories and installed after the package, so the
// package's own start at install time runs with Debian's defaults; Debian's root-auto-trust-anchor-file.conf
// is removed because the site file names the same anchor file (one anchor, declared once).
var cloudInit = format(
  '''#cloud-config
package_update: true
package_upgrade: true
packages:
  - unbound
  - dns-root-data
  - unattended-upgrades
write_files:
  - path: {0}
    encoding: b64
    permissions: '0644'
    content: {1}
  - path: /etc/clouddelivery/unbound-site.conf
    encoding: b64
    permissions: '0644'
    content: {2}
runcmd:
  - rm -f /etc/unbound/unbound.conf.d/root-auto-trust-anchor-file.conf
  - install -m 0644 /etc/clouddelivery/unbound-site.conf /etc/unbound/unbound.conf.d/clouddelivery.conf
  - unbound-checkconf
  - systemctl enable unbound
  - systemctl restart unbound
''',
  policyPath,
  base64(policy),
  base64(siteFile)
)

resource networkInterface 'Microsoft.Network/networkInterfaces@2024-05-01' = {
  name: '${namePrefix}-resolver-nic'
  location: location
  tags: tags
  properties: {
    ipConfigurations: [
      {
        name: 'resolver'
        properties: {
          // Static: the app setting names this address.
          privateIPAllocationMethod: 'Static'
          privateIPAddress: privateIpAddress
          privateIPAddressVersion: 'IPv4'
          subnet: {
            id: subnetId
          }
        }
      }
    ]
  }
}

resource virtualMachine 'Microsoft.Compute/virtualMachines@2024-07-01' = {
  name: '${namePrefix}-resolver'
  location: location
  tags: tags
  properties: {
    hardwareProfile: {
      vmSize: vmSize
    }
    storageProfile: {
      imageReference: {
        publisher: 'Debian'
        offer: 'debian-12'
        sku: '12-gen2'
        version: imageVersion
      }
      osDisk: {
        createOption: 'FromImage'
        deleteOption: 'Delete'
        managedDisk: {
          storageAccountType: 'StandardSSD_LRS'
        }
      }
    }
    osProfile: {
      computerName: 'resolver'
      adminUsername: adminUsername
      customData: base64(cloudInit)
      linuxConfiguration: {
        disablePasswordAuthentication: true
        ssh: {
          publicKeys: [
            {
              path: '/home/${adminUsername}/.ssh/authorized_keys'
              keyData: sshPublicKey
            }
          ]
        }
        provisionVMAgent: true
      }
    }
    networkProfile: {
      networkInterfaces: [
        {
          id: networkInterface.id
          properties: {
            deleteOption: 'Detach'
          }
        }
      ]
    }
    // Serial console log (cloud-init's progress) in platform-managed storage.
    diagnosticsProfile: {
      bootDiagnostics: {
        enabled: true
      }
    }
  }
}

output name string = virtualMachine.name
@description('What CloudDelivery__Delivery__Resolver is set to: <static ip>:53.')
output address string = '${privateIpAddress}:53'
