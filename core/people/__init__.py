"""People: accounts and sign-in, who may do what (`access`), sharing and invitations, rate limits."""
