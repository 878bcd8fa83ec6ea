"""mslesion domain code, framework-free: used by the CLI, the gateway and the workers."""
