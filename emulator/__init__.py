"""A local Zalo OA emulator for demos and development: a fake OpenAPI the real client talks to, and a chat
page where a person plays customers. Registered only when the emulator is enabled; never in production.
"""
