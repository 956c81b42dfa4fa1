"""The Zalo OA platform: typed webhook events, the Open API client, token store and message builders."""
