"""Who may come in and what they may do: authentication, authorization,
identity-header trust, rate limits and TLS."""
