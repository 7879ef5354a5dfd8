"""Per-tenant credit budgets of the SCIM routes and the failed-authentication budget per address."""
