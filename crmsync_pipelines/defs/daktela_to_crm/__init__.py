"""Daktela -> CRM: activities (calls, emails, chats, messages), Daktela being the source of truth."""
