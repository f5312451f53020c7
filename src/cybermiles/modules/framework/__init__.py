"""The native-module framework: state in an account's storage, ABI calls, fixed gas, events."""
