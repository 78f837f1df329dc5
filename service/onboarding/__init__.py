"""Onboarding domain: what the service knows about a user, and what the frontend should do next."""
