"""CRM -> Daktela: accounts and contacts, the CRM being the source of truth."""
