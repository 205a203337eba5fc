// The signing secret of the events webhook, kept in Key Vault; the app setting
// CloudDelivery__Events__Webhooks__0__Secret is a Key Vault reference to it, resolved by the platform with
// the app's identity (Key Vault Secrets User on the vault, see role-assignments.bicep).

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the secret.')
param secretName string

@secure()
@description('The webhook signing secret (whsec_<base64> or any string).')
param secretValue string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'Standard Webhooks signing secret'
  }
}

output name string = secret.name
