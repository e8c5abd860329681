"""fidoemu's transports: how the outside world reaches the sans-IO authenticator core."""
