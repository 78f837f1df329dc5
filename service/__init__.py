"""Card onboarding backend-for-frontend: drives Yativo card-customer onboarding behind one nextAction."""
