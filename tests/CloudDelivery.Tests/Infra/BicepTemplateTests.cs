using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CloudDelivery.Tests.Infra;

/// <summary>
/// The azd templates in infra-bicep/: every file compiles and lints without a single diagnostic (all
/// linter rules are errors, see bicepconfig.json), and the compiled main template keeps the security
/// settings the deployment relies on (no keys or connection strings, identity-only access, least roles).
/// Module templates are nested deployments (Microsoft.Resources/deployments with properties.template)
/// in the compiled JSON; the helpers walk them.
/// </summary>
public partial class BicepTemplateTests(BicepFixture bicep) : IClassFixture<BicepFixture>
{
    [Fact]
    public void Every_template_compiles_without_diagnostics()
    {
        Assert.True(bicep.Build.ExitCode == 0 && bicep.Build.StandardError.Length == 0, $"bicep build: exit {bicep.Build.ExitCode}\n{bicep.Build.StandardError}");
        var sources = Directory.EnumerateFiles(bicep.TemplateDirectory, "*.bicep", SearchOption.AllDirectories)
            .Select(path => Path.ChangeExtension(Path.GetRelativePath(bicep.TemplateDirectory, path), ".json").Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.Contains("main.json", sources);
        Assert.Contains("modules/storage.json", sources);
        Assert.Equal(sources, bicep.CompiledTemplates());
    }

    [Fact]
    public void Every_template_lints_without_diagnostics()
    {
        Assert.True(bicep.Lint.ExitCode == 0 && bicep.Lint.StandardError.Length == 0, $"bicep lint: exit {bicep.Lint.ExitCode}\n{bicep.Lint.StandardError}");
    }

    [Fact]
    public void The_linter_config_makes_every_enabled_rule_an_error()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(bicep.TemplateDirectory, "bicepconfig.json")), documentOptions: new() { CommentHandling = System.Text.Json.JsonCommentHandling.Skip })!;
        Assert.True(config["analyzers"]!["core"]!["enabled"]!.GetValue<bool>());
        var levels = config["analyzers"]!["core"]!["rules"]!.AsObject().Select(rule => rule.Value!["level"]!.GetValue<string>()).ToList();
        Assert.True(levels.Count >= 30, "the rules are listed one by one");
        Assert.All(levels, level => Assert.Contains(level, new[] { "error", "off" }));
        Assert.Equal(2, levels.Count(level => level == "off"));
    }

    [Fact]
    public void No_template_uses_registry_modules()
    {
        foreach (var file in Directory.EnumerateFiles(bicep.TemplateDirectory, "*.bicep", SearchOption.AllDirectories))
        {
            Assert.DoesNotContain("'br:", File.ReadAllText(file), StringComparison.Ordinal);
            Assert.DoesNotContain("'br/", File.ReadAllText(file), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Storage_account_allows_neither_shared_keys_nor_public_blobs_nor_old_TLS()
    {
        var properties = Single("Microsoft.Storage/storageAccounts").Resource["properties"]!;
        Assert.False(properties["allowSharedKeyAccess"]!.GetValue<bool>());
        Assert.False(properties["allowBlobPublicAccess"]!.GetValue<bool>());
        Assert.Equal("TLS1_2", properties["minimumTlsVersion"]!.GetValue<string>());
        Assert.True(properties["supportsHttpsTrafficOnly"]!.GetValue<bool>());
        var container = Single("Microsoft.Storage/storageAccounts/blobServices/containers");
        Assert.Contains("deploymentContainerName", container.Resource["name"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void No_key_or_connection_string_is_ever_computed()
    {
        // listKeys()/listAccountSas() are how templates usually put account keys into app settings.
        var text = bicep.MainTemplate.ToJsonString();
        Assert.DoesNotContain("listKeys(", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("listAccountSas(", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("listServiceSas(", text, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void App_settings_hold_no_secret_and_reach_storage_by_identity()
    {
        var settings = AppSettings();
        Assert.Contains("CloudDelivery__Dkim__Keys__{0}__PrivateKeyPem", settings.Keys);
        foreach (var (name, value) in settings)
        {
            foreach (var forbidden in new[] { "AccountKey=", "SharedAccessSignature", "DefaultEndpointsProtocol", "InstrumentationKey=", "UseDevelopmentStorage" })
            {
                Assert.DoesNotContain(forbidden, value, StringComparison.OrdinalIgnoreCase);
            }
            Assert.NotEqual("APPINSIGHTS_INSTRUMENTATIONKEY", name);
            Assert.False(name.EndsWith("ConnectionString", StringComparison.OrdinalIgnoreCase), $"{name} is a connection string setting");
        }
        // The host's storage: identity-based settings only, never the plain connection string.
        Assert.DoesNotContain("AzureWebJobsStorage", settings.Keys);
        Assert.Equal("managedidentity", settings["AzureWebJobsStorage__credential"]);
        Assert.Contains("parameters('storageAccountName')", settings["AzureWebJobsStorage__accountName"], StringComparison.Ordinal);
        Assert.Contains("parameters('identityClientId')", settings["AzureWebJobsStorage__clientId"], StringComparison.Ordinal);
        // The queue trigger's connection (Connection = "CloudDeliveryStorage" in DeliveryFunctions).
        Assert.Equal("managedidentity", settings["CloudDeliveryStorage__credential"]);
        Assert.Contains("parameters('identityClientId')", settings["CloudDeliveryStorage__clientId"], StringComparison.Ordinal);
        // The app's storage and telemetry, with the contract's setting names.
        Assert.Contains("parameters('storageAccountName')", settings["CloudDelivery__Storage__AccountName"], StringComparison.Ordinal);
        Assert.Contains("parameters('identityClientId')", settings["CloudDelivery__ManagedIdentityClientId"], StringComparison.Ordinal);
        Assert.Equal("azuremonitor", settings["CloudDelivery__Telemetry__Exporter"]);
        Assert.Contains("parameters('appInsightsConnectionString')", settings["APPLICATIONINSIGHTS_CONNECTION_STRING"], StringComparison.Ordinal);
        Assert.Equal("[format('ClientId={0};Authorization=AAD', parameters('identityClientId'))]", settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]);
        Assert.Contains("parameters('ehloHostname')", settings["CloudDelivery__Hostname"], StringComparison.Ordinal);
        // Each instance's share of the shared shaping budgets follows the app's scale-out limit.
        Assert.Contains("parameters('maximumInstanceCount')", settings["CloudDelivery__Shaping__InstanceCount"], StringComparison.Ordinal);
        // Secrets only as Key Vault references.
        Assert.Contains("@Microsoft.KeyVault(", settings["CloudDelivery__Smarthost__Password"], StringComparison.Ordinal);
        Assert.Contains("@Microsoft.KeyVault(", settings["CloudDelivery__Dkim__Keys__{0}__PrivateKeyPem"], StringComparison.Ordinal);
        Assert.Contains("SecretUri={0}secrets/", FunctionApp().Template["variables"]!["keyVaultReference"]!.GetValue<string>(), StringComparison.Ordinal);
        foreach (var name in new[] { "CloudDelivery__TlsRpt__OrganizationName", "CloudDelivery__TlsRpt__ContactInfo", "CloudDelivery__TlsRpt__SubmitterDomain", "CloudDelivery__Smarthost__Host", "CloudDelivery__Smarthost__Port", "CloudDelivery__Smarthost__UserName", "CloudDelivery__Dkim__Keys__{0}__Domain", "CloudDelivery__Dkim__Keys__{0}__Selector", "CloudDelivery__Dkim__Keys__{0}__Algorithm" })
        {
            Assert.Contains(name, settings.Keys);
        }
    }

    [Fact]
    public void Function_app_runs_on_flex_consumption_as_the_user_assigned_identity()
    {
        var (site, _) = FunctionApp();
        var plan = Single("Microsoft.Web/serverfarms").Resource;
        Assert.Equal("FC1", plan["sku"]!["name"]!.GetValue<string>());
        Assert.Equal("FlexConsumption", plan["sku"]!["tier"]!.GetValue<string>());
        var properties = site["properties"]!;
        Assert.True(properties["httpsOnly"]!.GetValue<bool>());
        Assert.Equal("1.2", properties["siteConfig"]!["minTlsVersion"]!.GetValue<string>());
        Assert.Equal("Disabled", properties["siteConfig"]!["ftpsState"]!.GetValue<string>());
        Assert.Equal("dotnet-isolated", properties["functionAppConfig"]!["runtime"]!["name"]!.GetValue<string>());
        Assert.Equal("10.0", properties["functionAppConfig"]!["runtime"]!["version"]!.GetValue<string>());
        var deploymentAuthentication = properties["functionAppConfig"]!["deployment"]!["storage"]!["authentication"]!;
        Assert.Equal("UserAssignedIdentity", deploymentAuthentication["type"]!.GetValue<string>());
        Assert.Equal("[parameters('identityId')]", deploymentAuthentication["userAssignedIdentityResourceId"]!.GetValue<string>());
        Assert.Equal("[parameters('identityId')]", properties["keyVaultReferenceIdentity"]!.GetValue<string>());
        Assert.Equal("UserAssigned", site["identity"]!["type"]!.GetValue<string>());
        Assert.Contains("parameters('identityId')", Assert.Single(site["identity"]!["userAssignedIdentities"]!.AsObject()).Key, StringComparison.Ordinal);
        // ... and identityId is the identity module's resource.
        Assert.Single(All("Microsoft.ManagedIdentity/userAssignedIdentities"), found => !found.IsExisting);
        Assert.Equal("[reference('identity').outputs.id.value]", ModuleParameter("function-app", "identityId"));
        Assert.Equal("[reference('identity').outputs.clientId.value]", ModuleParameter("function-app", "identityClientId"));
        Assert.Contains("parameters('integrationSubnetId')", properties["virtualNetworkSubnetId"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("[reference('network').outputs.integrationSubnetId.value]", ModuleParameter("function-app", "integrationSubnetId"));
    }

    [Theory]
    [InlineData("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Microsoft.Storage/storageAccounts")] // Storage Blob Data Owner
    [InlineData("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "Microsoft.Storage/storageAccounts")] // Storage Queue Data Contributor
    [InlineData("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "Microsoft.Storage/storageAccounts")] // Storage Table Data Contributor
    [InlineData("3913510d-42f4-4e42-8a64-420c390055eb", "Microsoft.Insights/components")] // Monitoring Metrics Publisher
    [InlineData("4633458b-17de-408a-b874-0445c86b69e6", "Microsoft.KeyVault/vaults")] // Key Vault Secrets User
    public void The_identity_holds_each_role_the_app_needs(string roleDefinitionGuid, string scopeType)
    {
        var template = ModuleTemplate("role-assignments");
        var roles = template["variables"]!["roles"]!.AsObject();
        var roleKey = Assert.Single(roles, role => role.Value!.GetValue<string>() == roleDefinitionGuid).Key;
        // The deployer's optional assignments (with a condition) may share a role; the identity's have none.
        var assignment = Assert.Single(All("Microsoft.Authorization/roleAssignments"), found => found.Resource["condition"] is null && found.Resource["properties"]!["roleDefinitionId"]!.GetValue<string>()
            == $"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('roles').{roleKey})]").Resource;
        Assert.Matches(@"^\[reference\(resourceId\('Microsoft\.ManagedIdentity/userAssignedIdentities', parameters\('identityName'\)\), '[0-9-]+'\)\.principalId\]$", assignment["properties"]!["principalId"]!.GetValue<string>());
        Assert.Null(assignment["condition"]);
        Assert.Equal("ServicePrincipal", assignment["properties"]!["principalType"]!.GetValue<string>());
        Assert.Equal(scopeType, ScopeType().Match(assignment["scope"]!.GetValue<string>()).Groups[1].Value);
        // The existing identity the module reads is the one the identity module creates.
        Assert.Equal(ModuleParameter("identity", "name"), ModuleParameter("role-assignments", "identityName"));
    }

    [Fact]
    public void Only_the_optional_deployer_roles_go_to_another_principal()
    {
        var assignments = All("Microsoft.Authorization/roleAssignments");
        // Five for the app's identity in role-assignments, one for it on the optional Event Grid topic, and
        // the deployer's four: Key Vault Secrets Officer and the three storage data roles.
        Assert.Equal(10, assignments.Count);
        var deployer = assignments.Where(found => found.Resource["condition"] is not null && found.Template == ModuleTemplate("role-assignments")).Select(found => found.Resource).ToList();
        Assert.Equal(4, deployer.Count);
        Assert.All(deployer, assignment => Assert.Equal("[parameters('deployerPrincipalId')]", assignment["properties"]!["principalId"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("ba92f5b4-2d11-453d-a403-e96b0029c9fe")] // Storage Blob Data Contributor
    [InlineData("974c5e8b-45b9-4653-ba55-5f855dd0fb88")] // Storage Queue Data Contributor
    [InlineData("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3")] // Storage Table Data Contributor
    public void The_deployer_gets_the_storage_data_roles_for_the_CLI_unless_turned_off(string roleDefinitionGuid)
    {
        var template = ModuleTemplate("role-assignments");
        var roleKey = Assert.Single(template["variables"]!["roles"]!.AsObject(), role => role.Value!.GetValue<string>() == roleDefinitionGuid).Key;
        var assignment = Assert.Single(All("Microsoft.Authorization/roleAssignments"), found => found.Resource["properties"]!["principalId"]!.GetValue<string>() == "[parameters('deployerPrincipalId')]"
            && found.Resource["properties"]!["roleDefinitionId"]!.GetValue<string>() == $"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('roles').{roleKey})]").Resource;
        // Skipped without a principal (AZURE_PRINCIPAL_ID empty) and when grantDeployerDataAccess is false.
        Assert.Equal("[variables('grantDeployerData')]", assignment["condition"]!.GetValue<string>());
        Assert.Equal("[and(not(empty(parameters('deployerPrincipalId'))), parameters('grantDeployerDataAccess'))]", template["variables"]!["grantDeployerData"]!.GetValue<string>());
        Assert.Equal("Microsoft.Storage/storageAccounts", ScopeType().Match(assignment["scope"]!.GetValue<string>()).Groups[1].Value);
        Assert.Equal("[parameters('deployerPrincipalType')]", assignment["properties"]!["principalType"]!.GetValue<string>());
        Assert.True(bicep.MainTemplate["parameters"]!["grantDeployerDataAccess"]!["defaultValue"]!.GetValue<bool>());
        Assert.Equal("[parameters('grantDeployerDataAccess')]", ModuleParameter("role-assignments", "grantDeployerDataAccess"));
        Assert.Equal("[parameters('principalId')]", ModuleParameter("role-assignments", "deployerPrincipalId"));
    }

    [Fact]
    public void Application_Insights_accepts_only_Entra_ID_ingestion()
    {
        var component = Single("Microsoft.Insights/components").Resource;
        Assert.True(component["properties"]!["DisableLocalAuth"]!.GetValue<bool>());
        Assert.NotNull(component["properties"]!["WorkspaceResourceId"]);
        Assert.Single(All("Microsoft.OperationalInsights/workspaces"));
    }

    [Fact]
    public void Key_Vault_uses_RBAC_with_soft_delete_and_purge_protection()
    {
        var properties = Single("Microsoft.KeyVault/vaults").Resource["properties"]!;
        Assert.True(properties["enableRbacAuthorization"]!.GetValue<bool>());
        Assert.True(properties["enableSoftDelete"]!.GetValue<bool>());
        Assert.True(properties["enablePurgeProtection"]!.GetValue<bool>());
    }

    [Fact]
    public void Outbound_traffic_leaves_through_the_NAT_gateway_of_the_integration_subnet()
    {
        var network = ModuleTemplate("network");
        var subnet = Assert.Single(Single("Microsoft.Network/virtualNetworks").Resource["properties"]!["subnets"]!.AsArray(), subnet => subnet!["name"]!.GetValue<string>() == "functions")!;
        Assert.Contains("Microsoft.Network/natGateways", subnet["properties"]!["natGateway"]!["id"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("Microsoft.App/environments", Assert.Single(subnet["properties"]!["delegations"]!.AsArray())!["properties"]!["serviceName"]!.GetValue<string>());
        Assert.Contains("'functions')", network["outputs"]!["integrationSubnetId"]!["value"]!.GetValue<string>(), StringComparison.Ordinal);
        var nat = Single("Microsoft.Network/natGateways").Resource;
        Assert.Contains("Microsoft.Network/publicIPAddresses", Assert.Single(nat["properties"]!["publicIpAddresses"]!.AsArray())!["id"]!.GetValue<string>(), StringComparison.Ordinal);
        var ip = Single("Microsoft.Network/publicIPAddresses").Resource;
        Assert.Equal("Standard", ip["sku"]!["name"]!.GetValue<string>());
        Assert.Equal("Static", ip["properties"]!["publicIPAllocationMethod"]!.GetValue<string>());
        // The PTR is a second step (Azure checks the forward lookup first), switched by setReverseDns.
        var dnsSettings = ip["properties"]!["dnsSettings"]!.GetValue<string>();
        Assert.StartsWith("[if(parameters('setReverseDns')", dnsSettings, StringComparison.Ordinal);
        Assert.Contains("'reverseFqdn', format('{0}.', parameters('ehloHostname'))", dnsSettings, StringComparison.Ordinal);
        Assert.False(bicep.MainTemplate["parameters"]!["setReverseDns"]!["defaultValue"]!.GetValue<bool>());
    }

    [Fact]
    public void Workbook_charts_the_contract_telemetry()
    {
        var workbook = Single("Microsoft.Insights/workbooks").Resource;
        var serialized = workbook["properties"]!["serializedData"]!.GetValue<string>();
        Assert.StartsWith("[replace(", serialized, StringComparison.Ordinal);
        var source = JsonNode.Parse(File.ReadAllText(Path.Combine(bicep.TemplateDirectory, "workbook.json")))!;
        var queries = source["items"]!.AsArray().Select(item => item!["content"]!["query"]?.GetValue<string>()).OfType<string>().ToList();
        Assert.Equal(8, queries.Count);
        foreach (var expected in new[] { "clouddelivery.recipients", "customDimensions.reason", "customDimensions.tls", "customDimensions.RecipientDomain", "clouddelivery.queue.oldest_ready_age", "clouddelivery.queue.messages", "clouddelivery.resolver.checks" })
        {
            Assert.Contains(queries, query => query.Contains(expected, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Alert_rules_watch_poison_queue_age_failure_ratio_and_the_resolver_check()
    {
        var rules = All("Microsoft.Insights/scheduledQueryRules");
        var queries = rules
            .Select(found => Assert.Single(found.Resource["properties"]!["criteria"]!["allOf"]!.AsArray())!["query"]!.GetValue<string>())
            .ToList();
        Assert.Equal(4, queries.Count);
        // Any resolver check in the window that is not "validating" (not-validating or unreachable) fires,
        // and the rule exists only when the app has a resolver of its own to check.
        var resolverRule = Assert.Single(rules, found => found.Resource["properties"]!["criteria"]!["allOf"]![0]!["query"]!.GetValue<string>().Contains("\"clouddelivery.resolver.checks\"", StringComparison.Ordinal));
        var resolverCriterion = resolverRule.Resource["properties"]!["criteria"]!["allOf"]![0]!;
        Assert.Contains("sumif(valueSum, result != \"validating\")", resolverCriterion["query"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("tostring(customDimensions.result)", resolverCriterion["query"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("GreaterThan", resolverCriterion["operator"]!.GetValue<string>());
        Assert.Equal(0, resolverCriterion["threshold"]!.GetValue<int>());
        Assert.Equal("[parameters('resolverCheckEnabled')]", resolverRule.Resource["condition"]!.GetValue<string>());
        Assert.Equal("[not(equals(parameters('resolverMode'), 'none'))]", ModuleParameter("alerts", "resolverCheckEnabled"));
        Assert.Contains(queries, query => query.Contains("\"clouddelivery.queue.messages\"", StringComparison.Ordinal) && query.Contains("customDimensions.queue) == \"poison\"", StringComparison.Ordinal));
        Assert.Contains(queries, query => query.Contains("\"clouddelivery.queue.oldest_ready_age\"", StringComparison.Ordinal));
        Assert.Contains(queries, query => query.Contains("\"clouddelivery.recipients\"", StringComparison.Ordinal) && query.Contains("(\"failed\", \"expired\")", StringComparison.Ordinal));
        var actionGroup = Single("Microsoft.Insights/actionGroups");
        Assert.Equal("[variables('sendEmail')]", actionGroup.Resource["condition"]!.GetValue<string>());
        Assert.Equal("[not(empty(parameters('alertEmail')))]", actionGroup.Template["variables"]!["sendEmail"]!.GetValue<string>());
    }

    [Fact]
    public void The_azd_parameters_file_matches_the_main_template()
    {
        var text = File.ReadAllText(Path.Combine(bicep.TemplateDirectory, "main.parameters.json"));
        // azd substitutes ${NAME} and ${NAME=default} from the environment before it reads the file.
        var substituted = AzdVariable().Replace(text, match => match.Groups[2].Success ? match.Groups[2].Value : string.Empty);
        var parameters = JsonNode.Parse(substituted)!["parameters"]!.AsObject();
        var declared = bicep.MainTemplate["parameters"]!.AsObject();
        Assert.All(parameters, parameter => Assert.True(declared.ContainsKey(parameter.Key), $"{parameter.Key} is not a parameter of main.bicep"));
        Assert.All(declared.Where(parameter => parameter.Value!["defaultValue"] is null && parameter.Value["nullable"] is null),
            parameter => Assert.True(parameters.ContainsKey(parameter.Key), $"required parameter {parameter.Key} is missing"));
        Assert.Equal("subscriptionDeploymentTemplate.json#", bicep.MainTemplate["$schema"]!.GetValue<string>().Split('/')[^1]);
    }

    [Fact]
    public void Azd_deploys_the_functions_project_to_the_site_tagged_with_its_service_name()
    {
        var azureYaml = File.ReadAllLines(Path.Combine(bicep.TemplateDirectory, "..", "azure.yaml")).Select(line => line.TrimEnd()).ToList();
        Assert.Contains("  provider: bicep", azureYaml);
        Assert.Contains("  path: infra-bicep", azureYaml);
        var service = azureYaml.IndexOf("services:") + 1;
        Assert.Equal("  functions:", azureYaml[service]);
        Assert.Contains("    project: ./functions/CloudDelivery.Functions", azureYaml);
        Assert.Contains("    host: function", azureYaml);
        Assert.Contains("    language: dotnet", azureYaml);
        Assert.True(File.Exists(Path.Combine(bicep.TemplateDirectory, "..", "functions", "CloudDelivery.Functions", "CloudDelivery.Functions.csproj")));
        // azd finds the deployment target by the tag azd-service-name = the service's key.
        Assert.Equal("[union(parameters('tags'), createObject('azd-service-name', 'functions'))]", FunctionApp().Resource["tags"]!.GetValue<string>());
    }

    [Fact]
    public void Outputs_give_the_DNS_records_to_publish()
    {
        var outputs = bicep.MainTemplate["outputs"]!.AsObject();
        foreach (var name in new[] { "OUTBOUND_IP", "FUNCTION_APP_NAME", "AZURE_RESOURCE_GROUP", "DNS_A_RECORD", "DNS_PTR_CHECK", "DNS_SPF_RECORDS", "DNS_DKIM_RECORDS", "DNS_TLSRPT_RECORDS", "DNS_MTASTS_RECORDS" })
        {
            Assert.True(outputs.ContainsKey(name), name);
        }
        Assert.Contains("v=spf1 ip4:{", outputs["DNS_SPF_RECORDS"]!.ToJsonString(), StringComparison.Ordinal);
        Assert.Contains("._domainkey.", outputs["DNS_DKIM_RECORDS"]!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_optional_event_grid_topic_takes_cloudevents_from_the_app_identity_only()
    {
        var eventGrid = Module("event-grid");
        Assert.Equal("[parameters('deployEventGridTopic')]", eventGrid["condition"]!.GetValue<string>());
        Assert.False(bicep.MainTemplate["parameters"]!["deployEventGridTopic"]!["defaultValue"]!.GetValue<bool>());
        var properties = Single("Microsoft.EventGrid/topics").Resource["properties"]!;
        Assert.Equal("CloudEventSchemaV1_0", properties["inputSchema"]!.GetValue<string>());
        Assert.True(properties["disableLocalAuth"]!.GetValue<bool>());
        Assert.Equal("Enabled", properties["publicNetworkAccess"]!.GetValue<string>());
        // "EventGrid Data Sender", for the identity the identity module creates, scoped to the topic.
        var template = ModuleTemplate("event-grid");
        Assert.Equal("d5a91429-5739-47e2-a06b-3470a27159e7", template["variables"]!["eventGridDataSender"]!.GetValue<string>());
        var sender = Assert.Single(All("Microsoft.Authorization/roleAssignments"), found => found.Template == template).Resource;
        Assert.Equal("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('eventGridDataSender'))]", sender["properties"]!["roleDefinitionId"]!.GetValue<string>());
        // The module has symbolic names (languageVersion 2.0): 'identity' is the existing identity it names.
        Assert.Equal("[reference('identity').principalId]", sender["properties"]!["principalId"]!.GetValue<string>());
        Assert.Equal("[parameters('identityName')]", template["resources"]!["identity"]!["name"]!.GetValue<string>());
        Assert.True(template["resources"]!["identity"]!["existing"]!.GetValue<bool>());
        Assert.Equal("ServicePrincipal", sender["properties"]!["principalType"]!.GetValue<string>());
        Assert.Equal(ModuleParameter("identity", "name"), ModuleParameter("event-grid", "identityName"));
        Assert.Contains("Microsoft.EventGrid/topics", sender["scope"]!.GetValue<string>(), StringComparison.Ordinal);
        // The app publishes to the topic's endpoint when there is one.
        Assert.Contains("parameters('eventGridEndpoint')", AppSettings()["CloudDelivery__Events__EventGrid__Endpoint"], StringComparison.Ordinal);
        Assert.Contains("reference('eventGrid').outputs.endpoint.value", Module("function-app")["properties"]!["parameters"]!["eventGridEndpoint"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_webhook_secret_is_a_key_vault_secret_the_app_setting_references()
    {
        var declared = bicep.MainTemplate["parameters"]!;
        Assert.Equal("securestring", declared["webhookSecret"]!["type"]!.GetValue<string>());
        Assert.Equal(string.Empty, declared["webhookUrl"]!["defaultValue"]!.GetValue<string>());
        var store = Module("webhook-secret");
        Assert.Equal("[not(empty(parameters('webhookUrl')))]", store["condition"]!.GetValue<string>());
        Assert.Equal("[parameters('webhookSecret')]", store["properties"]!["parameters"]!["secretValue"]!["value"]!.GetValue<string>());
        Assert.Equal(ModuleParameter("key-vault", "name"), ModuleParameter("webhook-secret", "keyVaultName"));
        var secret = Single("Microsoft.KeyVault/vaults/secrets").Resource;
        Assert.Equal("[parameters('secretValue')]", secret["properties"]!["value"]!.GetValue<string>());
        Assert.Equal("securestring", ModuleTemplate("webhook-secret")["parameters"]!["secretValue"]!["type"]!.GetValue<string>());
        var settings = AppSettings();
        Assert.Equal("parameters('webhookUrl')", settings["CloudDelivery__Events__Webhooks__0__Url"]);
        Assert.Equal("format('@Microsoft.KeyVault({0}{1})', variables('keyVaultReference'), parameters('webhookSecretName'))", settings["CloudDelivery__Events__Webhooks__0__Secret"]);
        Assert.DoesNotContain("webhookSecret'", Module("function-app")["properties"]!["parameters"]!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_resolver_is_unbound_on_a_pinned_Debian_12_VM_with_the_repository_policy_and_no_public_address()
    {
        var declared = bicep.MainTemplate["parameters"]!;
        Assert.Equal("deploy", declared["resolverMode"]!["defaultValue"]!.GetValue<string>());
        Assert.Equal(["deploy", "existing", "none"], declared["resolverMode"]!["allowedValues"]!.AsArray().Select(value => value!.GetValue<string>()));
        Assert.Equal("[equals(parameters('resolverMode'), 'deploy')]", Module("resolver")["condition"]!.GetValue<string>());
        var vm = Single("Microsoft.Compute/virtualMachines").Resource["properties"]!;
        var image = vm["storageProfile"]!["imageReference"]!;
        Assert.Equal("Debian", image["publisher"]!.GetValue<string>());
        Assert.Equal("debian-12", image["offer"]!.GetValue<string>());
        Assert.Equal("12-gen2", image["sku"]!.GetValue<string>());
        Assert.Equal("[parameters('imageVersion')]", image["version"]!.GetValue<string>());
        Assert.Matches(@"^\d+\.\d{8}\.\d+$", declared["resolverImageVersion"]!["defaultValue"]!.GetValue<string>());
        Assert.Equal("[parameters('resolverImageVersion')]", ModuleParameter("resolver", "imageVersion"));
        // Key-only login; no password exists.
        Assert.True(vm["osProfile"]!["linuxConfiguration"]!["disablePasswordAuthentication"]!.GetValue<bool>());
        Assert.Null(vm["osProfile"]!["adminPassword"]);
        Assert.Equal("[parameters('sshPublicKey')]", Assert.Single(vm["osProfile"]!["linuxConfiguration"]!["ssh"]!["publicKeys"]!.AsArray())!["keyData"]!.GetValue<string>());
        // One NIC, static private address from the parameter, in the resolver subnet, no public IP.
        var configuration = Assert.Single(Single("Microsoft.Network/networkInterfaces").Resource["properties"]!["ipConfigurations"]!.AsArray())!["properties"]!;
        Assert.Equal("Static", configuration["privateIPAllocationMethod"]!.GetValue<string>());
        Assert.Equal("[parameters('privateIpAddress')]", configuration["privateIPAddress"]!.GetValue<string>());
        Assert.Null(configuration["publicIPAddress"]);
        Assert.Single(All("Microsoft.Network/publicIPAddresses"));
        Assert.Equal("[reference('network').outputs.resolverSubnetId.value]", ModuleParameter("resolver", "subnetId"));
        Assert.Equal("[parameters('resolverIpAddress')]", ModuleParameter("resolver", "privateIpAddress"));
        Assert.StartsWith("10.20.1.", declared["resolverIpAddress"]!["defaultValue"]!.GetValue<string>(), StringComparison.Ordinal);
        // Cloud-init: Debian's unbound and root trust anchor, the repository policy verbatim, a site file
        // that answers the integration subnet only, then a restart.
        var template = ModuleTemplate("resolver");
        Assert.Equal("[base64(variables('cloudInit'))]", vm["osProfile"]!["customData"]!.GetValue<string>());
        Assert.Equal(File.ReadAllText(Path.Combine(bicep.TemplateDirectory, "resolver", "unbound.conf")), template["variables"]!["policy"]!.GetValue<string>());
        var cloudInit = template["variables"]!["cloudInit"]!.GetValue<string>();
        Assert.StartsWith("[format('#cloud-config\n", cloudInit, StringComparison.Ordinal);
        foreach (var expected in new[] { "  - unbound\n", "  - dns-root-data\n", "base64(variables('policy'))", "base64(variables('siteFile'))", "/etc/unbound/unbound.conf.d/clouddelivery.conf", "systemctl restart unbound" })
        {
            Assert.Contains(expected, cloudInit, StringComparison.Ordinal);
        }
        var site = template["variables"]!["siteFile"]!.GetValue<string>();
        foreach (var expected in new[] { "include: \"{0}\"", "interface: 0.0.0.0", "access-control: {1} allow", "auto-trust-anchor-file: \"/var/lib/unbound/root.key\"" })
        {
            Assert.Contains(expected, site, StringComparison.Ordinal);
        }
        Assert.EndsWith("variables('policyPath'), parameters('clientSubnetPrefix'))]", site, StringComparison.Ordinal);
        Assert.Equal("[reference('network').outputs.integrationSubnetPrefix.value]", ModuleParameter("resolver", "clientSubnetPrefix"));
    }

    [Fact]
    public void The_resolver_subnet_admits_only_DNS_from_the_integration_subnet_and_leaves_through_the_NAT_gateway()
    {
        var subnets = Single("Microsoft.Network/virtualNetworks").Resource["properties"]!["subnets"]!.AsArray();
        Assert.Equal(["functions", "resolver", "private-endpoints"], subnets.Select(subnet => subnet!["name"]!.GetValue<string>()));
        var resolver = subnets.Single(subnet => subnet!["name"]!.GetValue<string>() == "resolver")!["properties"]!;
        Assert.Contains("Microsoft.Network/natGateways", resolver["natGateway"]!["id"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("Microsoft.Network/networkSecurityGroups", resolver["networkSecurityGroup"]!["id"]!.GetValue<string>(), StringComparison.Ordinal);
        var rules = Single("Microsoft.Network/networkSecurityGroups").Resource["properties"]!["securityRules"]!.AsArray().Select(rule => rule!["properties"]!).ToList();
        var allowed = rules.Where(rule => rule["access"]!.GetValue<string>() == "Allow").ToList();
        Assert.Equal(["Tcp", "Udp"], allowed.Select(rule => rule["protocol"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(allowed, rule =>
        {
            Assert.Equal("Inbound", rule["direction"]!.GetValue<string>());
            Assert.Equal("53", rule["destinationPortRange"]!.GetValue<string>());
            Assert.Equal("[parameters('integrationSubnetPrefix')]", rule["sourceAddressPrefix"]!.GetValue<string>());
        });
        // An explicit deny of everything else inbound, above Azure's default AllowVnetInBound (65000).
        var deny = Assert.Single(rules, rule => rule["access"]!.GetValue<string>() == "Deny");
        Assert.Equal("Inbound", deny["direction"]!.GetValue<string>());
        Assert.Equal("*", deny["sourceAddressPrefix"]!.GetValue<string>());
        Assert.Equal("*", deny["destinationPortRange"]!.GetValue<string>());
        Assert.True(deny["priority"]!.GetValue<int>() < 65000);
        Assert.All(allowed, rule => Assert.True(rule["priority"]!.GetValue<int>() < deny["priority"]!.GetValue<int>()));
    }

    [Fact]
    public void The_app_resolver_setting_follows_resolverMode()
    {
        var settings = AppSettings();
        Assert.Equal("parameters('resolver')", settings["CloudDelivery__Delivery__Resolver"]);
        Assert.Equal("'false'", settings["CloudDelivery__Delivery__ResolverCheck__Enabled"]);
        var resolverSettings = FunctionApp().Template["variables"]!["resolverSettings"]!.GetValue<string>();
        // Absent without a resolver (none); the check is turned off only when it is disabled.
        Assert.Contains("if(empty(parameters('resolver')), createArray(), createArray(createObject('name', 'CloudDelivery__Delivery__Resolver'", resolverSettings, StringComparison.Ordinal);
        Assert.Contains("if(parameters('resolverCheckEnabled'), createArray(), createArray(createObject('name', 'CloudDelivery__Delivery__ResolverCheck__Enabled', 'value', 'false')))", resolverSettings, StringComparison.Ordinal);
        Assert.Equal("[variables('resolverEndpoint')]", ModuleParameter("function-app", "resolver"));
        Assert.Equal("[not(equals(parameters('resolverMode'), 'none'))]", ModuleParameter("function-app", "resolverCheckEnabled"));
        // deploy: the VM's static address on port 53; existing: the address given, port 53 when omitted; none: empty.
        Assert.Equal(
            "[if(equals(parameters('resolverMode'), 'deploy'), format('{0}:53', parameters('resolverIpAddress')), if(equals(parameters('resolverMode'), 'existing'), if(contains(parameters('resolverAddress'), ':'), parameters('resolverAddress'), format('{0}:53', parameters('resolverAddress'))), ''))]",
            bicep.MainTemplate["variables"]!["resolverEndpoint"]!.GetValue<string>());
        Assert.Equal("[variables('resolverEndpoint')]", bicep.MainTemplate["outputs"]!["RESOLVER_ENDPOINT"]!["value"]!.GetValue<string>());
        Assert.Contains("resolver", Module("function-app")["dependsOn"]!.AsArray().Select(dependency => dependency!.GetValue<string>()));
    }

    [Fact]
    public void Storage_is_reached_through_private_endpoints_and_publicly_only_from_the_operator_addresses()
    {
        var account = Single("Microsoft.Storage/storageAccounts");
        var properties = account.Resource["properties"]!;
        Assert.Equal("[if(empty(parameters('operatorIpAddresses')), 'Disabled', 'Enabled')]", properties["publicNetworkAccess"]!.GetValue<string>());
        Assert.Equal("Deny", properties["networkAcls"]!["defaultAction"]!.GetValue<string>());
        var ipRules = Assert.Single(properties["networkAcls"]!["copy"]!.AsArray())!;
        Assert.Equal("ipRules", ipRules["name"]!.GetValue<string>());
        Assert.Equal("[length(parameters('operatorIpAddresses'))]", ipRules["count"]!.GetValue<string>());
        Assert.Equal("Allow", ipRules["input"]!["action"]!.GetValue<string>());
        Assert.Empty(bicep.MainTemplate["parameters"]!["operatorIpAddresses"]!["defaultValue"]!.AsArray());
        // One private endpoint, zone and zone group per service the app and the host use.
        var template = account.Template;
        Assert.Equal(["blob", "queue", "table"], template["variables"]!["privateServices"]!.AsArray().Select(service => service!.GetValue<string>()));
        var endpoints = Single("Microsoft.Network/privateEndpoints").Resource;
        Assert.Equal("[length(variables('privateServices'))]", endpoints["copy"]!["count"]!.GetValue<string>());
        var connection = Assert.Single(endpoints["properties"]!["privateLinkServiceConnections"]!.AsArray())!["properties"]!;
        Assert.Equal("[variables('privateServices')[copyIndex()]]", Assert.Single(connection["groupIds"]!.AsArray())!.GetValue<string>());
        Assert.Contains("Microsoft.Storage/storageAccounts", connection["privateLinkServiceId"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("[parameters('privateEndpointSubnetId')]", endpoints["properties"]!["subnet"]!["id"]!.GetValue<string>());
        var zone = Single("Microsoft.Network/privateDnsZones").Resource;
        Assert.Equal("[format('privatelink.{0}.{1}', variables('privateServices')[copyIndex()], environment().suffixes.storage)]", zone["name"]!.GetValue<string>());
        var link = Single("Microsoft.Network/privateDnsZones/virtualNetworkLinks").Resource;
        Assert.Equal("[parameters('virtualNetworkId')]", link["properties"]!["virtualNetwork"]!["id"]!.GetValue<string>());
        var group = Single("Microsoft.Network/privateEndpoints/privateDnsZoneGroups").Resource;
        Assert.Contains("Microsoft.Network/privateDnsZones", Assert.Single(group["properties"]!["privateDnsZoneConfigs"]!.AsArray())!["properties"]!["privateDnsZoneId"]!.GetValue<string>(), StringComparison.Ordinal);
        // The zones are linked to the VNet the app is integrated into, and the endpoints sit in its subnet.
        Assert.Equal("[reference('network').outputs.virtualNetworkId.value]", ModuleParameter("storage", "virtualNetworkId"));
        Assert.Equal("[reference('network').outputs.privateEndpointSubnetId.value]", ModuleParameter("storage", "privateEndpointSubnetId"));
        // Redundancy is a choice, LRS unless asked, ZRS among the options.
        Assert.Equal("[parameters('skuName')]", account.Resource["sku"]!["name"]!.GetValue<string>());
        Assert.Equal("[parameters('storageRedundancy')]", ModuleParameter("storage", "skuName"));
        Assert.Equal("Standard_LRS", bicep.MainTemplate["parameters"]!["storageRedundancy"]!["defaultValue"]!.GetValue<string>());
        Assert.Contains("Standard_ZRS", bicep.MainTemplate["parameters"]!["storageRedundancy"]!["allowedValues"]!.AsArray().Select(value => value!.GetValue<string>()));
    }

    [Theory]
    [InlineData("Microsoft.Storage/storageAccounts/blobServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.Storage/storageAccounts/queueServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.Storage/storageAccounts/tableServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.KeyVault/vaults", "AuditEvent", "")]
    [InlineData("Microsoft.Web/sites", "FunctionAppLogs", "")]
    public void Diagnostic_settings_send_resource_logs_to_the_Log_Analytics_workspace(string scopeType, string logCategories, string metricCategories)
    {
        var setting = Assert.Single(All("Microsoft.Insights/diagnosticSettings"), found => found.Resource["scope"]!.GetValue<string>().StartsWith($"[resourceId('{scopeType}'", StringComparison.Ordinal));
        var properties = setting.Resource["properties"] is JsonValue reference
            ? setting.Template["variables"]![reference.GetValue<string>()["[variables('".Length..^"')]".Length]]!
            : setting.Resource["properties"]!;
        Assert.Equal("[parameters('logAnalyticsWorkspaceId')]", properties["workspaceId"]!.GetValue<string>());
        Assert.Equal(logCategories, string.Join(',', properties["logs"]!.AsArray().Select(log => log!["category"]!.GetValue<string>())));
        Assert.All(properties["logs"]!.AsArray(), log => Assert.True(log!["enabled"]!.GetValue<bool>()));
        Assert.Equal(metricCategories, string.Join(',', properties["metrics"]?.AsArray().Select(metric => metric!["category"]!.GetValue<string>()) ?? []));
        Assert.Equal(5, All("Microsoft.Insights/diagnosticSettings").Count);
        foreach (var module in new[] { "storage", "key-vault", "function-app" })
        {
            Assert.Equal("[reference('monitoring').outputs.workspaceId.value]", ModuleParameter(module, "logAnalyticsWorkspaceId"));
        }
    }

    private sealed record FoundResource(JsonObject Resource, JsonObject Template, bool IsExisting);

    private List<FoundResource> All(string type) =>
        [.. Walk(bicep.MainTemplate).Where(found => found.Resource["type"]!.GetValue<string>() == type && !found.IsExisting)];

    private FoundResource Single(string type) => Assert.Single(All(type));

    private (JsonObject Resource, JsonObject Template) FunctionApp()
    {
        var site = Single("Microsoft.Web/sites");
        return (site.Resource, site.Template);
    }

    /// <summary>Each resource with the template it is declared in, through nested module deployments.</summary>
    private static IEnumerable<FoundResource> Walk(JsonObject template)
    {
        // languageVersion 2.0 templates (user-defined types) keep resources in an object keyed by symbolic name.
        var resources = template["resources"] switch
        {
            JsonObject symbolic => symbolic.Select(pair => pair.Value!.AsObject()),
            JsonArray list => list.Select(item => item!.AsObject()),
            _ => [],
        };
        foreach (var resource in resources)
        {
            yield return new FoundResource(resource, template, resource["existing"]?.GetValue<bool>() == true);
            if (resource["type"]!.GetValue<string>() == "Microsoft.Resources/deployments" && resource["properties"]?["template"] is JsonObject nested)
            {
                foreach (var found in Walk(nested))
                {
                    yield return found;
                }
            }
        }
    }

    private JsonObject Module(string deploymentName) =>
        Assert.Single(All("Microsoft.Resources/deployments"), found => found.Resource["name"]!.GetValue<string>() == deploymentName).Resource;

    private JsonObject ModuleTemplate(string deploymentName) => Module(deploymentName)["properties"]!["template"]!.AsObject();

    private string ModuleParameter(string deploymentName, string parameter) =>
        Module(deploymentName)["properties"]!["parameters"]![parameter]!["value"]!.GetValue<string>();

    /// <summary>
    /// The function app's settings by name, each with its value as written in the compiled template (a
    /// literal or an ARM expression): from the literal name/value arrays among the module's variables and
    /// from createObject('name', …, 'value', …) calls in its expressions. Index placeholders stay as {0}.
    /// </summary>
    private Dictionary<string, string> AppSettings()
    {
        var (site, template) = FunctionApp();
        Assert.Equal("[concat(variables('baseSettings'), variables('submitterSettings'), variables('smarthostSettings'), variables('dkimSettings'), variables('eventSinkSettings'), variables('resolverSettings'))]", site["properties"]!["siteConfig"]!["appSettings"]!.GetValue<string>());
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (_, variable) in template["variables"]!.AsObject())
        {
            if (variable is JsonArray array)
            {
                foreach (var item in array)
                {
                    settings.Add(item!["name"]!.GetValue<string>(), item["value"]!.GetValue<string>());
                }
            }
            else if (variable is JsonValue value && value.TryGetValue<string>(out var expression))
            {
                foreach (Match match in SettingInExpression().Matches(expression))
                {
                    settings.Add(match.Groups["name"].Value, match.Groups["value"].Value);
                }
            }
        }
        return settings;
    }

    // createObject('name', 'X', 'value', <expression up to the closing parenthesis of createObject>) or
    // createObject('name', format('X', lambdaVariables('index')), 'value', …).
    [GeneratedRegex(@"createObject\('name', (?:format\()?'(?<name>[A-Za-z0-9_{}]+)'(?:, lambdaVariables\('index'\)\))?, 'value', (?<value>(?:[^()]|\((?<depth>)|\)(?<-depth>))*?)\)(?(depth)(?!))")]
    private static partial Regex SettingInExpression();

    [GeneratedRegex(@"^\[resourceId\('([^']+)', parameters\('[^']+'\)\)\]$")]
    private static partial Regex ScopeType();

    [GeneratedRegex(@"\$\{([A-Z_]+)(?:=([^}]*))?\}")]
    private static partial Regex AzdVariable();
}
