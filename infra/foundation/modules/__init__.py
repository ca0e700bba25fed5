"""Foundation stack modules: network and the shared services compute runs on."""
