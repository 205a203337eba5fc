using Azure.Core;
using Azure.Identity;

namespace CloudDelivery.Azure.Hosting;

/// <summary>The one way the app obtains Entra ID tokens for Azure services (storage, Azure Monitor).</summary>
public static class AzureCredentials
{
    /// <summary>
    /// The user-assigned managed identity with <paramref name="managedIdentityClientId"/>
    /// (CloudDelivery:ManagedIdentityClientId), else DefaultAzureCredential. The client ID is required to
    /// pick a user-assigned identity: an app may have several, and IMDS only defaults to the system-assigned
    /// one (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
    /// </summary>
    public static TokenCredential Create(string? managedIdentityClientId) =>
        string.IsNullOrWhiteSpace(managedIdentityClientId)
            ? new DefaultAzureCredential()
            : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(managedIdentityClientId.Trim()));
}
