"""The configuration model: typed settings, validated once while the inventory loads."""
