"""The Reflex-free core: services, infrastructure and the provider contract."""
